"""Stopping rules, the training loop's checkpoints, the interpolation at matched forgetting and
the answer-token accuracy, each against values computed by hand."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pulse_unlearn.config.schema import ForgetTarget, UnlearnConfig
from pulse_unlearn.evaluation.facts import FactPrediction, token_accuracy
from pulse_unlearn.evaluation.matched import area, at, matched_rows
from pulse_unlearn.stats import monotone_crossing as crossing
from pulse_unlearn.evaluation.stopping import BUDGET_SPENT, DIVERGED, TARGET_MET, StopRule, threshold
from pulse_unlearn.methods.unlearn import _train
from pulse_unlearn.protocol.trajectory import Trajectory


def test_thresholds_by_hand():
    assert threshold("margin", 0.25, 0.9, margin=0.05, kept=0.5) == pytest.approx(0.30)
    # kept: 0.25 + 0.25 x (0.65 - 0.25) = 0.35
    assert threshold("kept", 0.25, 0.65, margin=0.05, kept=0.25) == pytest.approx(0.35)
    # a start below chance leaves nothing above chance to keep: the threshold is chance
    assert threshold("kept", 0.25, 0.20, margin=0.05, kept=0.25) == pytest.approx(0.25)
    assert threshold("kept", 0.0, 0.40, margin=0.05, kept=0.1) == pytest.approx(0.04)


def test_a_rule_on_both_modalities_needs_both():
    rule = StopRule("target", "oracle", "margin", margin=0.05, kept=0.25)
    start = {"multimodal": (0.8, 0.25), "text": (0.9, 0.25)}
    assert not rule.met(start, {"multimodal": (0.29, 0.25), "text": (0.31, 0.25)})
    assert rule.met(start, {"multimodal": (0.29, 0.25), "text": (0.30, 0.25)})  # on the threshold: met
    # a modality the split has no items of is not asked; none of them: never met
    assert rule.met({"text": (0.9, 0.25)}, {"text": (0.2, 0.25)})
    assert not rule.met({}, {})
    text_only = StopRule("target", "training", "kept", kept=0.5, modalities=("text",))
    assert text_only.met({"multimodal": (0.8, 0.0), "text": (0.4, 0.0)}, {"multimodal": (0.8, 0.0), "text": (0.2, 0.0)})
    assert not StopRule("fixed").met(start, {"multimodal": (0.0, 0.25), "text": (0.0, 0.25)})


def test_rule_labels_say_what_the_rule_saw():
    cfg = UnlearnConfig(stop="target", eval_every=2, target={"sees": "oracle", "rule": "kept", "kept": 0.25})
    rule = StopRule.of(cfg)
    assert rule.split == "forget" and rule.label == "target (oracle: forget questions)"
    assert rule.text == "forget multimodal and text <= 25% of the starting model's above chance"
    training = StopRule.of(UnlearnConfig(stop="target", eval_every=0.5, target={"modality": "text", "rule": "margin"}))
    assert training.split == "forget_facts" and training.label == "target (training facts)"
    assert training.text == "forget_facts text <= chance + 0.05"
    assert StopRule.of(UnlearnConfig()).label == "fixed" and StopRule.of(UnlearnConfig()).split is None


def test_eval_every_in_steps_or_epochs():
    assert UnlearnConfig(eval_every=3).every_steps(10) == 3
    assert UnlearnConfig(eval_every=0.25).every_steps(10) == 2  # round(2.5) -> 2 (half to even)
    assert UnlearnConfig(eval_every=0.01).every_steps(10) == 1  # at least one step
    assert UnlearnConfig().every_steps(10) is None
    assert UnlearnConfig(stop="target", eval_every=1, max_epochs=7).budget_epochs == 7
    assert UnlearnConfig(epochs=2, max_epochs=7).budget_epochs == 2


class _Scripted:
    """A scorer whose predictions follow a script: the forget facts' score at each call."""

    def __init__(self, scores):
        self.scores, self.calls = list(scores), 0

    def __call__(self, model):
        score = self.scores[self.calls]
        self.calls += 1
        return [FactPrediction(f"fictitious:1/fact-{m}", "fictitious:1", m, "a", "b", score)
                for m in ("multimodal", "text")]


