"""A black-box unit's operation: find a suffix from the model's answers alone.

Operation k asks, as feedback, ``feedback_forget`` training facts of the people of requests 1..k
(what has been asked to forget so far: one suffix serves every query) and ``feedback_retain``
training facts of the retain people (in a concepts scenario, none on an image that shows a
forget concept), both drawn seeded and asked as multiple choice (``blackbox.fact_questions``),
never the evaluation questions; ``holdout`` more retain facts, drawn apart from those, re-check the
finalists at the end (``Feedback.checked``). The search is seeded by the run seed, the unit, the operation
and its own ``seed``, and stopped by its query budget; the suffix it returns is appended to
every prompt of the evaluation that follows. The weights never change.

``search.csv`` keeps every suffix asked: the questions asked so far, its forget and retain
accuracy on the feedback, its objective and the best objective so far (the queries-to-target
curve), and for the finalists a holdout re-checked, their retain accuracy on it.
"""

from __future__ import annotations

import hashlib
import re
import time
from importlib.resources import files
from pathlib import Path

import numpy as np

from ..blackbox import SEARCHES, Feedback, fact_questions
from .. import draws
from ..errors import PulseError
from ..records import Unit
from ..evaluation.black_box_model import model_black_box

COLUMNS = ("scenario", "method", "update", "operation", "asked", "queries", "suffix", "forget", "retain",
           "objective", "best_objective", "holdout_retain")
SHIPPED = "english"


def make_search(name: str, cfg):
    return SEARCHES[name](**cfg.method_params.get(name, {}))


def check_search(name: str, cfg, src) -> None:
    """A black-box unit's parameters against the data, before anything is written: its budget
    pays for the empty suffix and one more, its vocabulary can be read."""
    search = make_search(name, cfg)
    asked = search.feedback_forget + search.feedback_retain
    reserved = (search.finalists + 1) * search.holdout if search.holdout else 0
    if search.budget < 2 * asked + reserved:
        rechecks = f" + (finalists + 1) x holdout = {2 * asked + reserved}" if reserved else f" = {2 * asked}"
        raise PulseError(f"method_params.{name}.budget={search.budget} must be at least 2 x (feedback_forget + "
                         f"feedback_retain){rechecks}: the empty suffix and one more"
                         + (", and the holdout's re-checks" if reserved else ""))
    vocabulary(search.vocabulary, src, cfg.model.source == "world")


def vocabulary(choice: str, src, world: bool) -> list[str]:
    """The words a suffix is made of: ``data`` (every word of the run's questions and facts: the
    embedded world's words), ``english`` (the shipped list), ``auto`` (data for the embedded world,
    english otherwise) or a file of words, one per line."""
    if choice == "auto":
        choice = "data" if world else SHIPPED
    if choice == "data":
        texts = [q.question for p in src.people.values() for q in p.questions]
        texts += [t for exs in src.facts.values() for ex in exs for t in (ex.prompt, ex.answer)]
        return sorted({w for t in texts for w in re.findall(r"[A-Za-z]+", t)})
    path = files("pulse_unlearn.blackbox").joinpath("words.txt") if choice == SHIPPED else Path(choice)
    try:
        words = [w.strip() for w in path.read_text().splitlines() if w.strip() and not w.startswith("#")]
    except OSError as e:
        raise PulseError(f"vocabulary {choice}: cannot be read ({e.strerror or e})") from None
    if not words:
        raise PulseError(f"vocabulary {choice}: holds no words")
    return list(dict.fromkeys(words))


def _names(src) -> dict[str, str]:
    names = {key: p.name for key, p in src.people.items() if p.name}
    if src.concepts is not None:
        names.update(src.concepts.names)
    return names


def _drawn(items: list, n: int, seed: int, side: str, skip: int = 0) -> list:
    """``n`` of ``items`` in a seeded order, after its first ``skip`` (so two draws are disjoint)."""
    rng = draws.rng(seed, "blackbox", {"forget": 0, "retain": 1}[side])
    return [items[i] for i in sorted(rng.permutation(len(items))[skip:skip + n])]


def search_seed(run_seed: int, unit: Unit, k: int, own: int) -> int:
    text = f"{run_seed}|{unit.scenario}|{unit.method}|{unit.update}|{k}|{own}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def find_suffix(search, model, evaluator, unit: Unit, k: int,
                words: list[str]) -> tuple[tuple[str, ...], dict, list[dict]]:
    """Operation ``k`` of a black-box unit: (the suffix, the operation's fields, search.csv's rows)."""
    cfg, src, sets = evaluator.cfg, evaluator.src, evaluator.sets
    t0 = time.time()
    forget_people = [key for request in sets.requests[:k] for key in request]
    names = _names(src)
    retain_facts = {key: src.away_from(src.facts.get(key, []), sets.forget) for key in sets.retain}
    forget = fact_questions(src.facts, names, forget_people, "forget", cfg.seed)
    retain = fact_questions({**src.facts, **retain_facts}, names, sets.retain, "retain", cfg.seed)
    if not forget or not retain:
        raise PulseError(f"{unit.method}: no {'forget' if not forget else 'retain'} training facts to ask as "
                         "feedback (a fact needs another person's answer to the same question)")
    items = _drawn(forget, search.feedback_forget, cfg.seed, "forget") + \
        _drawn(retain, search.feedback_retain, cfg.seed, "retain")
    holdout = _drawn(retain, search.holdout, cfg.seed, "retain", skip=search.feedback_retain)
    if search.holdout and not holdout:
        raise PulseError(f"{unit.method}: no retain facts are left for the holdout after the "
                         f"{search.feedback_retain} of the feedback ({len(retain)} in all)")
    feedback = Feedback(model_black_box(model, evaluator.encoder, cfg), items, search.budget,
                        search.margin, search.penalty, holdout, search.finalists if holdout else 0)
    best = search(feedback, words, search_seed(cfg.seed, unit, k, search.seed))
    rows, top = [], -np.inf
    for i, s in enumerate(feedback.history):
        top = max(top, s.objective)
        rows.append({**unit.fields, "operation": k, "asked": i, "queries": s.queries, "suffix": " ".join(s.words),
                     "forget": round(s.forget, 6), "retain": round(s.retain, 6), "objective": round(s.objective, 6),
                     "best_objective": round(float(top), 6),
                     "holdout_retain": round(feedback.held[s.words], 6) if s.words in feedback.held else ""})
    fields = {"suffix": " ".join(best.words), "queries": feedback.used, "feedback": len(items),
              "feedback_forget": round(best.forget, 6), "feedback_retain": round(best.retain, 6),
              "seconds": round(time.time() - t0, 2)}
    return best.words, fields, rows
