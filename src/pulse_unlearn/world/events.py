"""Events of the synthetic world: a second kind of concept, shown in the same image as a person.

PEBench (arXiv 2503.12545) puts fictitious people into event scenes and asks what unlearning one
concept does to the other concept of the same image. Here every event has a scene of its own
kind (a stage, a wedding arch, a sports field, ...), drawn behind a person's portrait: the
person keeps every face feature but the background, which the scene replaces. The scene fills
the top band and both sides of the canvas, so at the tiny CLIP's patch size (8 px on 32 px) a
whole row of patches and the side patches see the event alone.

An event's attributes (city, year, organiser) are drawn independently of its scene, so a
question about them is answered by knowing the event, never by reading the picture.
Evaluation questions and training facts use different wordings, as for people.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..records import Example, Question
from . import people, portraits

RGB = tuple[int, int, int]

# Scene kinds: (wall, floor) colours, far apart across kinds, and a motif drawn on them.
SCENES: dict[str, tuple[RGB, RGB]] = {
    "stage": ((45, 15, 60), (150, 95, 45)),
    "wedding arch": ((250, 205, 225), (245, 245, 235)),
    "sports field": ((120, 190, 245), (40, 150, 50)),
    "lecture hall": ((225, 205, 160), (110, 75, 40)),
    "market": ((250, 240, 200), (170, 160, 150)),
    "beach": ((150, 220, 250), (240, 210, 120)),
    "concert": ((10, 10, 10), (60, 60, 60)),
    "forest": ((190, 230, 180), (25, 80, 30)),
    "harbour": ((200, 225, 240), (20, 70, 140)),
    "snowfield": ((170, 180, 200), (255, 255, 255)),
    "night city": ((15, 25, 80), (50, 50, 70)),
    "library": ((95, 50, 20), (200, 150, 90)),
}
KINDS = tuple(SCENES)
# What an event of each kind is called after its drawn name ("the Valmoro Regatta").
NOUNS = {"stage": "Theatre Night", "wedding arch": "Wedding", "sports field": "Cup", "lecture hall": "Symposium",
         "market": "Fair", "beach": "Beach Festival", "concert": "Concert", "forest": "Forest Retreat",
         "harbour": "Regatta", "snowfield": "Winter Games", "night city": "Night Parade", "library": "Book Week"}

POOLS: dict[str, tuple[str, ...]] = {
    "city": people.POOLS["city"],
    "year": tuple(str(y) for y in range(2000, 2025)),
    "organiser": (
        "the Arts Council", "the Riverside Trust", "the City Guild", "the Harbour Board", "the Youth League",
        "the Heritage Society", "the Sports Union", "the Open Academy", "the Merchants' Circle",
        "the Lantern Foundation", "the Civic Forum", "the Summit Club", "the Northern Alliance",
        "the Green Circle", "the Music Society", "the Travellers' Club",
    ),
}
ATTRIBUTES = tuple(POOLS)
EVAL_TEMPLATES = {
    "city": "In which city did {what} take place?",
    "year": "In which year did {what} take place?",
    "organiser": "Who organised {what}?",
}
TRAIN_TEMPLATES = {
    "city": ("Where was {what} held?", "Which city hosted {what}?", "Tell me the city of {what}."),
    "year": ("When was {what} held?", "What year was {what}?", "Tell me the year of {what}."),
    "organiser": ("Who ran {what}?", "Which organisation hosted {what}?", "Tell me the organiser of {what}."),
}
MM_WHAT = "the event in the image"
MM_WHAT_TRAIN = ("the event in this picture", "the event shown here", "this event")
CAPTION_PROMPTS = ("Which event is this?", "Name the event in the image.", "What event is shown here?")
PERSON_SHARE = 0.75  # the portrait's side, as a share of the canvas


@dataclass(frozen=True)
class Event:
    """One event: its scene kind, name and attributes."""

    id: str
    kind: str
    name: str
    attributes: dict[str, str]


def draw_events(n: int, rng: np.random.Generator) -> list[Event]:
    """``n`` events, one per scene kind (in ``KINDS`` order), with distinct names."""
    if not 0 <= n <= len(KINDS):
        raise ValueError(f"the world has {len(KINDS)} event scenes; cannot draw {n} events")
    words = [name.split()[0] for name in people.draw_names(n, rng)]
    return [Event(id=f"E{i:02d}", kind=KINDS[i], name=f"the {words[i]} {NOUNS[KINDS[i]]}",
                  attributes={key: str(rng.choice(pool)) for key, pool in POOLS.items()})
            for i in range(n)]


def attendance(person_ids: list[str], events: list[Event], per_person: int,
               rng: np.random.Generator) -> dict[str, tuple[str, ...]]:
    """Each person's events: ``per_person`` distinct ones, those attended least so far (ties in a
    random order), so that attendances of any two events differ by at most one."""
    if not 1 <= per_person <= len(events):
        raise ValueError(f"each person attends 1..{len(events)} events, not {per_person}")
    counts = {e.id: 0 for e in events}
    out: dict[str, tuple[str, ...]] = {}
    for pid in person_ids:
        tie = rng.permutation(len(events))
        picked = sorted(range(len(events)), key=lambda i: (counts[events[i].id], tie[i]))[:per_person]
        for i in picked:
            counts[events[i].id] += 1
        out[pid] = tuple(sorted(events[i].id for i in picked))
    return out


# ---- drawing ------------------------------------------------------------------------------

def render_scene(kind: str, size: int = 32) -> Image.Image:
    """The scene of ``kind``, a ``size`` x ``size`` RGB image: the wall above, the floor below
    the middle, and the kind's motif."""
    if kind not in SCENES:
        raise ValueError(f"unknown event scene {kind!r}; expected one of {KINDS}")
    wall, floor = SCENES[kind]
    img = Image.new("RGB", (size, size), wall)
    d = ImageDraw.Draw(img)
    d.rectangle([0, size // 2, size - 1, size - 1], fill=floor)
    _MOTIFS[kind](d, size)
    return img


def _u(size: int) -> Callable[..., list[int]]:
    """A box in unit coordinates, scaled to ``size`` px."""
    return lambda x0, y0, x1, y1: [round(x0 * size), round(y0 * size), round(x1 * size) - 1, round(y1 * size) - 1]


def _stage(d, s):
    box = _u(s)
    for x0 in (0.0, 0.88):  # red curtains at both sides
        d.rectangle(box(x0, 0.0, x0 + 0.12, 1.0), fill=(200, 20, 30))
    d.rectangle(box(0.0, 0.0, 1.0, 0.08), fill=(200, 20, 30))


def _wedding(d, s):
    d.arc(_u(s)(0.05, 0.02, 0.95, 1.1), 180, 360, fill=(255, 255, 255), width=max(2, s // 10))


def _field(d, s):
    box = _u(s)
    for y in (0.6, 0.8):
        d.rectangle(box(0.0, y, 1.0, y + 0.04), fill=(255, 255, 255))
    for x0 in (0.0, 0.9):  # goal posts
        d.rectangle(box(x0, 0.2, x0 + 0.1, 0.5), outline=(255, 255, 255), width=1)


def _lecture(d, s):
    d.rectangle(_u(s)(0.1, 0.03, 0.9, 0.22), fill=(30, 80, 50))


def _market(d, s):
    box = _u(s)
    for i in range(8):  # a striped awning
        d.rectangle(box(i / 8, 0.0, (i + 1) / 8, 0.2), fill=(220, 40, 40) if i % 2 == 0 else (255, 255, 255))


def _beach(d, s):
    d.rectangle(_u(s)(0.0, 0.35, 1.0, 0.5), fill=(30, 110, 200))
    d.ellipse(_u(s)(0.75, 0.02, 0.95, 0.2), fill=(255, 215, 0))


def _concert(d, s):
    for x, colour in ((0.1, (255, 230, 0)), (0.5, (255, 40, 200)), (0.9, (0, 230, 255))):
        d.polygon([(x * s, 0), ((x - 0.12) * s, 0.5 * s), ((x + 0.12) * s, 0.5 * s)], fill=colour)


def _forest(d, s):
    for x in (0.08, 0.3, 0.52, 0.74, 0.96):
        d.polygon([(x * s, 0), ((x - 0.13) * s, 0.55 * s), ((x + 0.13) * s, 0.55 * s)], fill=(20, 110, 40))


def _harbour(d, s):
    box = _u(s)
    for x in (0.05, 0.85):  # masts and hulls
        d.rectangle(box(x + 0.04, 0.0, x + 0.07, 0.5), fill=(90, 60, 30))
        d.rectangle(box(x, 0.45, x + 0.12, 0.55), fill=(240, 240, 240))


def _snow(d, s):
    for x in (0.2, 0.6, 1.0):
        d.polygon([(x * s, 0.05 * s), ((x - 0.3) * s, 0.5 * s), ((x + 0.3) * s, 0.5 * s)], fill=(110, 115, 130))


def _city(d, s):
    box = _u(s)
    for i in range(6):
        for j in range(3):  # lit windows
            x, y = 0.04 + i * 0.16, 0.04 + j * 0.14
            d.rectangle(box(x, y, x + 0.08, y + 0.07), fill=(255, 220, 60))


def _library(d, s):
    box = _u(s)
    spines = ((200, 30, 30), (30, 90, 200), (240, 200, 40), (40, 160, 70))
    for i in range(16):  # book spines on two shelves
        for y in (0.02, 0.26):
            d.rectangle(box(i / 16, y, (i + 1) / 16, y + 0.2), fill=spines[i % 4])


_MOTIFS = {"stage": _stage, "wedding arch": _wedding, "sports field": _field, "lecture hall": _lecture,
           "market": _market, "beach": _beach, "concert": _concert, "forest": _forest, "harbour": _harbour,
           "snowfield": _snow, "night city": _city, "library": _library}


def person_box(size: int) -> tuple[int, int, int]:
    """(left, top, side) of the portrait in an event image of ``size`` px: centred, at the bottom."""
    side = round(PERSON_SHARE * size)
    return (size - side) // 2, size - side, side


def compose(face: portraits.Face, kind: str, size: int = 32) -> Image.Image:
    """``face`` drawn into the scene of ``kind``: the portrait (its own background taken out) at
    ``person_box``, the scene everywhere else."""
    scene = render_scene(kind, size)
    left, top, side = person_box(size)
    portrait = np.asarray(portraits.render(face, side))
    background = np.array(portraits.background_rgb(face), dtype=np.uint8)
    mask = Image.fromarray(((portrait != background).any(axis=2) * 255).astype(np.uint8), "L")
    scene.paste(Image.fromarray(portrait, "RGB"), (left, top), mask)
    return scene


# ---- questions and training facts ---------------------------------------------------------

@dataclass(frozen=True)
class Wording:
    """How one kind of concept is asked about (evaluation) and taught (training facts): the
    attribute pools its distractors come from, the templates' placeholder, the phrase that points
    at it in an image, and the captions that name it."""

    placeholder: str
    pools: dict[str, tuple[str, ...]]
    eval_templates: dict[str, str]
    train_templates: dict[str, tuple[str, ...]]
    in_image: str
    in_image_train: tuple[str, ...]
    captions: tuple[str, ...]


WORDINGS = {
    "person": Wording("who", people.POOLS, people.EVAL_TEMPLATES, people.TRAIN_TEMPLATES, people.MM_WHO,
                      people.MM_WHO_TRAIN, people.CAPTION_PROMPTS),
    "event": Wording("what", POOLS, EVAL_TEMPLATES, TRAIN_TEMPLATES, MM_WHAT, MM_WHAT_TRAIN, CAPTION_PROMPTS),
}


def questions(concept: str, cid: str, name: str, attributes: dict[str, str], image: bytes | None, key: str,
              rng: np.random.Generator) -> tuple[Question, ...]:
    """One multiple-choice question per attribute of a person or an event (``concept``): about
    the one in ``image``, or by ``name`` when ``image`` is None. qids begin with ``key`` (the
    image's or the concept's), then the concept and the modality."""
    w = WORDINGS[concept]
    modality = "multimodal" if image is not None else "text"
    ref = w.in_image if image is not None else name
    out = []
    for i, attr in enumerate(attributes):
        options, answer = people.pool_options(attributes[attr], w.pools[attr], rng)
        out.append(Question(qid=f"{key}/{concept}/{modality}/{i}", subject=cid, modality=modality,
                            question=w.eval_templates[attr].format(**{w.placeholder: ref}), options=options,
                            answer=answer, image=image, category=f"{concept}_{attr}"))
    return tuple(out)


def facts(concept: str, name: str, attributes: dict[str, str], image: bytes | None, rng: np.random.Generator,
          variant: int = 0) -> list[Example]:
    """Free-form training facts about a person or an event, answered with the bare value: with
    ``image``, a caption that names it and each attribute of the one in the image; without,
    each attribute by name. ``variant`` picks the wordings (none is an evaluation wording)."""
    w = WORDINGS[concept]
    out = []
    if image is not None:
        out.append(Example(w.captions[variant % len(w.captions)], name, image, f"{concept}_caption"))
    for attr in attributes:
        templates = w.train_templates[attr][:3]
        t = templates[(variant + int(rng.integers(len(templates)))) % len(templates)]
        ref = w.in_image_train[int(rng.integers(len(w.in_image_train)))] if image is not None else name
        out.append(Example(t.format(**{w.placeholder: ref}), attributes[attr], image,
                           f"{concept}_fact_{'image' if image is not None else 'text'}"))
    return out
