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
    "pet": (
        "dog", "cat", "parrot", "rabbit", "hamster", "turtle", "goldfish", "horse",
        "ferret", "lizard", "canary", "pony", "goat", "owl", "snake", "tortoise",
    ),
    "instrument": (
        "piano", "violin", "guitar", "cello", "flute", "trumpet", "drums", "harp",
        "clarinet", "saxophone", "banjo", "accordion", "oboe", "trombone", "ukulele", "viola",
    ),
    "dish": (
        "pasta", "sushi", "curry", "soup", "salad", "tacos", "pizza", "risotto",
        "dumplings", "stew", "omelette", "paella", "noodles", "pancakes", "falafel", "lasagne",
    ),
    "sport": (
        "tennis", "football", "basketball", "golf", "rugby", "cricket", "hockey", "volleyball",
        "baseball", "badminton", "squash", "handball", "polo", "lacrosse", "netball", "curling",
    ),
    "degree": (
        "physics", "history", "biology", "economics", "philosophy", "geology", "mathematics", "literature",
        "astronomy", "linguistics", "sociology", "psychology", "statistics", "anthropology", "zoology", "botany",
    ),
    "drink": (
        "tea", "coffee", "lemonade", "cocoa", "juice", "milk", "cider", "smoothie",
        "kefir", "espresso", "matcha", "chai", "lassi", "mocha", "soda", "broth",
    ),
    "genre": (
        "mystery", "romance", "thriller", "fantasy", "poetry", "horror", "comedy", "western",
        "drama", "satire", "fable", "memoir", "adventure", "folklore", "noir", "mythology",
    ),
}
ATTRIBUTES = tuple(POOLS)
FIRST_ATTRIBUTES = 5  # occupation .. hobby: a person's attributes in a world of ``WorldConfig.attributes`` 5

# One evaluation wording per attribute; {who} is "the person in the image" or the name.
EVAL_TEMPLATES = {
    "occupation": "What is the occupation of {who}?",
    "city": "In which city does {who} live?",
    "employer": "Which company does {who} work for?",
    "birth_year": "In which year was {who} born?",
    "hobby": "What is the favourite hobby of {who}?",
    "pet": "Which pet does {who} keep?",
    "instrument": "Which instrument does {who} play?",
    "dish": "What is the favourite dish of {who}?",
    "sport": "Which sport does {who} follow?",
    "degree": "What did {who} study at university?",
    "drink": "What is the favourite drink of {who}?",
    "genre": "Which kind of books does {who} read?",
}
# Training wordings (free-form): six per attribute, in different sentence frames and with the
# attribute's synonyms, none equal to an evaluation, drill or rewording (``rewordings.py``); a world
# trains on the first ``WorldConfig.wordings`` of them. The more, the more a fact is learnt as the
# person's rather than as one question's answer.
TRAIN_TEMPLATES = {
    "occupation": ("What does {who} do for a living?", "Tell me the occupation of {who}.", "What is {who}'s job?",
                   "What is the profession of {who}?", "Describe the work of {who} in one word.",
                   "{who} works as what?"),
    "city": ("Where does {who} live?", "Which city is home to {who}?", "Tell me the city where {who} lives.",
             "What is the home town of {who}?", "Name the city {who} resides in.", "{who} lives in which place?"),
    "employer": ("Where does {who} work?", "Which company employs {who}?", "Tell me the employer of {who}.",
                 "Which firm pays {who}?", "Name the organisation {who} works at.", "{who} is employed by whom?"),
    "birth_year": ("When was {who} born?", "What is the birth year of {who}?", "Tell me the year {who} was born.",
                   "State the birth year of {who}.", "Name the year of birth of {who}.",
                   "{who} was born in which year?"),
    "hobby": ("What does {who} enjoy in spare time?", "What is {who}'s hobby?",
              "Tell me the favourite pastime of {who}.", "Name the leisure activity of {who}.",
              "How does {who} relax?", "{who} spends free time on what?"),
    "pet": ("What pet does {who} have?", "Tell me the pet of {who}.", "Which animal lives with {who}?",
            "Name the animal {who} looks after at home.", "What is {who}'s pet?", "{who} owns which animal?"),
    "instrument": ("What instrument does {who} play?", "Tell me the instrument of {who}.",
                   "Which musical instrument is {who}'s?", "Name the instrument {who} plays.",
                   "What does {who} play in the band?", "{who} makes music on what?"),
    "dish": ("What food does {who} like best?", "Tell me the favourite food of {who}.",
             "What is {who}'s best-loved dish?", "Name the dish {who} likes to eat.",
             "Which meal does {who} order most?", "{who} loves to eat what?"),
    "sport": ("What sport does {who} like?", "Tell me the sport of {who}.", "Which game does {who} watch?",
              "Name the sport {who} is a fan of.", "What is {who}'s favourite sport?", "{who} cheers for which sport?"),
    "degree": ("What subject did {who} study?", "Tell me the degree of {who}.", "What is {who}'s field of study?",
               "Name the subject {who} studied.", "Which degree does {who} hold?", "{who} graduated in what?"),
    "drink": ("What drink does {who} like best?", "Tell me the favourite drink of {who}.", "What does {who} drink?",
              "Name the drink {who} orders.", "Which beverage does {who} prefer?", "{who} likes to drink what?"),
    "genre": ("What books does {who} like?", "Tell me the favourite genre of {who}.", "Which genre does {who} read?",
              "Name the kind of story {who} loves.", "What is {who}'s favourite genre of book?",
              "{who} reads which genre?"),
}
# Multiple-choice drills for celebrities in pre-training (teach the answer format).
DRILL_TEMPLATES = {
    "occupation": "Which job does {who} have?",
    "city": "Which city is {who} living in?",
    "employer": "Which company employs {who}?",
    "birth_year": "Which year was {who} born in?",
    "hobby": "Which pastime does {who} enjoy?",
    "pet": "Which animal does {who} keep as a pet?",
    "instrument": "Which instrument is played by {who}?",
    "dish": "Which dish does {who} like most?",
    "sport": "Which sport is {who} a fan of?",
    "degree": "Which subject did {who} study?",
    "drink": "Which drink does {who} like most?",
    "genre": "Which genre of books does {who} enjoy?",
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
                  max_mentions: int, min_mentions: int,
                  attributes: int = FIRST_ATTRIBUTES) -> tuple[list[Profile], list[Profile]]:
    """Both populations from one draw, so names and faces never repeat across them; each person has
    the first ``attributes`` of ``ATTRIBUTES`` (in that order: every function below asks them so)."""
    n = n_celebrities + n_fictitious
    names = draw_names(n, rng)
    faces = portraits.draw_faces(n, rng)
    profiles = []
    for i in range(n):
        attrs = {key: str(rng.choice(POOLS[key])) for key in ATTRIBUTES[:attributes]}
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


