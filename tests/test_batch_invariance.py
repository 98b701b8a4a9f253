"""Predictions do not depend on ``eval_batch_size`` (nor on the tokenizer's padding side).

Every item is scored at batch size 1 (one sequence a pass: no padding, no shared prefix) and at
64 (padded batches, shared prefixes), through the factory a run uses (``make_scorer``), under
each scoring, on the embedded world's tiny model and on tiny llava-hf checkpoints built here:
LLaVA-1.5, and LLaVA-NeXT, whose portraits of several sizes expand to several image token counts.

"The same" means the same predicted answer for every item (the same generated reply under
``mllmu``) and per-option scores within ``TOL`` = 1e-5 in float32. Not exact equality: a batch
of 64 multiplies matrices of other shapes than a batch of 1 (other blocking, other summation
order) and a shared prefix is computed once and its cache extended, so the last bits differ
(measured: at most 1.2e-6, one or two float32 steps at scores of up to 8; 1e-5 leaves a margin
for other CPUs).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from types import SimpleNamespace

import pytest
from real_data import build_tiny_llava, build_tiny_llava_next, write_mllmu

from pulse_unlearn.config.schema import RunConfig
from pulse_unlearn.data.batches import Encoder
from pulse_unlearn.data.mllmu import load_facts, load_people
from pulse_unlearn.evaluation.evaluator import make_scorer
from pulse_unlearn.evaluation.facts import fact_items
from pulse_unlearn.evaluation.scorers import Scorer
from pulse_unlearn.models.load import load_model

TOL = 1e-5
# (padding side, eval_batch_size, eval_share_prefix): the first is the reference. Batch size 1 has
# no padding and nothing to share; at 64, with and without shared prefixes, padding is computed.
SETTINGS = [("right", 1, True), ("right", 64, True), ("right", 64, False), ("left", 64, True), ("left", 64, False)]


def _scored(model, processor, items, task: str, scoring: str, side: str, batch_size: int, share_prefix: bool):
    """``items`` scored as a run with these settings scores them: (scorer, predictions)."""
    processor = copy.deepcopy(processor)
    processor.tokenizer.padding_side = side
    cfg = RunConfig(scoring=scoring, eval_batch_size=batch_size, eval_share_prefix=share_prefix,
                    parity={"mc_max_new_tokens": 3})
    scorer = make_scorer(task, Encoder(processor), items, cfg)
    return scorer, scorer(model)


def _assert_exercised(scorer, share_prefix: bool) -> None:
    """Guard: a forward-pass scorer at batch size 64 did what batch size 1 cannot: run a shared
    prefix, or compute padding. (Under ``mllmu`` a run generates one item at a time whatever
    ``eval_batch_size``; the replies are compared instead.)"""
    if not isinstance(scorer, Scorer):
        return
    if share_prefix:
        assert scorer.shared
    else:
        assert scorer.computed_tokens > sum(map(len, scorer.enc.ids))


def _assert_invariant(model, processor, items, scoring: str, settings) -> None:
    """The same predicted answer (and reply) for every item under every setting, scores within TOL."""
    (ref_scorer, ref), *runs = [_scored(model, processor, items, "choice", scoring, *s) for s in settings]
    for (_, _, share_prefix), (scorer, got) in zip(settings[1:], runs):
        _assert_exercised(scorer, share_prefix)
        assert [p.qid for p in got] == [p.qid for p in ref]
        assert [p.predicted for p in got] == [p.predicted for p in ref]
        for a, b in zip(got, ref):
            assert a.scores == pytest.approx(b.scores, abs=TOL), a.qid
        if scoring == "mllmu":
            assert scorer.replies == ref_scorer.replies


@pytest.fixture(scope="module")
def world(tiny_models):
    model, processor = load_model(tiny_models["finetuned"], dtype="float32", device="cpu")
    return model, processor, tiny_models["world"] / "MLLMU-Bench"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{name: checkpoint folder}, and questions on portraits of several sizes, of several lengths
    (so that batches of them are padded)."""
    root = tmp_path_factory.mktemp("batch-invariance")
    bench = write_mllmu(root / "MLLMU-Bench", n_full=10, n_celeb=1, shards=1, sized=True)
    folders = {"llava": build_tiny_llava(root / "llava"), "llava-next": build_tiny_llava_next(root / "llava-next")}
    questions = [q for p in load_people(bench, "Full_Set") for q in p.questions]
    return folders, [replace(q, question=q.question + " please" * (i % 5)) for i, q in enumerate(questions)]


@pytest.mark.parametrize("scoring", ["likelihood", "logits", "mllmu"])
def test_world_predictions_do_not_depend_on_batch_size(world, scoring):
    model, processor, bench = world
    questions = [q for p in load_people(bench, "Full_Set") for q in p.questions]
    _assert_invariant(model, processor, questions, scoring, [s for s in SETTINGS if s[0] == "right"])


def test_world_fact_scores_do_not_depend_on_batch_size(world):
    """The training facts' answer-token accuracy (a stopping rule's score) reads ``eval_batch_size`` too."""
    model, processor, bench = world
    facts = load_facts(bench)
    items = fact_items(SimpleNamespace(facts=facts), sorted(facts)[:3])
    assert len(items) > 64
    (_, ref), (_, got) = (_scored(model, processor, items, "facts", "likelihood", "right", n, True) for n in (1, 64))
    assert [(p.qid, p.predicted, p.score) for p in got] == [(p.qid, p.predicted, p.score) for p in ref]


@pytest.mark.parametrize("name", ["llava", "llava-next"])
@pytest.mark.parametrize("scoring", ["likelihood", "logits", "mllmu"])
def test_checkpoint_predictions_do_not_depend_on_batch_size_or_padding_side(checkpoints, name, scoring):
    folders, questions = checkpoints
    model, processor = load_model(folders[name], device="cpu")
    _assert_invariant(model, processor, questions, scoring, SETTINGS)