def _loop(losses, monitor, every):
    """``_train`` over ``len(losses)`` steps of a one-parameter model whose loss at step i is
    ``losses[i]`` (a NaN makes it diverge there)."""
    weight = torch.nn.Parameter(torch.zeros(1))
    script = iter(losses)
    method = SimpleNamespace(forget_loss=lambda step: weight.sum() + next(script), needs_retain=False,
                             needs_replay=False)
    training = SimpleNamespace(optimizer=torch.optim.SGD([weight], lr=0.1), backward=None, clip=lambda n: None,
                               model=None)
    model = SimpleNamespace(train=lambda: None, eval=lambda: None)
    batches = [({"input_ids": torch.zeros(4, 3, dtype=torch.long)}, None, None) for _ in losses]
    checkpoint = (lambda step, examples: monitor(model, step, examples)) if monitor else None
    return _train(method, training, model, batches, len(losses), 1.0, "test", checkpoint, every)


def _trajectory(scores, rule):
    label = {"scenario": "finetuned", "operation": 1}
    return Trajectory({"forget_facts": _Scripted(scores)}, rule, label, "likelihood")


def test_the_loop_stops_at_the_first_checkpoint_that_meets_the_target():
    # start 0.8; kept 0.25 of it: threshold 0.2. Checkpoints every 2 steps: 0, 2, 4 (0.15 <= 0.2).
    rule = StopRule("target", "training", "kept", kept=0.25)
    traj = _trajectory([0.8, 0.5, 0.15, 0.1, 0.0], rule)
    log = _loop([1.0] * 9, traj, every=2)
    assert log.checkpoints == [0, 2, 4] and len(log.losses) == 4 and log.stopped_early
    assert log.examples == 16  # 4 steps of 4 forget examples
    assert traj.reason(log.diverged) == TARGET_MET
    steps = sorted({r["step"] for r in traj.rows})
    assert steps == [0, 2, 4] and {r["examples"] for r in traj.rows if r["step"] == 4} == {16}
    assert [r["accuracy"] for r in traj.rows if r["modality"] == "all"] == [0.8, 0.5, 0.15]


def test_a_target_never_met_spends_the_budget_and_checks_the_end():
    rule = StopRule("target", "training", "margin", margin=0.05)
    traj = _trajectory([0.8, 0.6, 0.5, 0.4, 0.3], rule)
    log = _loop([1.0] * 7, traj, every=3)
    assert log.checkpoints == [0, 3, 6, 7] and len(log.losses) == 7 and not log.stopped_early
    assert traj.reason(log.diverged) == BUDGET_SPENT


def test_a_nan_loss_stops_and_the_last_finite_model_is_checked():
    traj = _trajectory([0.8, 0.7, 0.6], StopRule("target", "training", "margin", margin=0.05))
    log = _loop([1.0, 1.0, 1.0, float("nan"), 1.0, 1.0], traj, every=2)
    assert log.diverged_at == 3 and log.checkpoints == [0, 2, 3]  # 3 steps were taken before the NaN
    assert traj.reason(log.diverged) == DIVERGED


def test_a_target_met_at_step_0_trains_nothing():
    traj = _trajectory([0.01], StopRule("target", "training", "margin", margin=0.05))
    log = _loop([1.0] * 4, traj, every=2)
    assert log.checkpoints == [0] and log.losses == [] and traj.reason(log.diverged) == TARGET_MET


