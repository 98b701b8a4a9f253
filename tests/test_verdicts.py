"""findings.csv: each finding's comparisons from a run's predictions, paired over the people or
items both sides share, Holm-corrected, "inconclusive" unless the interval excludes 0."""

from __future__ import annotations

import numpy as np
import pytest

from pulse_unlearn.config import IntervalConfig
from pulse_unlearn.protocol.verdicts import COLUMNS, findings_rows
from pulse_unlearn.stats import holm, holm_levels

SETTINGS = IntervalConfig(resamples=2000, seed=0)


def item(scenario, step, split, subject, correct, modality="multimodal", population="", method="ga"):
    return {"scenario": scenario, "method": method, "update": "llm", "step": step, "split": split,
            "qid": f"{subject}/{modality}", "subject": subject, "population": population, "modality": modality,
            "correct": correct}


def general(scenario, step, wrong: int, n: int = 40, method="ga"):
    """n benchmark items, the first ``wrong`` of them answered wrong."""
    return [item(scenario, step, "general", str(i), int(i >= wrong), method=method) for i in range(n)]


def forget(scenario, step, mm_right: int, text_right: int, people: int = 10):
    return [row for p in range(people) for row in (
        item(scenario, step, "forget", f"p{p}", int(p < mm_right), "multimodal", "fictitious"),
        item(scenario, step, "forget", f"p{p}", int(p < text_right), "text", "fictitious"))]


def by(rows, finding, scenarios=None):
    return next(r for r in rows if r["finding"] == finding and (scenarios is None or r["scenarios"] == scenarios))


def test_a_clear_general_drop_difference_is_reproduced_and_its_estimate_is_worked_by_hand():
    # finetuned loses 2 of 40 general items (5 pts), pretrained 20 (50 pts): +45 pts in the paper's direction
    preds = general("finetuned", 0, 0) + general("finetuned", 1, 2) + general("pretrained", 0, 0) \
        + general("pretrained", 1, 20)
    (row,) = findings_rows(preds, SETTINGS)
    assert set(row) == set(COLUMNS)
    assert row["estimate"] == pytest.approx(0.45) and row["clusters"] == row["shared"] == 40
    assert 0 < row["ci_low"] < 0.45 < row["ci_high"] and row["verdict"] == "reproduced"
    assert row["level"] == pytest.approx(0.95)  # one comparison: Holm leaves it at 95%


def test_the_opposite_and_inconclusive():
    preds = general("finetuned", 0, 0) + general("finetuned", 1, 20) + general("pretrained", 0, 0) \
        + general("pretrained", 1, 0)
    assert findings_rows(preds, SETTINGS)[0]["verdict"] == "the opposite"
    preds = general("finetuned", 0, 0) + general("finetuned", 1, 3) + general("pretrained", 0, 0) \
        + general("pretrained", 1, 4)
    (row,) = findings_rows(preds, SETTINGS)
    assert row["estimate"] == pytest.approx(0.025) and row["ci_low"] <= 0 <= row["ci_high"]
    assert row["verdict"] == "inconclusive"


def test_finding_3_pairs_each_persons_two_modalities():
    # 10 people right on both at the start; at the end multimodal 0/10 (keeps max(0, -0.25 / 0.75) = 0),
    # text 6/10 (keeps (0.6 - 0.25) / 0.75)
    preds = forget("finetuned", 0, 10, 10) + forget("finetuned", 1, 0, 6)
    (row,) = findings_rows(preds, SETTINGS)
    assert (row["finding"], row["scenarios"], row["clusters"], row["shared"]) == (3, "finetuned", 10, 10)
    assert row["estimate"] == pytest.approx(0.35 / 0.75, abs=1e-6) and row["verdict"] == "reproduced"


def test_finding_2_compares_one_shot_with_the_last_sequential_operation():
    preds = general("finetuned", 0, 0) + general("finetuned", 1, 4) + general("sequential", 0, 0) \
        + general("sequential", 3, 30)
    (row,) = findings_rows(preds, SETTINGS)
    assert row["scenarios"] == "finetuned vs sequential"
    assert row["estimate"] == pytest.approx(36 / 40 - 10 / 40) and row["verdict"] == "reproduced"


