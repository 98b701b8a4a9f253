"""The general-capability benchmark must be reproducible and its answers must be right."""

import io
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from pulse_unlearn.records import Question
from pulse_unlearn.world.scenes import (BACKGROUNDS, CATEGORIES, COLOURS, IMAGE_CATEGORIES, TEXT_CATEGORIES,
                                        WORLD_CATEGORIES, make_items, to_question)


@pytest.fixture(scope="module")
def items():
    return make_items(280, np.random.default_rng(0), categories=CATEGORIES + WORLD_CATEGORIES)


def _pixels(item) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(item.image)).convert("RGB"))


def _foreground(x: np.ndarray) -> np.ndarray:
    bg = np.array(x[0, 0])
    assert tuple(bg) in BACKGROUNDS
    return (x != bg).any(axis=2)


def _components(mask: np.ndarray) -> int:
    """Number of 8-connected foreground blobs (tiny flood fill; no scipy needed)."""
    seen, count = np.zeros_like(mask), 0
    h, w = mask.shape
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        count += 1
        stack = [start]
        seen[start] = True
        while stack:
            y, x = stack.pop()
            for ny in range(max(y - 1, 0), min(y + 2, h)):
                for nx in range(max(x - 1, 0), min(x + 2, w)):
                    if mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        stack.append((ny, nx))
    return count


def test_same_seed_same_items():
    assert make_items(35, np.random.default_rng(5)) == make_items(35, np.random.default_rng(5))
    a, b = make_items(35, np.random.default_rng(5)), make_items(35, np.random.default_rng(6))
    assert [i.image for i in a if i.image] != [i.image for i in b if i.image]


def test_categories_cycle_and_all_present():
    got = make_items(70, np.random.default_rng(1))
    assert [i.category for i in got] == [CATEGORIES[k % len(CATEGORIES)] for k in range(70)]
    assert Counter(i.category for i in got) == {c: 10 for c in CATEGORIES}
    assert set(CATEGORIES) == set(IMAGE_CATEGORIES) | set(TEXT_CATEGORIES)


def test_options_well_formed(items):
    counts = Counter()
    for it in items:
        n = len(it.options)
        counts[n] += 1
        assert 2 <= n <= 4
        assert list(it.options) == ["A", "B", "C", "D"][:n]
        assert len(set(it.options.values())) == n
        assert it.answer in it.options
        assert it.free_answer
    assert counts.most_common(1)[0][0] == 4
    assert counts[2] + counts[3] > 0


def test_answer_letters_are_spread(items):
    letters = Counter(it.answer for it in items)
    assert set(letters) == {"A", "B", "C", "D"}


def test_images_only_on_image_items(items):
    for it in items:
        if it.category in IMAGE_CATEGORIES:
            assert it.image is not None and it.l2_category == "perception"
            assert _pixels(it).shape == (32, 32, 3)
        else:
            l2 = "world knowledge" if it.category in WORLD_CATEGORIES else "reasoning"
            assert it.image is None and it.l2_category == l2


def test_image_size_parameter():
    it = make_items(1, np.random.default_rng(0), size=64)[0]
    assert _pixels(it).shape == (64, 64, 3)


def test_colour_answer_is_dominant_colour(items):
    for it in (i for i in items if i.category == "colour"):
        x = _pixels(it)
        fg = x[_foreground(x)]
        colour, n = Counter(map(tuple, fg)).most_common(1)[0]
        assert colour == COLOURS[it.options[it.answer]]
        assert n > 0.1 * x.shape[0] * x.shape[1]  # large enough to see


def test_count_answer_matches_blobs(items):
    for it in (i for i in items if i.category == "count"):
        x = _pixels(it)
        assert _components(_foreground(x)) == int(it.options[it.answer])


def test_position_answer_matches_centroids(items):
    for it in (i for i in items if i.category == "position"):
        a, b = re.match(r"Where is the (\w+) shape relative to the (\w+) shape\?", it.question).groups()
        x = _pixels(it)
        (ya, xa), (yb, xb) = (np.argwhere((x == COLOURS[c]).all(axis=2)).mean(axis=0) for c in (a, b))
        dx, dy = xa - xb, ya - yb
        expected = ("left" if dx < 0 else "right") if abs(dx) > abs(dy) else ("above" if dy < 0 else "below")
        assert it.options[it.answer] == expected


def test_arithmetic_is_right(items):
    for it in (i for i in items if i.category == "arithmetic"):
        a, op, b = re.match(r"What is (\d) ([+-]) (\d)\?", it.question).groups()
        result = int(a) + int(b) if op == "+" else int(a) - int(b)
        assert 0 <= result < 20
        assert it.options[it.answer] == str(result)


def test_comparison_is_right(items):
    for it in (i for i in items if i.category == "comparison"):
        nums = [int(v) for v in re.findall(r"\d+", it.question)]
        assert sorted(nums) == sorted(int(v) for v in it.options.values())
        want = max(nums) if ("larger" in it.question or "largest" in it.question) else min(nums)
        assert it.options[it.answer] == str(want)


def test_sequence_is_right(items):
    for it in (i for i in items if i.category == "sequence"):
        way, given = re.match(r"(?:Which \w+|What letter) comes (after|before) (\w+)\?", it.question).groups()
        for seq in (["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
                    ["January", "February", "March", "April", "May", "June", "July", "August",
                     "September", "October", "November", "December"],
                    [chr(c) for c in range(65, 91)]):
            if given in seq:
                i = seq.index(given) + (1 if way == "after" else -1)
                assert it.options[it.answer] == seq[i % len(seq)]


def test_to_question(items):
    for k, it in enumerate(items[:14]):
        q = to_question(it, k)
        assert isinstance(q, Question)
        assert q.qid == f"mmbench/{k}" and q.subject == str(k) and q.category == it.category
        assert q.modality == ("multimodal" if it.image else "text")
        assert q.options == it.options and q.answer == it.answer and q.image == it.image


def test_world_items_ask_the_words_of_peoples_facts(items):
    """A city or company among values of the other attributes' pools (all capitalised, so spelling
    gives nothing away); the earliest or latest of years in the birth years' range."""
    from pulse_unlearn.world.people import POOLS

    seen = Counter()
    for it in items:
        if it.category not in WORLD_CATEGORIES:
            continue
        seen[it.category] += 1
        values, answer = list(it.options.values()), it.options[it.answer]
        if it.category == "world_year":
            assert set(values) <= set(POOLS["birth_year"])
            assert answer == (min(values) if "earliest" in it.question else max(values))
            continue
        pool = POOLS["city"] if it.category == "world_city" else POOLS["employer"]
        assert answer in pool and not set(values) - {answer} & set(pool)
        assert all(v[:1].isupper() for v in values)
    assert set(seen) == set(WORLD_CATEGORIES)
