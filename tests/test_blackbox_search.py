"""Black-box suffix searches: they see only answers (a black box that raises on anything but a
call with queries), the objective and the budget by hand, the Dirichlet search's moving average
and concentrations by hand, the feedback questions built from facts, and on a toy black box whose
forget accuracy falls only when one hidden word pair is in the suffix, the Dirichlet search finds
the pair more often than greedy at the same budget (counts printed)."""

from __future__ import annotations

import numpy as np
import pytest

from pulse_unlearn.blackbox import SEARCHES, BudgetSpent, Feedback, FeedbackItem, Query, fact_questions
from pulse_unlearn.blackbox.search import concentrations, ema_update
from pulse_unlearn.records import Example

WORDS = [f"w{i}" for i in range(40)]


def _items(n_forget=10, n_retain=10):
    return ([FeedbackItem(f"f{i}", {"A": "x", "B": "y"}, "A", None, "forget") for i in range(n_forget)]
            + [FeedbackItem(f"r{i}", {"A": "x", "B": "y"}, "A", None, "retain") for i in range(n_retain)])


class OnlyAnswers:
    """A black box that answers and refuses everything else: any attribute read raises."""

    def __init__(self, answer):
        object.__setattr__(self, "_answer", answer)

    def __getattribute__(self, name):
        if name in ("__call__", "__class__", "_answer"):
            return object.__getattribute__(self, name)
        raise AssertionError(f"the search read {name!r} of the black box")

    def __setattr__(self, name, value):
        raise AssertionError(f"the search set {name!r} on the black box")

    def __call__(self, queries):
        queries = list(queries)
        assert all(type(q) is Query for q in queries)
        return [self._answer(q) for q in queries]


def pair_box(pair: set[str]):
    """Right on every question unless the suffix holds both words of ``pair``: then forget
    questions (text starting with f) are answered wrong."""
    def answer(q):
        text, *words = q.text.split()
        return "B" if text.startswith("f") and pair <= set(words) else "A"
    return OnlyAnswers(answer)


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_every_search_sees_only_answers_and_stays_within_the_budget(name):
    feedback = Feedback(pair_box({"w1", "w2"}), _items(), budget=20 * 37)
    best = SEARCHES[name](length=3)(feedback, WORDS, 0)
    assert feedback.used <= 20 * 37 and feedback.used % 20 == 0
    assert feedback.used > 20 * 30  # stopped by the budget, not before
    assert best.objective == max(s.objective for s in feedback.history)
    assert len(best.words) in (0, 3)


def test_objective_budget_and_repeated_suffixes_by_hand():
    # forget answered wrong on 4 of 10 with the word "x"; retain: 2 of 10 wrong with "x", 1 wrong with none
    def answer(q):
        text, *words = q.text.split()
        i = int(text[1:])
        if text.startswith("f"):
            return "B" if "x" in words and i < 4 else "A"
        return "B" if i < 1 or ("x" in words and i < 2) else "A"
    fb = Feedback(OnlyAnswers(answer), _items(), budget=60, margin=0.05, penalty=2.0)
    assert (fb.start.forget, fb.start.retain, fb.used) == (1.0, 0.9, 20)
    assert fb.start.objective == pytest.approx(0.0)
    s = fb.score(["x"])
    # J = (1 - 0.6) - 2 * max(0, (0.9 - 0.05) - 0.8) = 0.4 - 0.1
    assert (s.forget, s.retain, s.queries) == (0.6, 0.8, 40) and s.objective == pytest.approx(0.3)
    assert fb.score(["x"]) is s and fb.used == 40  # asked again: free
    fb.score(["y"])
    with pytest.raises(BudgetSpent):
        fb.score(["z"])  # 60 + 20 > 60
    assert fb.used == 60 and fb.best is s


def test_the_holdout_rechecks_the_finalists_by_hand():
    # "x" fools the feedback (forget 4 of 10 right, feedback retain untouched) but costs half the holdout;
    # "y" forgets less (7 of 10 right) and costs nothing; "w" forgets all but costs 2 of 10 feedback
    # retain, and the holdout would favour it: it only vetoes, so "w" stays penalised
    def answer(q):
        text, *words = q.text.split()
        i = int(text[1:])
        if text.startswith("f"):
            return "B" if ("x" in words and i < 6) or ("y" in words and i < 3) or "w" in words else "A"
        if text.startswith("r"):
            return "B" if "w" in words and i < 2 else "A"
        return "B" if "x" in words and i < 5 else "A"
    holdout = [FeedbackItem(f"h{i}", {"A": "x", "B": "y"}, "A", None, "retain") for i in range(10)]
    fb = Feedback(OnlyAnswers(answer), _items(), budget=120, holdout=holdout, finalists=3)
    assert fb.reserve == 40  # (3 finalists + the empty suffix) x 10 holdout questions
    x, y, w = fb.score(["x"]), fb.score(["y"]), fb.score(["w"])
    # J(w) = (1 - 0) - 10 * ((0.95 - 0.8)) = -0.5
    assert [s.objective for s in (x, y, w)] == [pytest.approx(v) for v in (0.6, 0.3, -0.5)] and fb.best is x
    with pytest.raises(BudgetSpent):
        fb.score(["z"])  # 80 + 20 > 120 - 40
    chosen = fb.checked(3)
    # on the holdout: empty 1.0, x 0.5, y 1.0, w 1.0; the larger shortfall counts:
    # J(x) = 0.6 - 10 * (0.95 - 0.5) = -3.9, J(y) = 0.3, J(w) = 1 - 10 * 0.15 = -0.5, J(empty) = 0
    assert fb.held == {(): 1.0, ("x",): 0.5, ("y",): 1.0, ("w",): 1.0}
    assert chosen is y and fb.used == 120
    with pytest.raises(ValueError, match="retain questions only"):
        Feedback(OnlyAnswers(answer), _items(), budget=90, holdout=_items(1, 0), finalists=1)