def test_holm_runs_over_every_comparison_and_decides_the_verdict():
    preds = general("finetuned", 0, 0) + general("finetuned", 1, 2) + general("pretrained", 0, 0) \
        + general("pretrained", 1, 9) + forget("finetuned", 0, 10, 10) + forget("finetuned", 1, 1, 3) \
        + forget("pretrained", 0, 10, 10) + forget("pretrained", 1, 0, 9)
    rows = findings_rows(preds, SETTINGS)
    assert len(rows) == 3
    ps = [r["p"] for r in rows]
    assert [r["p_holm"] for r in rows] == pytest.approx(holm(ps), abs=3e-6)
    assert [r["level"] for r in rows] == pytest.approx(holm_levels(ps, 0.05), abs=3e-6)
    for r in rows:
        contains_zero = r["ci_low"] <= 0 <= r["ci_high"]
        assert (r["verdict"] == "inconclusive") == contains_zero
        assert (r["verdict"] != "inconclusive") == (r["p_holm"] <= 0.05 + 1e-9)
    assert findings_rows(preds, SETTINGS) == rows  # seeded


def test_sides_without_shared_items_are_resampled_apart():
    # the pretrained general items are other items: nothing is paired, the union of 80 is resampled
    preds = general("finetuned", 0, 0) + general("finetuned", 1, 2) + [
        {**r, "subject": f"x{r['subject']}"} for r in general("pretrained", 0, 0) + general("pretrained", 1, 20)]
    (row,) = findings_rows(preds, SETTINGS)
    assert (row["clusters"], row["shared"]) == (80, 0) and row["estimate"] == pytest.approx(0.45)
    paired_row = findings_rows(general("finetuned", 0, 0) + general("finetuned", 1, 2) + general("pretrained", 0, 0)
                               + general("pretrained", 1, 20), SETTINGS)[0]
    assert row["ci_high"] - row["ci_low"] > paired_row["ci_high"] - paired_row["ci_low"]


def test_a_unit_without_knowledge_above_chance_is_left_out():
    # multimodal at chance from the start: nothing above chance to forget
    assert findings_rows(forget("finetuned", 0, 2, 10) + forget("finetuned", 1, 0, 5), SETTINGS) == []


def test_kept_is_undefined_without_knowledge_above_chance():
    from pulse_unlearn.protocol.verdicts import kept

    assert float(kept(0.75, 0.5)) == pytest.approx(0.5) and float(kept(0.75, 0.1)) == 0.0
    assert np.isnan(kept([0.25, 0.2], [0.5, 0.1])).all()


def test_resamples_without_knowledge_above_chance_are_left_out():
    # 2 of 5 people known on both modalities at the start, still known by name at the end, not by
    # image: text keeps 1, multimodal 0. A resample drawing at most one of them (34%) starts at or
    # below chance: its shares are undefined and left out, not counted as 0 (or as 1e12)
    preds = forget("finetuned", 0, 2, 2, people=5) + forget("finetuned", 1, 0, 2, people=5)
    (row,) = findings_rows(preds, SETTINGS)
    assert row["estimate"] == pytest.approx(1.0)
    assert row["ci_low"] == row["ci_high"] == pytest.approx(1.0) and row["verdict"] == "reproduced"


def test_the_cost_and_examples_at_a_resampled_matched_point_by_hand():
    import numpy as np

    from pulse_unlearn.evaluation.matched import cost_at_match, examples_at_match

    # target 0.3875 on 0.8, 0.5, 0.2: between checkpoints 1 and 2 at t = 0.375 (tests/test_trajectory.py);
    # the second resample never gets there
    f = np.array([[0.8, 0.5, 0.2], [0.8, 0.7, 0.6]])
    y = np.array([[0.6, 0.55, 0.4], [0.6, 0.6, 0.6]])
    cost = cost_at_match(f, y, 0.3875)
    assert cost[0] == pytest.approx(0.6 - (0.55 - 0.375 * 0.15)) and np.isnan(cost[1])
    where = examples_at_match(f, [0, 64, 128], 0.3875)
    assert where[0] == pytest.approx(64 + 0.375 * 64) and np.isnan(where[1])


STEPS = (0, 4, 8, 12)