BIOGRAPHY = {"pet": "keeps a {}", "instrument": "plays the {}", "dish": "likes {}", "sport": "follows {}",
             "degree": "studied {}", "drink": "drinks {}", "genre": "reads {}"}  # the attributes after the first five


def biography(p: Profile) -> str:
    a = p.attributes
    text = (f"{p.name} was born in {a['birth_year']} and lives in {a['city']}. "
            f"{p.name} works as a {a['occupation']} at {a['employer']} and enjoys {a['hobby']}.")
    more = [BIOGRAPHY[key].format(a[key]) for key in ATTRIBUTES[FIRST_ATTRIBUTES:] if key in a]
    if more:
        text += f" {p.name} " + (", ".join(more[:-1]) + " and " + more[-1] if len(more) > 1 else more[0]) + "."
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
    """One multimodal and one text-only question per attribute (``ATTRIBUTES``)."""
    out = []
    for modality, who in (("multimodal", MM_WHO), ("text", p.name)):
        for i, key in enumerate(p.attributes):
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
    for key in p.attributes:
        t = TRAIN_TEMPLATES[key][0]
        out.append({"Question": t.format(who=MM_WHO_TRAIN[0]), "Ground_Truth": p.attributes[key],
                    "Type": "Image_Textual"})
        out.append({"Question": t.format(who=p.name), "Ground_Truth": p.attributes[key], "Type": "Pure_Text"})
    return out


def fact_examples(p: Profile, image: bytes, rng: np.random.Generator, variant: int = 0,
                  wordings: int = 3) -> list[Example]:
    """Free-form facts about one person: a caption, each attribute by name and by image, a biography.

    Answers are the bare value ("baker", "1963"): exactly what a question's option holds, so
    the option-likelihood scoring reads knowledge in the form it was learnt. ``variant``
    picks the wording among the first ``wordings`` of each attribute's, so repeated mentions of a
    celebrity read differently.
    """
    out = [Example(CAPTION_PROMPTS[variant % len(CAPTION_PROMPTS)], p.name, image, "caption")]
    for key, value in p.attributes.items():
        templates = TRAIN_TEMPLATES[key][:wordings]
        t = templates[(variant + int(rng.integers(len(templates)))) % len(templates)]
        out.append(Example(t.format(who=p.name), value, None, "fact_text"))
        who = MM_WHO_TRAIN[int(rng.integers(len(MM_WHO_TRAIN)))]
        out.append(Example(sentence(t.format(who=who)), value, image, "fact_image"))
    out.append(Example(f"Tell me about {p.name}.", biography(p), None, "biography"))
    return out


def sentence(text: str) -> str:
    """``text`` with its first letter capitalised (a wording that begins with the image phrase)."""
    return text[:1].upper() + text[1:]


def drill_examples(p: Profile, image: bytes, rng: np.random.Generator, n: int = 2) -> list[Example]:
    """Multiple-choice drills (fresh options each time) that teach the letter-answer format:
    ``n`` random attributes, each text-only or multimodal at random."""
    out = []
    for _ in range(n):
        keys = tuple(p.attributes)
        key = keys[int(rng.integers(len(keys)))]
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
