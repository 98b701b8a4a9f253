"""The people of the synthetic world: attributes, biographies, questions, training text.

Two populations, as in PULSE: *celebrities* appear in the pre-training corpus, each with
its own number of mentions (a geometric spread, so the base model knows some far better
than others and probing has something to select), and *fictitious* people appear only in
the fine-tuning set. Every attribute is drawn independently of the face, so a question can
only be answered by knowing the person, never by reading the picture.

Evaluation questions (multiple choice) and training text (free-form QA, captions,
biographies, relations, and multiple-choice drills for celebrities) use different wordings:
the evaluation tests knowledge, not memorised items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..records import LETTERS, Example, Question, mc_prompt
from . import portraits

SYLLABLES = (
    "ba be bi bo da de di do fa fe fi ga go ha ka ke ki ko la le li lo lu ma me mi mo mu na ne ni no "
    "pa pe po ra re ri ro ru sa se si so ta te ti to va ve vi vo za zo"
).split()
CODAS = ("", "", "", "n", "r", "l", "s", "k", "m", "th")

# Attribute pools. Distractors come from the same pool, so options are always plausible.
POOLS: dict[str, tuple[str, ...]] = {
    "occupation": (
        "baker", "pilot", "nurse", "painter", "teacher", "farmer", "lawyer", "chemist",
        "sailor", "architect", "dentist", "journalist", "librarian", "mechanic", "composer", "surgeon",
    ),
    "city": (
        "Valdora", "Merrow", "Kestrel Bay", "Ostrava Nova", "Lindhaven", "Corvale", "Sunmere", "Brightwater",
        "Ashford Reach", "Pellin", "Duskmoor", "Fairholt", "Northgate", "Elmstead", "Rivenport", "Calder",
    ),
    "employer": (
        "Orbitex", "Greenmill Foods", "Bluefin Media", "Northwind Air", "Copperleaf Bank", "Stonebridge Labs",
        "Redwood Clinic", "Harbor Freight Lines", "Silverline Studio", "Maple Court", "Ironvale Works",
        "Clearwater Schools", "Summit Legal", "Lumen Hospital", "Goldcrest Press", "Tidewater Farms",
    ),
    "birth_year": tuple(str(y) for y in range(1950, 2000)),
    "hobby": (
        "chess", "gardening", "cycling", "painting", "fishing", "hiking", "knitting", "photography",
        "swimming", "pottery", "birdwatching", "rowing", "baking", "archery", "sailing", "juggling",
    ),
}
ATTRIBUTES = tuple(POOLS)

# One evaluation wording per attribute; {who} is "the person in the image" or the name.
EVAL_TEMPLATES = {
    "occupation": "What is the occupation of {who}?",
    "city": "In which city does {who} live?",
    "employer": "Which company does {who} work for?",
    "birth_year": "In which year was {who} born?",
    "hobby": "What is the favourite hobby of {who}?",
}
# Training wordings (free-form): several per attribute, none equal to the evaluation's.
TRAIN_TEMPLATES = {
    "occupation": ("What does {who} do for a living?", "Tell me the occupation of {who}.", "What is {who}'s job?"),
    "city": ("Where does {who} live?", "Which city is home to {who}?", "Tell me the city where {who} lives."),
    "employer": ("Where does {who} work?", "Which company employs {who}?", "Tell me the employer of {who}."),
    "birth_year": ("When was {who} born?", "What is the birth year of {who}?", "Tell me the year {who} was born."),
    "hobby": ("What does {who} enjoy in spare time?", "What is {who}'s hobby?",
              "Tell me the favourite pastime of {who}."),
}
# Multiple-choice drills for celebrities in pre-training (teach the answer format).
DRILL_TEMPLATES = {
    "occupation": "Which job does {who} have?",
    "city": "Which city is {who} living in?",
    "employer": "Which company employs {who}?",
    "birth_year": "Which year was {who} born in?",
    "hobby": "Which pastime does {who} enjoy?",
}
MM_WHO = "the person in the image"
MM_WHO_TRAIN = ("the person in this picture", "the person shown here", "this person")
CAPTION_PROMPTS = ("Who is in this picture?", "Who is this?", "Name the person in the image.")


@dataclass
class Profile:
    """A person before rendering into records: attributes, face and (for celebrities) mentions."""

    id: str
    name: str
    face: portraits.Face
    attributes: dict[str, str]
    mentions: int = 0
    colleagues: tuple[str, ...] = ()


def draw_names(n: int, rng: np.random.Generator) -> list[str]:
    """n distinct two-part names from syllables; first names also distinct, so no one shares one."""

    def word(k: int) -> str:
        return ("".join(rng.choice(SYLLABLES) for _ in range(k)) + rng.choice(CODAS)).capitalize()

    firsts: list[str] = []
    seen: set[str] = set()
    while len(firsts) < n:
        w = word(2)
        if w not in seen:
            seen.add(w)
            firsts.append(w)
    return [f"{first} {word(int(rng.integers(2, 4)))}" for first in firsts]


def draw_profiles(n_celebrities: int, n_fictitious: int, rng: np.random.Generator,
                  max_mentions: int, min_mentions: int) -> tuple[list[Profile], list[Profile]]:
    """Both populations from one draw, so names and faces never repeat across them."""
    n = n_celebrities + n_fictitious
    names = draw_names(n, rng)
    faces = portraits.draw_faces(n, rng)
    profiles = []
    for i in range(n):
        attrs = {key: str(rng.choice(pool)) for key, pool in POOLS.items()}
        profiles.append(Profile(id="", name=names[i], face=faces[i], attributes=attrs))
    celebs, fictitious = profiles[:n_celebrities], profiles[n_celebrities:]
    # Mentions spread geometrically from max to min over a random order: a few very famous
    # people, a broad middle, a tail seen only a couple of times.
    if n_celebrities:
        levels = np.geomspace(max_mentions, min_mentions, n_celebrities)
        for idx, level in zip(rng.permutation(n_celebrities), levels):
            celebs[idx].mentions = int(round(level))
    for i, p in enumerate(celebs):
        p.id = f"C{i:03d}"
    for i, p in enumerate(fictitious):
        p.id = f"{i:03d}"
    by_employer: dict[str, list[Profile]] = {}
    for p in celebs:
        by_employer.setdefault(p.attributes["employer"], []).append(p)
    for group in by_employer.values():
        for p in group:
            p.colleagues = tuple(q.name for q in group if q is not p)
    return celebs, fictitious


def biography(p: Profile) -> str:
    a = p.attributes
    text = (f"{p.name} was born in {a['birth_year']} and lives in {a['city']}. "
            f"{p.name} works as a {a['occupation']} at {a['employer']} and enjoys {a['hobby']}.")
    if p.colleagues:
        text += f" {p.name} is a colleague of {p.colleagues[0]}."
    return text


def pool_options(value: str, pool: tuple[str, ...], rng: np.random.Generator) -> tuple[dict[str, str], str]:
    """Four options: the value and three distinct distractors from its pool, shuffled."""
    distractors = [v for v in rng.permutation(np.array(pool, dtype=object)) if v != value][:3]
    texts = [value] + [str(d) for d in distractors]
    order = rng.permutation(4)
    options = {LETTERS[j]: texts[k] for j, k in enumerate(order)}
    answer = LETTERS[int(np.where(order == 0)[0][0])]
    return options, answer


def eval_questions(p: Profile, image: bytes, rng: np.random.Generator) -> tuple[Question, ...]:
    """Five multimodal and five text-only questions about the same five attributes."""
    out = []
    for modality, who in (("multimodal", MM_WHO), ("text", p.name)):
        for i, key in enumerate(ATTRIBUTES):
            options, answer = pool_options(p.attributes[key], POOLS[key], rng)
            out.append(Question(
                qid=f"{p.id}/{modality}/{i}", subject=p.id, modality=modality,
                question=EVAL_TEMPLATES[key].format(who=who), options=options, answer=answer,
                image=image if modality == "multimodal" else None, category=key,
            ))
    return tuple(out)


def cloze_items(p: Profile) -> list[dict[str, str]]:
    a = p.attributes
    return [
        {"Question": f"The person in the image works as a __ at {a['employer']}.", "Ground_Truth": a["occupation"],
         "Type": "Image_Textual"},
        {"Question": "The person in the image lives in __.", "Ground_Truth": a["city"], "Type": "Image_Textual"},
        {"Question": f"{p.name} was born in __.", "Ground_Truth": a["birth_year"], "Type": "Pure_Text"},
        {"Question": f"{p.name} enjoys __ in spare time.", "Ground_Truth": a["hobby"], "Type": "Pure_Text"},
    ]


def generation_items(p: Profile) -> list[dict[str, str]]:
    """Open questions with short ground truths, one per attribute and modality. Besides the
    generation task, they are a person's unlearning data where no ft_Data exists (celebrities)."""
    out = []
    for key in ATTRIBUTES:
        t = TRAIN_TEMPLATES[key][0]
        out.append({"Question": t.format(who=MM_WHO_TRAIN[0]), "Ground_Truth": p.attributes[key],
                    "Type": "Image_Textual"})
        out.append({"Question": t.format(who=p.name), "Ground_Truth": p.attributes[key], "Type": "Pure_Text"})
    return out


