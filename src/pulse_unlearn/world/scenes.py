"""A small MMBench-like general-capability benchmark on synthetic scenes and text.

Unlearning should remove one set of people while leaving general skills intact, so we need a
yardstick for those skills. Every item tests a skill (name a colour, count shapes, add two
digits), never a memorised fact, so a model that learns it in pre-training can answer new,
freshly drawn items. Shapes are bold, flat and pure-coloured so a 32 px image is unambiguous.

Two kinds of skill: the *unrelated* ones (perception and reasoning) share nothing with people,
and the *world* ones use the words people's facts are made of (which of these is a city, a
company; which year comes first, over the birth years' range), so a cost of unlearning people on
the abilities nearest to them can be told from one on the rest (the summary's per-category rows).
A world asks the world categories with ``WorldConfig.world_skills``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from pulse_unlearn.records import LETTERS, Question
from pulse_unlearn.world.people import POOLS
from pulse_unlearn.world.portraits import png_bytes

IMAGE_CATEGORIES = ("colour", "shape", "count", "position")
TEXT_CATEGORIES = ("arithmetic", "comparison", "sequence")
CATEGORIES = IMAGE_CATEGORIES + TEXT_CATEGORIES
WORLD_CATEGORIES = ("world_city", "world_company", "world_year")  # the words of people's facts

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 160, 50), "blue": (30, 70, 220), "yellow": (240, 200, 0),
    "orange": (250, 120, 0), "purple": (140, 40, 180), "black": (20, 20, 20),
}
BACKGROUNDS = ((255, 255, 255), (220, 220, 220))  # white or light grey
SHAPES = ("circle", "square", "triangle", "cross", "diamond")
RELATIONS = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")
ALPHABET = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


@dataclass(frozen=True)
class SceneItem:
    """One benchmark row: a multiple-choice question plus a free-form answer for training."""

    question: str
    options: dict[str, str]
    answer: str
    category: str
    l2_category: str
    image: bytes | None
    free_answer: str


def make_items(n: int, rng: np.random.Generator, size: int = 32,
               categories: tuple[str, ...] = CATEGORIES) -> list[SceneItem]:
    """``n`` fresh items, ``categories`` cycled in order so each is equally present."""
    return [_MAKERS[categories[i % len(categories)]](rng, size, _option_count(rng)) for i in range(n)]


def to_question(item: SceneItem, index: int) -> Question:
    """The item as a ``Question`` record; the row index stands in for the subject."""
    return Question(qid=f"mmbench/{index}", subject=str(index),
                    modality="multimodal" if item.image is not None else "text",
                    question=item.question, options=dict(item.options), answer=item.answer,
                    image=item.image, category=item.category)


def _option_count(rng: np.random.Generator) -> int:
    """Mostly four options; about one item in ten has two or three, as in MMBench."""
    return 4 if rng.random() >= 0.1 else int(rng.integers(2, 4))


def _options(answer: str, pool, k: int, rng: np.random.Generator) -> tuple[dict[str, str], str]:
    """Shuffle ``answer`` among ``k - 1`` distractors from ``pool``; return options and answer letter."""
    others = [p for p in pool if p != answer]
    texts = [answer] + [others[i] for i in rng.choice(len(others), size=k - 1, replace=False)]
    texts = [texts[i] for i in rng.permutation(k)]
    return dict(zip(LETTERS, texts)), LETTERS[texts.index(answer)]


def _item(category, question, answer, pool, k, rng, free, image=None) -> SceneItem:
    options, letter = _options(answer, pool, k, rng)
    l2 = ("perception" if category in IMAGE_CATEGORIES else "world knowledge" if category in WORLD_CATEGORIES
          else "reasoning")
    return SceneItem(question, options, letter, category, l2, None if image is None else png_bytes(image), free)


# ---- drawing ----------------------------------------------------------------------------


def _canvas(rng: np.random.Generator, size: int) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("RGB", (size, size), BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))])
    return img, ImageDraw.Draw(img)


def _shape(d: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, colour: str) -> None:
    """Draw a filled ``kind`` centred at (cx, cy) within radius ``r`` (pixels), no outline."""
    fill = COLOURS[colour]
    x0, y0, x1, y1 = round(cx - r), round(cy - r), round(cx + r) - 1, round(cy + r) - 1
    if kind == "circle":
        d.ellipse([x0, y0, x1, y1], fill=fill)
    elif kind == "square":
        q = 0.85 * r  # a bit smaller so its area matches the other shapes
        d.rectangle([round(cx - q), round(cy - q), round(cx + q) - 1, round(cy + q) - 1], fill=fill)
    elif kind == "triangle":
        d.polygon([(round(cx), y0), (x1, y1), (x0, y1)], fill=fill)
    elif kind == "cross":
        t = 0.35 * r  # half arm width
        d.rectangle([round(cx - t), y0, round(cx + t) - 1, y1], fill=fill)
        d.rectangle([x0, round(cy - t), x1, round(cy + t) - 1], fill=fill)
    elif kind == "diamond":
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        d.polygon([(mx, y0), (x1, my), (mx, y1), (x0, my)], fill=fill)
    else:
        raise ValueError(f"unknown shape {kind!r}")


def _pick(rng: np.random.Generator, values):
    return values[int(rng.integers(len(values)))]


# ---- image categories -------------------------------------------------------------------


def _single(rng: np.random.Generator, size: int) -> tuple[Image.Image, str, str]:
    """One large shape near the centre: the canvas for the colour and shape questions."""
    img, d = _canvas(rng, size)
    kind, colour = _pick(rng, SHAPES), _pick(rng, tuple(COLOURS))
    cx, cy = size / 2 + rng.uniform(-0.08, 0.08, size=2) * size
    _shape(d, kind, cx, cy, rng.uniform(0.28, 0.36) * size, colour)
    return img, kind, colour


def _colour(rng, size, k):
    img, _, colour = _single(rng, size)
    return _item("colour", "What colour is the shape in the image?", colour, tuple(COLOURS), k, rng,
                 f"The shape is {colour}.", img)


def _shape_item(rng, size, k):
    img, kind, _ = _single(rng, size)
    return _item("shape", "What shape is shown in the image?", kind, SHAPES, k, rng, f"It is a {kind}.", img)


def _count(rng, size, k):
    """1-4 equal small shapes, each inside its own cell of a 4 x 4 grid, so they never touch."""
    img, d = _canvas(rng, size)
    kind, colour = _pick(rng, SHAPES), _pick(rng, tuple(COLOURS))
    m = int(rng.integers(1, 5))
    for cell in rng.choice(16, size=m, replace=False):
        cx, cy = (0.125 + 0.25 * (cell % 4)) * size, (0.125 + 0.25 * (cell // 4)) * size
        _shape(d, kind, cx, cy, 0.1 * size, colour)
    free = "There is 1 shape." if m == 1 else f"There are {m} shapes."
    return _item("count", "How many shapes are in the image?", str(m), ("1", "2", "3", "4"), k, rng, free, img)


def _position(rng, size, k):
    """Two shapes of different colours, side by side or one above the other."""
    img, d = _canvas(rng, size)
    a, b = (list(COLOURS)[i] for i in rng.choice(len(COLOURS), size=2, replace=False))
    relation = _pick(rng, tuple(RELATIONS))
    near, far = 0.27 * size, 0.73 * size  # centres along the axis; "a" sits at ``near`` for left/above
    pa, pb = (near, far) if relation in ("left", "above") else (far, near)
    for colour, along in ((a, pa), (b, pb)):
        across = size / 2 + rng.uniform(-0.06, 0.06) * size
        cx, cy = (along, across) if relation in ("left", "right") else (across, along)
        _shape(d, _pick(rng, SHAPES), cx, cy, rng.uniform(0.17, 0.21) * size, colour)
    question = f"Where is the {a} shape relative to the {b} shape?"
    free = f"The {a} shape is {RELATIONS[relation]} the {b} shape."
    return _item("position", question, relation, tuple(RELATIONS), k, rng, free, img)


# ---- text categories --------------------------------------------------------------------


def _arithmetic(rng, size, k):
    """Single-digit addition or non-negative subtraction; distractors are near misses."""
    a, b = (int(v) for v in rng.integers(0, 10, size=2))
    if rng.random() < 0.5:
        op, result = "+", a + b
    else:
        a, b = max(a, b), min(a, b)
        op, result = "-", a - b
    pool = [str(result + d) for d in (-3, -2, -1, 1, 2, 3) if 0 <= result + d <= 18]
    return _item("arithmetic", f"What is {a} {op} {b}?", str(result), pool, k, rng, f"{a} {op} {b} = {result}.")


def _comparison(rng, size, k):
    """Pick the larger (or smaller) of k numbers; the options are exactly those numbers."""
    nums = [int(v) for v in rng.choice(21, size=k, replace=False)]
    larger = rng.random() < 0.5
    best = max(nums) if larger else min(nums)
    listed = ", ".join(map(str, nums[:-1])) + f" or {nums[-1]}"
    word = ("larger" if larger else "smaller") if k == 2 else ("the largest" if larger else "the smallest")
    options = dict(zip(LETTERS, map(str, nums)))
    free = f"{best} is {'larger' if larger else 'smaller'}." if k == 2 else f"The {word[4:]} is {best}."
    return SceneItem(f"Which number is {word}: {listed}?", options, LETTERS[nums.index(best)],
                     "comparison", "reasoning", None, free)


def _sequence(rng, size, k):
    """The day, month or letter just after (or before) a given one."""
    noun, seq = _pick(rng, (("day", DAYS), ("month", MONTHS), ("letter", ALPHABET)))
    wraps = noun != "letter"  # Sunday -> Monday and December -> January, but nothing after Z
    after = rng.random() < 0.5
    lo, hi = (0, len(seq)) if wraps else ((0, len(seq) - 1) if after else (1, len(seq)))
    i = int(rng.integers(lo, hi))
    answer = seq[(i + (1 if after else -1)) % len(seq)]
    way = "after" if after else "before"
    question = f"What letter comes {way} {seq[i]}?" if noun == "letter" else f"Which {noun} comes {way} {seq[i]}?"
    return _item("sequence", question, answer, seq, k, rng, f"{answer} comes {way} {seq[i]}.")


# ---- world categories: the vocabulary of people's facts, no person's fact ---------------


def _kind_of_word(category: str, kind: str, attribute: str):
    """"Which of these is a <kind>?": one value of ``attribute``'s pool among values of the other pools,
    all capitalised, so the answer's spelling does not give it away."""
    others = tuple(v[:1].upper() + v[1:] for key, pool in POOLS.items() if key not in (attribute, "birth_year")
                   for v in pool)

    def make(rng, size, k):
        answer = _pick(rng, POOLS[attribute])
        distractors = [others[i] for i in rng.choice(len(others), size=k - 1, replace=False)]
        return _item(category, f"Which of these is a {kind}?", answer, (answer, *distractors), k, rng,
                     f"{answer} is a {kind}.")
    return make


def _world_year(rng, size, k):
    """The earliest (or latest) of k years in the range the world's people are born in."""
    years = [str(y) for y in rng.choice(POOLS["birth_year"], size=k, replace=False)]
    earliest = rng.random() < 0.5
    best = min(years) if earliest else max(years)
    word = "earliest" if earliest else "latest"
    listed = ", ".join(years[:-1]) + f" or {years[-1]}"
    return SceneItem(f"Which year is the {word}: {listed}?", dict(zip(LETTERS, years)), LETTERS[years.index(best)],
                     "world_year", "world knowledge", None, f"The {word} is {best}.")


_MAKERS = {"colour": _colour, "shape": _shape_item, "count": _count, "position": _position,
           "arithmetic": _arithmetic, "comparison": _comparison, "sequence": _sequence,
           "world_city": _kind_of_word("world_city", "city", "city"),
           "world_company": _kind_of_word("world_company", "company", "employer"), "world_year": _world_year}