def operation(scenario, curves: dict[tuple[str, str], list[int]], size: dict[str, int], op: int = 1):
    """One operation's trajectory.csv and trajectory_predictions.csv rows from how many of each
    split's items are right at each checkpoint (forget: one question per person and modality)."""
    items, rows = [], []
    for (split, modality), rights in curves.items():
        n = size[split]
        for step, right in zip(STEPS, rights):
            for i in range(n):
                kind = "celebrity" if scenario == "pretrained" else "fictitious"  # other people
                person, population = (f"p{i}", kind) if split.startswith("forget") else (str(i), "")
                items.append({"scenario": scenario, "method": "ga", "update": "llm", "operation": op, "step": step,
                              "split": split, "qid": f"{split}/{i}/{modality}", "subject": person,
                              "population": population, "modality": modality, "correct": int(i < right)})
            rows.append({"scenario": scenario, "method": "ga", "update": "llm", "operation": op, "step": step,
                         "examples": 16 * step, "split": split, "modality": modality, "n": n, "chance": 0.25,
                         "starting_accuracy": rights[0] / n, "accuracy": right / n})
    return rows, items


def test_finding_1_at_matched_forgetting_resamples_the_crossing():
    """Both units forget 10 people alike (1.0, 0.6, 0.2, 0: target 0.25 + 0.5 x 0.75 = 0.625 is
    reached at checkpoint 0.9375); the general benchmark (40 items) keeps 1.0, 1.0 under the
    finetuned unit and falls 1.0, 0.5 under the pretrained one: costs 0 and 0.9375 x 0.5."""
    from pulse_unlearn.config.schema import ForgetTarget

    forget = {("forget", m): [10, 6, 2, 0] for m in ("multimodal", "text")}
    ft = operation("finetuned", {**forget, ("general", "multimodal"): [40, 40, 39, 38]}, {"forget": 10, "general": 40})
    pt = operation("pretrained", {**forget, ("general", "multimodal"): [40, 20, 10, 5]}, {"forget": 10, "general": 40})
    general_all = [{**r, "modality": "all"} for r in ft[0] + pt[0] if r["split"] == "general"]
    rows = findings_rows([], SETTINGS, ft[0] + pt[0] + general_all, ft[1] + pt[1], ForgetTarget(rule="kept", kept=0.5))
    at_matched = [r for r in rows if r["finding"] == 1]
    assert {r["target_modality"] for r in at_matched} == {"multimodal", "text"}
    for r in at_matched:
        assert r["at"] == "matched" and r["estimate"] == pytest.approx(0.9375 * 0.5)
        assert r["verdict"] == "reproduced" and r["ci_low"] > 0 and (r["clusters"], r["shared"]) == (60, 0)
    # finding 3: the same people forget both modalities alike, so text-only minus multimodal examples is 0
    # in every resample: inconclusive
    third = [r for r in rows if r["finding"] == 3]
    assert len(third) == 2 and all(r["estimate"] == 0 == r["ci_low"] == r["ci_high"] for r in third)
    assert {r["verdict"] for r in third} == {"inconclusive"}
    assert len(rows) == 4 and [r["p_holm"] for r in rows] == pytest.approx(holm([r["p"] for r in rows]), abs=3e-6)


def test_joined_operations_run_on_from_where_the_previous_one_ended():
    from pulse_unlearn.config.schema import ForgetTarget
    from pulse_unlearn.evaluation.matched import joined, operation_curves

    target = ForgetTarget(rule="kept", kept=0.5)
    size = {"forget_sequence": 10, "general": 40}
    first = operation("sequential", {("forget_sequence", "multimodal"): [10, 9, 8, 7]}, size)
    second = operation("sequential", {("forget_sequence", "multimodal"): [7, 6, 2, 0]}, size, op=2)
    path = joined([operation_curves(*first, target, forget_split="forget_sequence"),
                   operation_curves(*second, target, forget_split="forget_sequence")])
    # the second operation's step 0 is the first's last checkpoint, so it is counted once
    assert path.steps == [0, 4, 8, 12, 16, 20, 24] and path.examples == [0, 64, 128, 192, 256, 320, 384]
    curve = path.curves[("forget_sequence", "multimodal")]
    assert [p.mean() for p in curve.points] == pytest.approx([1.0, 0.9, 0.8, 0.7, 0.6, 0.2, 0.0])
    assert path.targets == {"multimodal": pytest.approx(0.625)}  # the first operation's: kept 0.5 of 1.0 - 0.25


