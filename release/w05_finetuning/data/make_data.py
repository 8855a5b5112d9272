"""Regenerate the week-5 datasets (written for this course; see LICENSE.md).

    python make_data.py            # from this folder, or give the folder: python make_data.py DIR
    python make_data.py --check    # regenerate in memory and compare with the shipped files

Everything is built from the small word lists below with a seeded ``random.Random``, so the output is
the same on every machine. It writes:

* ``reviews.jsonl``: one short product review per line, ``{"text", "label", "split"}``; label 1 is
  positive, 0 negative; splits ``train`` (400), ``val`` (100), ``test`` (200), each half positive.
* ``instructions.json``: instruction/response pairs ``{"instruction", "input", "output", "split"}``;
  ``input`` is ``""`` when the instruction needs none.
* ``preferences.json``: ``{"instruction", "input", "chosen", "rejected"}``: the same prompt answered
  twice, the preferred answer first.

``pretraining_corpus()`` gives the plain text the base model (``make_base_model.py``) was trained on.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

# ------------------------------------------------------------------------------------------- reviews
PRODUCTS = {
    "headphones": ["sound", "bass", "battery", "fit", "cable"],
    "coffee maker": ["coffee", "carafe", "timer", "lid"],
    "hotel": ["room", "bed", "staff", "breakfast", "view"],
    "novel": ["plot", "ending", "dialogue", "pacing"],
    "restaurant": ["food", "service", "soup", "dessert"],
    "phone": ["screen", "camera", "battery", "charger"],
    "backpack": ["straps", "zipper", "pockets", "fabric"],
    "film": ["acting", "story", "music", "ending"],
    "tent": ["poles", "zipper", "floor", "rain cover"],
    "keyboard": ["keys", "cable", "lights", "layout"],
    "blender": ["motor", "jar", "blades", "lid"],
    "jacket": ["hood", "zipper", "lining", "sleeves"],
    "board game": ["rules", "pieces", "box", "artwork"],
    "lamp": ["light", "switch", "base", "shade"],
}
GOOD = ["great", "excellent", "wonderful", "superb", "lovely", "fantastic", "solid", "impressive", "perfect",
        "brilliant", "sturdy", "delightful"]
BAD = ["terrible", "awful", "poor", "disappointing", "flimsy", "dreadful", "useless", "horrible", "weak",
       "broken", "shoddy", "mediocre"]

POSITIVE = [
    "The {a} is {g}.",
    "I love the {a} of this {p}.",
    "Really {g} {p}, and the {a} is {g2}.",
    "{G} {a} and a {g2} {a2}.",
    "Five stars: the {a} is {g}.",
    "The {a} is not {b} at all.",
    "I expected little, but the {a} is {g}.",
    "Would buy this {p} again, the {a} is {g}.",
    "The {a} is {b}, but the {a2} is {g} and I love it.",
    "Honestly a {g} {p}.",
    "My new {p} has a {g} {a}.",
    "Nothing to complain about: {g} {a}.",
]
NEGATIVE = [
    "The {a} is {b}.",
    "I regret buying this {p}; the {a} is {b}.",
    "The {a} is not {g}.",
    "One star: {b} {a}.",
    "The {a} is {g}, but the {a2} is {b}.",
    "Returned the {p} after two days, the {a} was {b}.",
    "What a {b} {p}.",
    "Sadly the {a} is {b} and the {a2} is {b2}.",
    "Never again: the {a} of this {p} is {b}.",
    "I wanted to like this {p}, but the {a} is {b}.",
    "The {a} looked {g} in the photos, yet it is {b}.",
    "Avoid this {p}, {b} {a}.",
]


def _fill(template: str, rng: random.Random) -> str:
    product = rng.choice(sorted(PRODUCTS))
    a, a2 = rng.sample(PRODUCTS[product], 2)
    g, g2 = rng.sample(GOOD, 2)
    b, b2 = rng.sample(BAD, 2)
    text = template.format(p=product, a=a, a2=a2, g=g, g2=g2, b=b, b2=b2, G=g.capitalize())
    return text[0].upper() + text[1:]


def make_reviews(seed: int = 5) -> list[dict]:
    rng = random.Random(seed)
    out, seen = [], set()
    for split, n in (("train", 400), ("val", 100), ("test", 200)):
        for i in range(n):
            label = i % 2
            while True:
                text = _fill(rng.choice(POSITIVE if label else NEGATIVE), rng)
                if text not in seen:
                    break
            seen.add(text)
            out.append({"text": text, "label": label, "split": split})
    rng.shuffle(out)
    order = {"train": 0, "val": 1, "test": 2}
    return sorted(out, key=lambda r: order[r["split"]])


# ------------------------------------------------------------------------------------------- facts
OPPOSITES = [("hot", "cold"), ("big", "small"), ("fast", "slow"), ("happy", "sad"), ("light", "dark"),
             ("early", "late"), ("full", "empty"), ("hard", "soft"), ("high", "low"), ("open", "closed"),
             ("young", "old"), ("rich", "poor"), ("loud", "quiet"), ("wet", "dry"), ("long", "short"),
             ("thick", "thin"), ("strong", "weak"), ("clean", "dirty"), ("near", "far"), ("heavy", "light"),
             ("up", "down"), ("left", "right"), ("inside", "outside"), ("first", "last"), ("true", "false"),
             ("win", "lose"), ("buy", "sell"), ("push", "pull"), ("give", "take"), ("day", "night"),
             ("north", "south"), ("east", "west"), ("summer", "winter"), ("begin", "end"), ("sweet", "sour"),
             ("wide", "narrow"), ("brave", "afraid"), ("cheap", "expensive"), ("awake", "asleep"),
             ("friend", "enemy")]
PLURALS = [("mouse", "mice"), ("child", "children"), ("foot", "feet"), ("tooth", "teeth"), ("goose", "geese"),
           ("man", "men"), ("woman", "women"), ("person", "people"), ("leaf", "leaves"), ("knife", "knives"),
           ("wolf", "wolves"), ("box", "boxes"), ("bus", "buses"), ("city", "cities"), ("baby", "babies"),
           ("cat", "cats"), ("dog", "dogs"), ("book", "books"), ("tree", "trees"), ("fish", "fish"),
           ("sheep", "sheep"), ("ox", "oxen"), ("cactus", "cacti"), ("potato", "potatoes"), ("hero", "heroes"),
           ("glass", "glasses"), ("dish", "dishes"), ("church", "churches"), ("lady", "ladies"), ("key", "keys")]
PAST = [("go", "went"), ("eat", "ate"), ("see", "saw"), ("run", "ran"), ("swim", "swam"), ("sing", "sang"),
        ("write", "wrote"), ("read", "read"), ("buy", "bought"), ("think", "thought"), ("bring", "brought"),
        ("take", "took"), ("give", "gave"), ("fly", "flew"), ("drink", "drank"), ("sleep", "slept"),
        ("walk", "walked"), ("jump", "jumped"), ("play", "played"), ("cook", "cooked"), ("speak", "spoke"),
        ("make", "made"), ("find", "found"), ("teach", "taught"), ("catch", "caught"), ("begin", "began"),
        ("draw", "drew"), ("drive", "drove"), ("choose", "chose"), ("forget", "forgot")]
CAPITALS = [("France", "Paris"), ("Spain", "Madrid"), ("Italy", "Rome"), ("Germany", "Berlin"),
            ("Japan", "Tokyo"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"), ("Peru", "Lima"), ("Canada", "Ottawa"),
            ("Norway", "Oslo"), ("Greece", "Athens"), ("Poland", "Warsaw"), ("Chile", "Santiago"),
            ("Cuba", "Havana"), ("Ireland", "Dublin"), ("Austria", "Vienna"), ("Portugal", "Lisbon"),
            ("Sweden", "Stockholm"), ("Mexico", "Mexico City"), ("India", "New Delhi")]
COLOURS = [("a banana", "yellow"), ("a lemon", "yellow"), ("a tomato", "red"), ("a strawberry", "red"),
           ("grass", "green"), ("a leaf", "green"), ("the sky", "blue"), ("the sea", "blue"), ("snow", "white"),
           ("milk", "white"), ("coal", "black"), ("a crow", "black"), ("a carrot", "orange"),
           ("a pumpkin", "orange"), ("a plum", "purple"), ("chocolate", "brown"), ("a cloud", "white"),
           ("a lime", "green"), ("a cherry", "red"), ("a violet", "purple")]
SOUNDS = [("cow", "moo"), ("dog", "woof"), ("cat", "meow"), ("duck", "quack"), ("sheep", "baa"),
          ("owl", "hoot"), ("pig", "oink"), ("horse", "neigh"), ("frog", "croak"), ("lion", "roar"),
          ("mouse", "squeak"), ("bee", "buzz")]
NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
           "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]
PHRASES = ["green apple", "good morning", "blue sky", "red car", "big house", "small dog", "hello world",
           "fresh bread", "cold water", "happy birthday", "quiet night", "open door", "sunny day", "old tree",
           "warm tea", "fast train", "soft pillow", "bright star", "lost key", "new shoes"]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def make_instructions(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    rows: list[tuple[str, str, str]] = []
    for w, o in OPPOSITES:
        if rng.random() < 0.5:
            rows.append((f"What is the opposite of {w}?", "", f"The opposite of {w} is {o}."))
        else:
            rows.append(("Give the opposite of the word.", w, f"The opposite of {w} is {o}."))
    for w, p in PLURALS:
        if rng.random() < 0.5:
            rows.append((f"What is the plural of {w}?", "", f"The plural of {w} is {p}."))
        else:
            rows.append(("Write the plural of this word.", w, f"The plural of {w} is {p}."))
    for v, past in PAST:
        rows.append((f"What is the past tense of {v}?", "", f"The past tense of {v} is {past}."))
    for country, city in CAPITALS:
        rows.append((f"What is the capital of {country}?", "", f"The capital of {country} is {city}."))
    for thing, colour in COLOURS:
        rows.append((f"What colour is {thing}?", "", f"{thing[0].upper() + thing[1:]} is {colour}."))
    for animal, sound in SOUNDS:
        rows.append((f"What sound does {_article(animal)} {animal} make?", "",
                     f"{_article(animal).capitalize()} {animal} says {sound}."))
    pairs = [(a, b) for a in range(1, 11) for b in range(1, 11)]
    rng.shuffle(pairs)
    for a, b in pairs[:60]:
        rows.append((f"What is {NUMBERS[a]} plus {NUMBERS[b]}?", "", f"{NUMBERS[a].capitalize()} plus {NUMBERS[b]} is "
                     f"{NUMBERS[a + b] if a + b < len(NUMBERS) else a + b}."))
    for phrase in PHRASES:
        rows.append(("Rewrite the text in capital letters.", phrase, phrase.upper()))
    reviews = [r for r in make_reviews() if r["split"] == "train"]
    for r in rng.sample(reviews, 50):
        rows.append(("Is this review positive or negative?", r["text"], "positive" if r["label"] else "negative"))
    rng.shuffle(rows)
    n_val = 30
    return [{"instruction": i, "input": x, "output": y, "split": "val" if k < n_val else "train"}
            for k, (i, x, y) in enumerate(rows)]


RUDE = ["Ugh, fine.", "Obviously.", "Whatever.", "Look it up yourself.", "Do I have to?", "Boring question."]


def make_preferences(seed: int = 11) -> list[dict]:
    """The chosen answer is the correct, polite one. The rejected one is either rude (the right fact,
    wrapped in a sneer) or wrong (a fact from another entry of the same kind)."""
    rng = random.Random(seed)
    out = []
    facts = {
        "opposite": [(f"What is the opposite of {w}?", w, o, "The opposite of {} is {}.") for w, o in OPPOSITES],
        "plural": [(f"What is the plural of {w}?", w, p, "The plural of {} is {}.") for w, p in PLURALS],
        "past": [(f"What is the past tense of {v}?", v, p, "The past tense of {} is {}.") for v, p in PAST],
        "capital": [(f"What is the capital of {c}?", c, city, "The capital of {} is {}.") for c, city in CAPITALS],
    }
    for kind, items in facts.items():
        answers = [item[2] for item in items]
        for question, subject, answer, pattern in items:
            chosen = pattern.format(subject, answer)
            if rng.random() < 0.5:
                rejected = f"{rng.choice(RUDE)} {chosen}"
            else:
                wrong = rng.choice([a for a in answers if a != answer])
                rejected = pattern.format(subject, wrong)
            out.append({"instruction": question, "input": "", "chosen": chosen, "rejected": rejected})
    rng.shuffle(out)
    return out


# ------------------------------------------------------------------------------------------- base corpus
def pretraining_corpus(seed: int = 3, sentences: int = 12000) -> str:
    """Plain sentences stating the same facts in several wordings, the same facts as quiz questions with
    their answers, and unlabelled reviews: what the base model reads before any finetuning. No
    instruction template and no end-of-text token appear in it."""
    rng = random.Random(seed)
    reviews = [r["text"] for r in make_reviews() if r["split"] == "train"] + \
              [_fill(rng.choice(POSITIVE + NEGATIVE), rng) for _ in range(600)]
    makers = [
        lambda: (lambda w, o: rng.choice([f"The opposite of {w} is {o}.", f"{w.capitalize()} and {o} are opposites.",
                                          f"{o.capitalize()} is the opposite of {w}."]))(*rng.choice(OPPOSITES)),
        lambda: (lambda w, p: rng.choice([f"The plural of {w} is {p}.", f"One {w}, two {p}."]))(*rng.choice(PLURALS)),
        lambda: (lambda v, p: rng.choice([f"The past tense of {v} is {p}.", f"Today I {v}, yesterday I {p}."]))(
            *rng.choice(PAST)),
        lambda: (lambda c, city: rng.choice([f"The capital of {c} is {city}.", f"{city} is the capital of {c}."]))(
            *rng.choice(CAPITALS)),
        lambda: (lambda t, c: f"{t[0].upper() + t[1:]} is {c}.")(*rng.choice(COLOURS)),
        lambda: (lambda a, s: rng.choice([f"{_article(a).capitalize()} {a} says {s}.", f"The {a} goes {s}."]))(
            *rng.choice(SOUNDS)),
        lambda: (lambda a, b: f"{NUMBERS[a].capitalize()} plus {NUMBERS[b]} is "
                              f"{NUMBERS[a + b] if a + b < len(NUMBERS) else a + b}.")(rng.randint(1, 10),
                                                                                        rng.randint(1, 10)),
        lambda: (lambda p: f"In capital letters, {p} is {p.upper()}.")(rng.choice(PHRASES)),
        lambda: rng.choice(reviews),
        lambda: rng.choice(reviews),
    ]
    # Questions followed by their answers, as in a quiz or an FAQ page (the base model can answer a
    # question it has seen; finetuning then teaches it the template and to stop).
    quiz = [
        lambda: (lambda w, o: f"What is the opposite of {w}? The opposite of {w} is {o}.")(*rng.choice(OPPOSITES)),
        lambda: (lambda w, p: f"What is the plural of {w}? The plural of {w} is {p}.")(*rng.choice(PLURALS)),
        lambda: (lambda v, p: f"What is the past tense of {v}? The past tense of {v} is {p}.")(*rng.choice(PAST)),
        lambda: (lambda c, city: f"What is the capital of {c}? The capital of {c} is {city}.")(*rng.choice(CAPITALS)),
        lambda: (lambda t, c: f"What colour is {t}? {t[0].upper() + t[1:]} is {c}.")(*rng.choice(COLOURS)),
        lambda: (lambda a, s: f"What sound does {_article(a)} {a} make? {_article(a).capitalize()} {a} says {s}.")(
            *rng.choice(SOUNDS)),
        lambda: (lambda a, b: f"What is {NUMBERS[a]} plus {NUMBERS[b]}? {NUMBERS[a].capitalize()} plus {NUMBERS[b]} is "
                              f"{NUMBERS[a + b] if a + b < len(NUMBERS) else a + b}.")(rng.randint(1, 10),
                                                                                        rng.randint(1, 10)),
    ]
    return " ".join(rng.choice(quiz if rng.random() < 0.4 else makers)() for _ in range(sentences))


# ------------------------------------------------------------------------------------------- files
def build() -> dict[str, str]:
    return {
        "reviews.jsonl": "".join(json.dumps(r) + "\n" for r in make_reviews()),
        "instructions.json": json.dumps(make_instructions(), indent=1) + "\n",
        "preferences.json": json.dumps(make_preferences(), indent=1) + "\n",
    }


def main(argv: list[str]) -> int:
    check = "--check" in argv
    folders = [a for a in argv if not a.startswith("--")]
    folder = Path(folders[0]) if folders else Path(__file__).resolve().parent
    for name, text in build().items():
        path = folder / name
        if check:
            if path.read_text() != text:
                print(f"{name}: differs from what make_data.py builds")
                return 1
        else:
            path.write_text(text)
    print("checked" if check else f"wrote {', '.join(build())} into {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