def test_replies_are_read_as_letters_and_a_wrong_count_is_refused():
    fb = Feedback(OnlyAnswers(lambda q: " a. because"), _items(2, 2), budget=100)
    assert fb.start.forget == 1.0  # "a" is option A
    with pytest.raises(ValueError, match="2 replies to 4 questions"):
        Feedback(lambda qs: ["A", "A"], _items(2, 2), budget=100)


def test_moving_average_and_concentrations_by_hand():
    m = np.full((2, 2, 3), 1 / 3)  # 2 components, 2 positions, 3 words
    # component 0 has elites [0, 2] and [1, 2]; component 1 none
    got = ema_update(m, [[[0, 2], [1, 2]], []], ema=0.5)
    # position 0: frequencies (1/2, 1/2, 0) -> 0.5/3 + 0.5 * f; position 1: (0, 0, 1)
    assert got[0, 0] == pytest.approx([1 / 6 + 1 / 4, 1 / 6 + 1 / 4, 1 / 6])
    assert got[0, 1] == pytest.approx([1 / 6, 1 / 6, 1 / 6 + 1 / 2])
    assert got[1] == pytest.approx(m[1]) and m[0, 0, 0] == pytest.approx(1 / 3)  # untouched, input kept
    assert got[0].sum(-1) == pytest.approx([1, 1])  # still distributions
    alpha = concentrations(got, 0.5, 16)
    assert alpha[0, 1, 2] == pytest.approx(0.5 + 16 * (1 / 6 + 1 / 2))


def test_one_generation_of_the_dirichlet_search_on_a_toy_objective_by_hand():
    """Budget for the empty suffix and one generation of 2 (40 words, length 2, so the next
    generation's first suffix is new and over the budget): the elite, the better of the two (the
    first of equals), moves the average of each of its words by ema = 0.3."""
    def answer(q):
        return "B" if q.text.startswith("f") and "w1" in q.text.split() else "A"  # w1 forgets
    checked = 0
    for seed in range(8):
        fb = Feedback(OnlyAnswers(answer), _items(1, 1), budget=2 * 3)
        search = SEARCHES["blackbox_dirichlet"](length=2, population=2, elite=0.5, components=1, ema=0.3)
        search(fb, WORDS, seed)
        if len(fb.history) < 3:
            continue  # the generation drew one suffix twice: asked once
        first, second = fb.history[1:]  # the generation's two suffixes, in draw order
        elite = first if first.objective >= second.objective else second
        for pos in range(2):
            want = np.full(len(WORDS), 0.7 / len(WORDS))
            want[WORDS.index(elite.words[pos])] += 0.3
            assert search.m[0, pos] == pytest.approx(want), seed
        checked += 1
    assert checked >= 6


def test_fact_questions_ask_each_fact_among_other_peoples_answers():
    facts = {"p1": [Example("Where does Ann live?", "Paris"), Example("Tell me about Ann.", "a b c d e f g h"),
                    Example("Who is this?", "Ann", b"img1")],
             "p2": [Example("Where does Bo live?", "Rome"), Example("Who is this?", "Bo", b"img2")],
             "p3": [Example("Where does Cy live?", "Oslo"), Example("What is the odd one?", "z")]}
    names = {"p1": "Ann", "p2": "Bo", "p3": "Cy"}
    got = fact_questions(facts, names, ["p1", "p3"], "forget", seed=0)
    # p1: the city (distractors Rome, Oslo) and the caption (distractor Bo); the biography is too long;
    # p3: the city; its odd question has no other person's answer to draw
    assert [(it.question, sorted(it.options.values())) for it in got] == [
        ("Where does Ann live?", ["Oslo", "Paris", "Rome"]), ("Who is this?", ["Ann", "Bo"]),
        ("Where does Cy live?", ["Oslo", "Paris", "Rome"])]
    assert [it.options[it.answer] for it in got] == ["Paris", "Ann", "Oslo"]
    assert got[1].image == b"img1" and {it.side for it in got} == {"forget"}
    assert fact_questions(facts, names, ["p1", "p3"], "forget", seed=0) == got  # seeded


def test_the_dirichlet_search_finds_a_hidden_word_pair_more_often_than_greedy():
    """No word alone changes an answer; 150 suffixes' worth of budget; 20 hidden pairs."""
    found = {}
    for name in ("blackbox_dirichlet", "blackbox_greedy"):
        found[name] = 0
        for seed in range(20):
            a, b = np.random.default_rng(seed + 100).choice(len(WORDS), 2, replace=False)
            feedback = Feedback(pair_box({WORDS[a], WORDS[b]}), _items(), budget=20 * 150)
            found[name] += SEARCHES[name](length=4)(feedback, WORDS, seed).forget == 0.0
    print(f"hidden pair found in 20 tries: {found}")
    assert found["blackbox_dirichlet"] > found["blackbox_greedy"]