def test_finding_2_at_matched_forgetting_follows_the_whole_sequence():
    """All of the sequence's 10 people (forget_sequence) fall 1.0, 0.9, 0.8, 0.7 in operation 1 and
    0.7, 0.6, 0.2, 0 in operation 2: joined, the target 0.625 (kept 0.5 of 0.75 above chance) is
    crossed at position 3 + 0.75, where the general benchmark (1.0 down by 0.1 per checkpoint)
    stands at 0.625: a cost of 0.375. The one-shot unit forgets the same people with no general
    cost, so sequential minus one-shot is +0.375."""
    from pulse_unlearn.config.schema import ForgetTarget

    size = {"forget": 10, "forget_sequence": 10, "general": 40}
    one = operation("finetuned", {("forget", "multimodal"): [10, 6, 2, 0], ("general", "multimodal"): [40] * 4},
                    size)
    seq = [operation("sequential", {("forget", "multimodal"): own, ("forget_sequence", "multimodal"): everyone,
                                    ("general", "multimodal"): general_}, size, op=k)
           for k, own, everyone, general_ in ((1, [10, 5, 0, 0], [10, 9, 8, 7], [40, 36, 32, 28]),
                                              (2, [10, 5, 0, 0], [7, 6, 2, 0], [28, 24, 20, 16]))]
    rows = [r for part in (one, *seq) for r in part[0]]
    rows += [{**r, "modality": "all"} for r in rows if r["split"] == "general"]
    items = [r for part in (one, *seq) for r in part[1]]
    found = findings_rows([], SETTINGS, rows, items, ForgetTarget(rule="kept", kept=0.5))
    (second,) = [r for r in found if r["finding"] == 2]
    assert (second["at"], second["scenarios"], second["target_modality"]) == ("matched", "finetuned vs sequential",
                                                                              "multimodal")
    assert second["estimate"] == pytest.approx(0.375)
    assert second["ci_low"] <= second["estimate"] <= second["ci_high"] and second["verdict"] == "reproduced"


def test_sensitivity_repeats_the_matched_comparisons_at_each_kept_level():
    """The finding-1 case above at kept 0.3, 0.5, 0.7: targets 0.475, 0.625, 0.775 on forget 1.0,
    0.6, 0.2, 0 are crossed at positions 1.3125, 0.9375, 0.5625; there the pretrained general
    curve (1.0, 0.5, 0.25, 0.125) has lost 0.578125, 0.46875, 0.28125 and the finetuned one (1.0,
    1.0, 0.975, 0.95) 0.0078125, 0, 0."""
    from pulse_unlearn.config.schema import ForgetTarget
    from pulse_unlearn.protocol.verdicts import level_rows, measured

    forget = {("forget", m): [10, 6, 2, 0] for m in ("multimodal", "text")}
    ft = operation("finetuned", {**forget, ("general", "multimodal"): [40, 40, 39, 38]}, {"forget": 10, "general": 40})
    pt = operation("pretrained", {**forget, ("general", "multimodal"): [40, 20, 10, 5]}, {"forget": 10, "general": 40})
    rows = ft[0] + pt[0] + [{**r, "modality": "all"} for r in ft[0] + pt[0] if r["split"] == "general"]
    compare = ForgetTarget(rule="kept", kept=0.5)
    found = level_rows(measured([], SETTINGS, rows, ft[1] + pt[1], compare, (0.3, 0.5, 0.7)), SETTINGS)
    first = {r["kept"]: r["estimate"] for r in found if r["finding"] == 1 and r["target_modality"] == "multimodal"}
    assert first == pytest.approx({0.3: 0.578125 - 0.0078125, 0.5: 0.46875, 0.7: 0.28125})
    # the run's own level repeats findings.csv's matched rows exactly
    own = [r for r in findings_rows([], SETTINGS, rows, ft[1] + pt[1], compare) if r["at"] == "matched"]
    assert [{k: v for k, v in r.items() if k != "kept"} for r in found if r["kept"] == 0.5] == own
    margin = ForgetTarget(rule="margin", margin=0.1)
    assert level_rows(measured([], SETTINGS, rows, ft[1] + pt[1], margin, (0.3, 0.5, 0.7)), SETTINGS) == []