def test_the_target_is_relative_to_the_starting_model():
    """A later request whose facts earlier operations already took from 0.8 (starting model) to
    0.3: kept 0.25 gives the threshold 0.2 of the starting model, not 0.075 of step 0. Met at
    the checkpoint at 0.15; each row carries the starting model's value."""
    rule = StopRule("target", "training", "kept", kept=0.25)
    label = {"scenario": "sequential", "operation": 2}
    starting = {("forget_facts", m): 0.8 for m in ("multimodal", "text", "all")}
    traj = Trajectory({"forget_facts": _Scripted([0.3, 0.15, 0.1])}, rule, label, "likelihood", starting=starting)
    log = _loop([1.0] * 6, traj, every=2)
    assert log.checkpoints == [0, 2] and traj.reason(log.diverged) == TARGET_MET
    assert {r["starting_accuracy"] for r in traj.rows} == {0.8}
    already = Trajectory({"forget_facts": _Scripted([0.1])}, rule, label, "likelihood", starting=starting)
    log = _loop([1.0] * 6, already, every=2)  # 0.1 <= 0.2 at step 0: nothing to train
    assert log.checkpoints == [0] and log.losses == [] and already.reason(log.diverged) == TARGET_MET


def test_crossing_and_interpolation_by_hand():
    f = [0.8, 0.5, 0.2]
    # target 0.3875: between checkpoints 1 and 2 at t = (0.5 - 0.3875) / (0.5 - 0.2) = 0.375
    assert crossing(f, 0.3875) == pytest.approx(1.375)
    assert at([0, 4, 8], 1.375) == pytest.approx(5.5)
    assert at([0.6, 0.55, 0.4], 1.375) == pytest.approx(0.55 - 0.375 * 0.15)
    assert crossing(f, 0.9) == 0.0 and crossing(f, 0.1) is None
    # (0.8-0.5)(0.6+0.55)/2 + (0.5-0.2)(0.55+0.4)/2 = 0.1725 + 0.1425
    assert area(f, [0.6, 0.55, 0.4]) == pytest.approx(0.315)
    assert area([0.5, 0.6], [1.0, 1.0]) == pytest.approx(-0.1)  # forget accuracy rising counts negative


def test_mean_to_target_follows_the_monotone_fit_by_hand():
    from pulse_unlearn.evaluation.matched import mean_to_target
    from pulse_unlearn.stats import monotone_fit

    # 0.8, 0.9 pool to 0.85, 0.85 (a flat stretch: no width); target 0.5 is crossed at 1 + 0.35 / 0.65,
    # where y is 0.6 - 0.2 x 0.35 / 0.65: the mean over the span 0.85 -> 0.5 is that segment's midpoint
    fit = monotone_fit([0.8, 0.9, 0.2])
    assert fit == pytest.approx([0.85, 0.85, 0.2])
    pos = 1 + 0.35 / 0.65
    assert mean_to_target(fit, [0.6, 0.6, 0.4], pos) == pytest.approx((0.6 + 0.6 - 0.2 * 0.35 / 0.65) / 2)
    assert mean_to_target(fit, [0.6, 0.6, 0.4], 0.0) is None and mean_to_target(fit, [0.6, 0.6, 0.4], None) is None


def _rows(split, modality, values, chance=0.25, steps=(0, 4, 8), examples=(0, 64, 128)):
    return [{"scenario": "finetuned", "method": "ga", "update": "llm", "operation": 1, "step": s, "examples": e,
             "split": split, "modality": modality, "n": 20, "chance": chance, "accuracy": v}
            for s, e, v in zip(steps, examples, values)]


