"""Regenerate week 4's training text, ``corpus.txt``: short stories about the animals and people of a
made-up valley, written for llmkit by this script (seeded, so the output is always the same).

    python make_corpus.py            # from this folder: writes corpus.txt
    python make_corpus.py --check    # compare with the shipped corpus.txt, write nothing

The text is plain ASCII (letters, digits, a little punctuation, newlines), so a character-level
tokenizer needs fewer than 70 symbols. Every story has a title line and one paragraph, and stories are
separated by a blank line. Sentences are built from word lists and templates with a small vocabulary,
so that a tiny model learns to spell words and string them into sentences within a few hundred
training steps on a laptop CPU.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 2024
TARGET_CHARS = 110_000

NAMES = ["Mira", "Tomas", "Lena", "Oskar", "Ada", "Felix", "Nora", "Ivo", "Sana", "Bruno", "Elin", "Pavel",
         "Rosa", "Jonah", "Kira", "Milo"]
ANIMALS = ["fox", "owl", "hare", "crow", "otter", "badger", "heron", "mole", "wren", "goat", "beaver", "swan"]
PLURAL = {"fox": "foxes", "owl": "owls", "hare": "hares", "crow": "crows", "otter": "otters",
          "badger": "badgers", "heron": "herons", "mole": "moles", "wren": "wrens", "goat": "goats",
          "beaver": "beavers", "swan": "swans"}
ADJECTIVES = ["small", "quiet", "clever", "tired", "brave", "curious", "old", "young", "happy", "hungry",
              "gentle", "proud", "sleepy", "careful"]
PLACES = ["the river", "the old mill", "the green hill", "the orchard", "the market", "the stone bridge",
          "the dark forest", "the harbour", "the library", "the garden", "the bakery", "the meadow"]
TIMES = ["In the morning", "At noon", "In the evening", "Late at night", "On Sunday", "After the rain",
         "Before dawn", "One cold day", "That summer", "Every spring"]
FOODS = ["bread", "apples", "honey", "soup", "cheese", "berries", "carrots", "cake", "pears", "nuts"]
THINGS = ["a red kite", "a wooden boat", "a lantern", "a map", "a blue scarf", "an old key", "a basket",
          "a little bell", "a book of songs", "a pair of boots"]
WEATHER = ["cold", "warm", "windy", "grey", "bright", "wet", "calm", "foggy"]
FEELINGS = ["glad", "worried", "surprised", "proud", "sorry", "curious", "calm", "excited"]
SOUNDS = ["a soft song", "a loud splash", "a strange knock", "the church bell", "a long whistle",
          "the wind in the trees", "a quiet laugh"]
SAYINGS = ["We should go home before it gets dark.", "I have never seen anything like it.",
           "Let us share what we have.", "Can you hear that?", "The river is higher than yesterday.",
           "Nobody can carry this alone.", "I think it will rain tonight.", "Where did you find that?",
           "Thank you, my friend.", "Wait for me at the bridge."]
COUNTS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve"]
ENDINGS = ["and that is why the valley still tells this story.", "and from that day on they were friends.",
           "and everyone slept well that night.", "and nobody forgot it.",
           "and the {animal} was never {feeling} again.", "and the next morning the sun came back."]


def cap(s: str) -> str:
    return s[0].upper() + s[1:]


def sentence(rng: random.Random, hero: str, animal: str) -> str:
    """One sentence about the story's hero (a person) and animal."""
    r = rng.choice
    templates = [
        lambda: f"{r(TIMES)}, {hero} walked to {r(PLACES)}.",
        lambda: f"The {r(ADJECTIVES)} {animal} was waiting near {r(PLACES)}.",
        lambda: f"{hero} said, \"{r(SAYINGS)}\"",
        lambda: f"\"{r(SAYINGS)}\" asked the {animal}.",
        lambda: f"It was a {r(WEATHER)} day, and the {animal} felt {r(FEELINGS)}.",
        lambda: f"{hero} gave the {animal} some {r(FOODS)}.",
        lambda: f"They counted {r(COUNTS)} {PLURAL[r(ANIMALS)]} on the way home.",
        lambda: f"Near {r(PLACES)} they found {r(THINGS)}.",
        lambda: f"Then they heard {r(SOUNDS)} from {r(PLACES)}.",
        lambda: f"The {animal} carried {r(THINGS)} to {r(PLACES)}.",
        lambda: f"{hero} was {r(FEELINGS)}, because the {animal} had eaten all the {r(FOODS)}.",
        lambda: f"At {r(PLACES)} an {r(['old', 'odd', 'angry', 'honest'])} "
                f"{r(['miller', 'baker', 'fisher', 'teacher'])} sold {r(FOODS)} for {r(COUNTS)} coins.",
        lambda: f"The {animal} and {hero} sat by {r(PLACES)} until the sky was {r(['pink', 'dark', 'gold', 'grey'])}.",
        lambda: f"{hero} wrote a letter to {r(NAMES)} about {r(THINGS)}.",
    ]
    return rng.choice(templates)()


def story(rng: random.Random) -> str:
    hero, animal = rng.choice(NAMES), rng.choice(ANIMALS)
    title = f"The {cap(rng.choice(ADJECTIVES))} {cap(animal)}"
    body = [f"Once there was a {rng.choice(ADJECTIVES)} {animal} who lived near {rng.choice(PLACES)}."]
    body += [sentence(rng, hero, animal) for _ in range(rng.randint(4, 8))]
    ending = rng.choice(ENDINGS).format(animal=animal, feeling=rng.choice(["sad", "lonely", "afraid", "hungry"]))
    body.append(f"In the end {hero} went home, {ending}")
    return title + "\n" + " ".join(body) + "\n"


def make_corpus(seed: int = SEED, target_chars: int = TARGET_CHARS) -> str:
    rng = random.Random(seed)
    stories, size = [], 0
    while size < target_chars:
        stories.append(story(rng))
        size += len(stories[-1]) + 1
    return "\n".join(stories)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped corpus.txt, write nothing")
    args = parser.parse_args(argv)
    text = make_corpus()
    path = HERE / "corpus.txt"
    if args.check:
        same = path.is_file() and path.read_text(encoding="ascii") == text
        print("corpus.txt is up to date" if same else "corpus.txt differs from what this script makes")
        return 0 if same else 1
    path.write_text(text, encoding="ascii")
    print(f"wrote {path} ({len(text):,} characters, {len(set(text))} distinct)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