def test_matched_rows_carry_the_resampled_points_intervals():
    from pulse_unlearn.config.schema import ForgetTarget
    from pulse_unlearn.evaluation.matched import matched_rows

    rows, items = operation("pretrained", {("forget", "multimodal"): [10, 6, 2, 0],
                                           ("general", "multimodal"): [40, 20, 10, 5]}, {"forget": 10, "general": 40})
    (row,) = matched_rows(rows, ForgetTarget(rule="kept", kept=0.5), items=items, intervals=SETTINGS)
    assert row["cost"] == pytest.approx(0.46875) and row["examples"] == pytest.approx(0.9375 * 64, abs=0.01)
    assert row["cost_ci_low"] <= row["cost"] <= row["cost_ci_high"] and row["cost_ci_low"] < row["cost_ci_high"]
    assert row["examples_ci_low"] <= row["examples"] <= row["examples_ci_high"]
    assert row["reached_share"] == 1.0  # every person is forgotten by the last checkpoint: every resample reaches it
    assert row["auc_ci_low"] <= row["auc"] <= row["auc_ci_high"]
    (bare,) = matched_rows(rows, ForgetTarget(rule="kept", kept=0.5))
    assert bare["cost"] == row["cost"] and bare["cost_ci_low"] == bare["reached_share"] == bare["auc_ci_low"] == ""


def test_the_resampled_auc_by_hand():
    import numpy as np

    from pulse_unlearn.evaluation.matched import auc_at_match

    forget = np.array([[1.0, 0.5, 0.0],  # reaches 0.25 half way to the last checkpoint (position 1.5)
                       [1.0, 0.2, 0.4],  # fitted 1, 0.3, 0.3: at 0.35 at position 0.65 / 0.7
                       [1.0, np.nan, 0.0],  # a resample without an item at some checkpoint
                       [0.2, 0.1, 0.0]])  # at the target from step 0: no span
    values = np.array([[1.0, 1.0, 0.5], [0.8, 0.6, 0.1], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    got = auc_at_match(forget, values, 0.25)
    # (0.5 (1 + 1) / 2 + 0.25 (1 + 0.75) / 2) / 0.75; then at target 0.35 the mean of 0.8 and
    # the curve there, 0.8 - 0.2 (0.65 / 0.7), over one trapezoid (the raw 0.2 below it never counts)
    assert got[0] == pytest.approx((0.5 + 0.21875) / 0.75)
    assert auc_at_match(forget[1:2], values[1:2], 0.35)[0] == pytest.approx((0.8 + 0.8 - 0.2 * 0.65 / 0.7) / 2)
    assert np.isnan(got[2]) and np.isnan(got[3])


def test_pooled_comparisons_resample_worlds_then_people_and_count_agreeing_runs():
    import numpy as np

    from pulse_unlearn.protocol.verdicts import RunComparisons, key_of, measure, pooled_rows, two_level

    # two worlds' people-level resamples: the pooled b-th resample averages the drawn worlds' b-th
    stats = [np.array([1.0, 2.0, 3.0]), np.array([3.0, 4.0, 5.0])]
    pick = np.random.default_rng([0, 1]).integers(0, 2, size=(3, 2))
    expected = [np.mean([stats[w][b] for w in pick[b]]) for b in range(3)]
    assert two_level(stats, 0) == pytest.approx(expected)
    # three runs of one comparison: worlds 0 (two run seeds) and 1
    clear = general("finetuned", 0, 0) + general("finetuned", 1, 2) + general("pretrained", 0, 0) \
        + general("pretrained", 1, 20)
    faint = general("finetuned", 0, 0) + general("finetuned", 1, 3) + general("pretrained", 0, 0) \
        + general("pretrained", 1, 4)
    runs = []
    for world, preds in ((0, clear), (0, clear), (1, faint)):
        measured = measure(preds, SETTINGS)
        own = {key_of(r): r["verdict"] for r in findings_rows(preds, SETTINGS)}
        runs.append(RunComparisons(world, measured, own))
    (row,) = pooled_rows(runs, SETTINGS)
    assert (row["worlds"], row["runs"]) == (2, 3)
    assert row["estimate"] == pytest.approx((0.45 + 0.025) / 2)  # the worlds' means, each over its runs
    assert row["agree"] == f"{[*['reproduced'] * 2, 'inconclusive'].count(row['verdict'])}/3"
    assert row["per_run"] == "reproduced 2; inconclusive 1"