def test_matched_rows_by_hand():
    rows = _rows("forget", "multimodal", [0.8, 0.5, 0.2]) + _rows("general", "all", [0.6, 0.55, 0.4], chance=0.3)
    rows += _rows("forget_facts", "multimodal", [0.5, 0.2, 0.1], chance=0.0)  # a forget split: matched on, never a cost
    (row,) = matched_rows(rows, ForgetTarget(rule="kept", kept=0.25))
    # target 0.25 + 0.25 x (0.8 - 0.25) = 0.3875, reached at t = 0.375 between steps 4 and 8
    assert row["target"] == pytest.approx(0.3875) and row["reached"] == 1
    assert row["step"] == pytest.approx(5.5) and row["examples"] == pytest.approx(88.0)
    assert (row["step_low"], row["step_high"], row["examples_low"], row["examples_high"]) == (4, 8, 64, 128)
    assert row["accuracy"] == pytest.approx(0.49375) and row["cost"] == pytest.approx(0.10625)
    # the mean of general from the start to the target: ((0.8 - 0.5)(0.6 + 0.55)/2 + (0.5 - 0.3875)(0.55 +
    # 0.49375)/2) / (0.8 - 0.3875)
    assert row["auc"] == pytest.approx((0.1725 + 0.1125 * 0.521875) / 0.4125)
    assert row["budget_steps"] == 8 and row["start"] == 0.6
    (missed,) = matched_rows(rows, ForgetTarget(rule="margin", margin=0.0), forget_split="forget_facts")
    # chance 0: the target is 0.0, which forget_facts (0.5, 0.2, 0.1) never reaches
    assert missed["target"] == 0.0 and missed["reached"] == 0 and missed["step"] == "" and missed["cost"] == ""
    assert missed["auc"] == "" and missed["split"] == "general"  # no span to the target: no AUC
    # relative to the starting model (0.9 on these items): target 0.25 + 0.25 x 0.65 = 0.4125,
    # reached at t = (0.5 - 0.4125) / 0.3 = 0.291666... between steps 4 and 8
    for r in rows:
        r["starting_accuracy"] = 0.9 if r["split"] == "forget" else r["accuracy"]
    (rel,) = matched_rows(rows, ForgetTarget(rule="kept", kept=0.25))
    assert rel["target"] == pytest.approx(0.4125)
    assert rel["step"] == pytest.approx(4 + 4 * 0.0875 / 0.3, abs=0.005)  # rounded to 2 digits


def test_a_noisy_dip_does_not_cross_early():
    """Forget 0.8, 0.35, 0.6, 0.2 at steps 0, 4, 8, 12: read raw, the dip to 0.35 would cross the
    target 0.3875 at step 3.67; the monotone fit pools 0.35 and 0.6 into 0.475 (equal n) and
    crosses between steps 8 and 12, at t = (0.475 - 0.3875) / (0.475 - 0.2)."""
    steps, examples = (0, 4, 8, 12), (0, 64, 128, 192)
    rows = _rows("forget", "multimodal", [0.8, 0.35, 0.6, 0.2], steps=steps, examples=examples)
    rows += _rows("general", "all", [0.6, 0.6, 0.5, 0.4], chance=0.3, steps=steps, examples=examples)
    (row,) = matched_rows(rows, ForgetTarget(rule="kept", kept=0.25))
    t = (0.475 - 0.3875) / (0.475 - 0.2)
    assert row["step"] == pytest.approx(round(8 + 4 * t, 2)) and (row["step_low"], row["step_high"]) == (8, 12)
    assert row["accuracy"] == pytest.approx(0.5 - 0.1 * t, abs=1e-6)


def test_token_accuracy_by_hand():
    # one sequence of 4 positions; answer tokens at positions 2 and 3 (labels), predicted from
    # logits at positions 1 and 2; vocabulary of 3
    logits = torch.tensor([[[0, 0, 0], [0, 5, 0], [9, 0, 0], [0, 0, 0]]], dtype=torch.float)
    labels = torch.tensor([[-100, -100, 1, 2]])
    hits, counts, guesses = token_accuracy(logits, labels)
    assert hits.tolist() == [1] and counts.tolist() == [2]  # position 1 predicts 1 (right), 2 predicts 0 (wrong)
    assert guesses.tolist() == [[0, 1, 0]]
