"""Regenerate the week-6 data files (deterministic: the same files every time).

    python make_data.py            # writes people.json, stories.txt and qa.jsonl next to this file
    python make_data.py --check    # regenerate in memory and compare with the shipped files

Everything here was written for the course: the names, towns, jobs and foods are invented or common
words, the sentence templates are ours, and a seeded ``random.Random`` picks among them. See LICENSE.md.

The world: 40 people, each with a home town, a job and a favourite food. ``stories.txt`` is plain
prose about them (what the small model is pretrained on); ``qa.jsonl`` asks questions about the same
facts in a fixed question/answer format (what LoRA teaches the model to do). A quarter of the people
have no question in the training split: their questions form the validation split, so the notebook can
ask whether the finetuned model answers about people it only ever read stories about.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 2026

NAMES = ["Mira", "Tomas", "Anka", "Bruno", "Cleo", "Dario", "Elin", "Farid", "Greta", "Hugo", "Ines", "Jonas",
         "Kira", "Lars", "Maren", "Nils", "Olga", "Pavel", "Rosa", "Sami", "Tilda", "Umar", "Vera", "Wim",
         "Yara", "Zeno", "Alba", "Bo", "Carla", "Dmitri", "Edda", "Felix", "Hana", "Ivo", "Juno", "Kai",
         "Lena", "Milo", "Nora", "Otto"]
TOWNS = ["Halden", "Brisk", "Norrow", "Kelby", "Ostra", "Vellin", "Marsh End", "Tarn"]
JOBS = ["baker", "potter", "nurse", "pilot", "farmer", "teacher", "tailor", "miner", "sailor", "painter"]
FOODS = ["plums", "soup", "bread", "rice", "figs", "cheese", "pears", "honey", "beans", "apples"]
PLACES = ["the river", "the market", "the old mill", "the harbour", "the hill", "the library", "the bridge"]
TIMES = ["every morning", "on Sundays", "after work", "in the evening", "when it rains", "at dawn"]
FRIENDLY = ["kind", "quiet", "cheerful", "patient", "clever", "brave", "busy", "calm"]

STORY_TEMPLATES = [
    "{name} lives in {town}.",
    "{name} is a {job} in {town}.",
    "{name} likes {food}.",
    "{name} works as a {job}.",
    "In {town}, {name} is known as a {adj} {job}.",
    "{name} walks to {place} {time}.",
    "{name} buys {food} at the market in {town}.",
    "Ask anyone in {town} and they will tell you that {name} likes {food}.",
    "{name} has lived in {town} for many years.",
    "The {job} of {town} is called {name}.",
    "{name} the {job} eats {food} {time}.",
    "When {name} is hungry, {name} eats {food}.",
    "{name} and {other} meet at {place} {time}.",
    "{name} would never leave {town}.",
    "{time_cap}, {name} the {job} goes to {place}.",
]
QUESTIONS = [
    ("Where does {name} live?", "{name} lives in {town}."),
    ("What does {name} like?", "{name} likes {food}."),
    ("What is the job of {name}?", "{name} is a {job}."),
]


def make_world(rng: random.Random) -> list[dict]:
    return [{"name": n, "town": rng.choice(TOWNS), "job": rng.choice(JOBS), "food": rng.choice(FOODS)} for n in NAMES]


def make_stories(world: list[dict], rng: random.Random, paragraphs: int = 900) -> str:
    out = []
    for _ in range(paragraphs):
        person = rng.choice(world)
        sentences = []
        for template in rng.sample(STORY_TEMPLATES, 3):
            time = rng.choice(TIMES)
            other = rng.choice([p for p in world if p is not person])["name"]
            sentences.append(template.format(**person, adj=rng.choice(FRIENDLY), place=rng.choice(PLACES),
                                             time=time, time_cap=time[0].upper() + time[1:], other=other))
        out.append(" ".join(sentences))
    return "\n".join(out) + "\n"


def make_qa(world: list[dict], rng: random.Random) -> list[dict]:
    people = world[:]
    rng.shuffle(people)
    held_out = {p["name"] for p in people[: len(people) // 4]}
    rows = []
    for person in world:
        for question, answer in QUESTIONS:
            rows.append({"question": question.format(**person), "answer": answer.format(**person),
                         "split": "val" if person["name"] in held_out else "train"})
    rng.shuffle(rows)
    return rows


def build() -> dict[str, str]:
    rng = random.Random(SEED)
    world = make_world(rng)
    stories = make_stories(world, rng)
    qa = make_qa(world, rng)
    return {
        "people.json": json.dumps(world, indent=1) + "\n",
        "stories.txt": stories,
        "qa.jsonl": "".join(json.dumps(row) + "\n" for row in qa),
    }


def main(argv: list[str]) -> int:
    files = build()
    if "--check" in argv:
        stale = [name for name, text in files.items() if (HERE / name).read_text(encoding="utf-8") != text]
        print("up to date" if not stale else f"differ: {', '.join(stale)}")
        return 1 if stale else 0
    for name, text in files.items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {name} ({len(text.encode()):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
