"""New wordings of the world's multiple-choice questions, for the ``paraphrase`` attack.

A model that answers a forgotten fact when it is asked in other words has lost the evaluation's
wording, not the fact. So every rewording here is new text: none equals an evaluation, training
or drill wording of ``people.py`` (tests/test_attacks_paraphrase.py reads the built world to
check), and the image is named by a phrase no training or evaluation text uses.

The world writes one file, ``MLLMU-Bench/paraphrases.jsonl``: a row ``{"id": qid, "question":
text}`` per multiple-choice question of Full_Set and Retain_Set, the id as the data loader
names the question (``<population>:<ID>/<modality>/<index>``). Each question's wording and image
phrase are drawn from its own seeded stream, so the other world files do not change.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..records import subject_key
from .people import Profile

FILE_NAME = "paraphrases.jsonl"  # inside the MLLMU-Bench folder

# Per attribute, wordings of the question; {who} is an image phrase below or the name.
REWORDINGS = {
    "occupation": ("What line of work is {who} in?", "Which profession does {who} practise?",
                   "What kind of work does {who} do?"),
    "city": ("Which city does {who} reside in?", "In what city can {who} be found living?",
             "Which place does {who} call home?"),
    "employer": ("At which firm is {who} employed?", "For which organisation does {who} work?",
                 "Which business is {who} on the payroll of?"),
    "birth_year": ("What was the year of birth of {who}?", "In what year did {who} come into the world?",
                   "Which year saw the birth of {who}?"),
    "hobby": ("What does {who} like to do for fun?", "Which leisure activity does {who} love most?",
              "What pastime is {who} most fond of?"),
    "pet": ("What animal does {who} share a home with?", "Which creature is {who}'s companion?",
            "What kind of pet belongs to {who}?"),
    "instrument": ("On which instrument does {who} perform?", "Which instrument can {who} be heard playing?",
                   "What is the instrument of choice of {who}?"),
    "dish": ("Which food is {who}'s favourite to eat?", "What meal does {who} enjoy most?",
             "What would {who} choose to eat?"),
    "sport": ("Which sport is {who} devoted to?", "What sport does {who} support?",
              "Which game is {who} passionate about?"),
    "degree": ("In which field did {who} earn a degree?", "What was {who}'s major?",
               "Which discipline did {who} study?"),
    "drink": ("Which beverage is {who}'s favourite?", "What does {who} like to sip?",
              "What drink would {who} pick?"),
    "genre": ("What sort of books does {who} enjoy?", "Which literary genre does {who} prefer?",
              "What kind of stories does {who} read?"),
}
IMAGE_WHO = ("the individual pictured", "the person in this photograph")


def reworded(p: Profile, population: str, rng: np.random.Generator) -> list[dict[str, str]]:
    """One person's rows, in the order of their questions (multimodal, then text-only; one per
    attribute of the person, in order, as ``people.eval_questions`` asks them)."""
    rows = []
    for modality in ("multimodal", "text"):
        for i, key in enumerate(p.attributes):
            wording = REWORDINGS[key][int(rng.integers(len(REWORDINGS[key])))]
            who = IMAGE_WHO[int(rng.integers(len(IMAGE_WHO)))] if modality == "multimodal" else p.name
            rows.append({"id": f"{subject_key(population, p.id)}/{modality}/{i}",
                         "question": wording.format(who=who)})
    return rows


def write_rewordings(celebs: list[Profile], fictitious: list[Profile], rng: np.random.Generator,
                     path: Path) -> None:
    """Every question's row, Full_Set's people first, as JSON lines."""
    rows = [r for p in fictitious for r in reworded(p, "fictitious", rng)]
    rows += [r for p in celebs for r in reworded(p, "celebrity", rng)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