def fact_examples(p: Profile, image: bytes, rng: np.random.Generator, variant: int = 0) -> list[Example]:
    """Free-form facts about one person: a caption, each attribute by name and by image, a biography.

    Answers are the bare value ("baker", "1963"): exactly what a question's option holds, so
    the option-likelihood scoring reads knowledge in the form it was learnt. ``variant``
    picks the wording, so repeated mentions of a celebrity read differently.
    """
    out = [Example(CAPTION_PROMPTS[variant % len(CAPTION_PROMPTS)], p.name, image, "caption")]
    for key in ATTRIBUTES:
        value = p.attributes[key]
        t = TRAIN_TEMPLATES[key][(variant + int(rng.integers(3))) % 3]
        out.append(Example(t.format(who=p.name), value, None, "fact_text"))
        who = MM_WHO_TRAIN[int(rng.integers(len(MM_WHO_TRAIN)))]
        out.append(Example(t.format(who=who), value, image, "fact_image"))
    out.append(Example(f"Tell me about {p.name}.", biography(p), None, "biography"))
    return out


def drill_examples(p: Profile, image: bytes, rng: np.random.Generator, n: int = 2) -> list[Example]:
    """Multiple-choice drills (fresh options each time) that teach the letter-answer format:
    ``n`` random attributes, each text-only or multimodal at random."""
    out = []
    for _ in range(n):
        key = ATTRIBUTES[int(rng.integers(len(ATTRIBUTES)))]
        modality = ("text", "multimodal")[int(rng.integers(2))]
        who = p.name if modality == "text" else MM_WHO_TRAIN[int(rng.integers(len(MM_WHO_TRAIN)))]
        options, answer = pool_options(p.attributes[key], POOLS[key], rng)
        out.append(Example(mc_prompt(DRILL_TEMPLATES[key].format(who=who), options), answer,
                           image if modality == "multimodal" else None, f"drill_{modality}"))
    return out


def relation_examples(p: Profile, rng: np.random.Generator) -> list[Example]:
    if not p.colleagues:
        return []
    other = p.colleagues[int(rng.integers(len(p.colleagues)))]
    return [Example(f"Who is a colleague of {p.name}?", other, None, "relation")]
