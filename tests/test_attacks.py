"""Recovery attacks: the arithmetic by hand, consistency counts on hand-built predictions, image
transforms reaching the processor, config checks, and attacks.csv in a real (tiny) run, resumed
after SIGKILL byte for byte."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from processes import rows

from pulse_unlearn.cli import main
from pulse_unlearn.evaluation.attacks import (MIN_GAP, Outcome, baseline_rows, make_attack, outcome_rows,
                                              recovery, recovery_interval, with_recovery)
from pulse_unlearn.evaluation.attacks.consistency import pair_counts, pairs_of
from pulse_unlearn.evaluation.attacks.images import TRANSFORMS, transform_image
from pulse_unlearn.evaluation.predictions import Prediction
from pulse_unlearn.stats import Sample


def _pred(qid, right, modality=None):
    subject, mod, _ = qid.rsplit("/", 2)
    return Prediction(qid, subject, modality or mod, "A", "A" if right else "B", {"A": 0.0, "B": 0.0})


def test_recovery_by_hand():
    # unlearned 0.3, start 0.8 under the same attack, attacked 0.55: half the way back
    assert recovery(0.55, 0.3, 0.8) == pytest.approx(0.5)
    assert recovery(0.3, 0.3, 0.8) == 0.0 and recovery(0.8, 0.3, 0.8) == 1.0
    assert recovery(0.2, 0.3, 0.8) == pytest.approx(-0.2)  # the attack made it worse
    assert recovery(0.5, 0.3, 0.3 + MIN_GAP / 2) is None  # nothing was forgotten: not defined
    assert recovery(0.2, 0.5, 0.3) is None  # unlearned above the start under the attack: nothing to recover


def _people(values: dict[str, float]) -> Sample:
    return Sample(list(values.values()), list(values))


def test_recovery_interval_by_hand():
    # p1 came all the way back (attacked 1, unlearned 0, start 1), p2 not at all (attacked 0):
    # a draw of two people gives recovery 1 ({p1, p1}, a quarter of the draws), 0 ({p2, p2}, a
    # quarter) or 1/2: the 95% interval runs from 0 to 1
    assert recovery_interval(_people({"p1": 1, "p2": 0}), _people({"p1": 0, "p2": 0}),
                             _people({"p1": 1, "p2": 1})) == (0.0, 1.0)
    # p2 had nothing forgotten (start 0 = unlearned 0): {p2, p2} defines no recovery and is left
    # out; {p1, p1} and {p1, p2} both give (1/2 - 0) / (1/2 - 0) = 1 or 1
    assert recovery_interval(_people({"p1": 1, "p2": 0}), _people({"p1": 0, "p2": 0}),
                             _people({"p1": 1, "p2": 0})) == (1.0, 1.0)
    # no draw defines it
    assert recovery_interval(_people({"p1": 1}), _people({"p1": 0}), _people({"p1": 0})) is None


def test_splits_and_scenarios_are_declared_per_attack():
    assert make_attack({"name": "image_transforms"}).scored == ("forget",)
    assert make_attack({"name": "image_transforms", "splits": ["retain"]}).scored == ("retain",)
    assert make_attack({"name": "consistency", "scenarios": ["pretrained"]}).params.scenarios == ["pretrained"]


def test_rows_carry_unlearned_start_and_recovery():
    plain = {"forget": [_pred("p1/multimodal/0", False), _pred("p1/multimodal/1", False),
                        _pred("p1/text/0", True), _pred("p2/multimodal/0", True)]}
    attacked = [_pred("p1/multimodal/0", True), _pred("p1/multimodal/1", False)]  # p1's image questions only
    rows = outcome_rows("image_transforms", [Outcome("transform=blur:2", "forget", attacked)], plain)
    # plain on the same people and modality: p1's two multimodal questions, both wrong
    assert [(r["modality"], r["n"], r["value"], r["unlearned"]) for r in rows] == [("multimodal", 2, 0.5, 0.0)]
    # one person (p1): nothing to resample, the interval is the value itself
    assert (rows[0]["ci_low"], rows[0]["ci_high"]) == (0.5, 0.5)
    started = [_pred("p1/multimodal/0", True), _pred("p1/multimodal/1", True)]
    (start,) = outcome_rows("image_transforms", [Outcome("transform=blur:2", "forget", started)], plain)
    base = baseline_rows([start])
    assert base[0]["start"] == 1.0 and base[0]["recovery"] == ""
    (row,) = with_recovery(rows, base)
    assert row["start"] == 1.0 and row["recovery"] == 0.5  # (0.5 - 0) / (1 - 0)
    # one person: the recovery's interval is the recovery; the items the interval read are not written
    assert (row["recovery_ci_low"], row["recovery_ci_high"]) == (0.5, 0.5)
    assert not any(k.startswith("_") for k in row)


def test_consistency_counts_by_hand():
    preds = [_pred("a/multimodal/0", True), _pred("a/text/0", True),  # both right
             _pred("a/multimodal/1", False), _pred("a/text/1", True),  # image wrong, text right
             _pred("a/multimodal/2", False), _pred("a/text/2", False),  # both wrong
             _pred("b/multimodal/0", True), _pred("b/text/0", False),  # image right, text wrong
             _pred("c/multimodal/0", True)]  # c: no text question, and lists of unequal length
    pairs = pairs_of(preds)
    assert pair_counts(pairs) == {"both_right": 1, "both_wrong": 1, "image_wrong_text_right": 1,
                                  "image_right_text_wrong": 1}
    assert len(pairs) == 4


def _png(seed=0, size=32):
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_every_transform_changes_the_image_and_keeps_its_size():
    png = _png()
    for name in TRANSFORMS:
        out = transform_image(png, name, 2, seed=1)
        assert Image.open(io.BytesIO(out)).size == (32, 32)
        assert out != png, name
        assert transform_image(png, name, 2, seed=1) == out  # deterministic
    # blur smooths: neighbouring pixels differ less
    def roughness(b):
        a = np.asarray(Image.open(io.BytesIO(b)), dtype=float)
        return np.abs(np.diff(a, axis=1)).mean()
    assert roughness(transform_image(png, "blur", 3)) < 0.5 * roughness(png)
    # noise std 0.04 x severity in [0, 1] units (clipped at the ends: a little less)
    grey = io.BytesIO()
    Image.new("RGB", (32, 32), (128, 128, 128)).save(grey, format="PNG")
    noisy = np.asarray(Image.open(io.BytesIO(transform_image(grey.getvalue(), "noise", 2, seed=3))), dtype=float)
    assert (noisy / 255).std() == pytest.approx(0.08, rel=0.1)


def test_the_processor_receives_the_transformed_pixels(tiny_models):
    from dataclasses import replace

    from pulse_unlearn.data.encoder import Encoder
    from pulse_unlearn.models.load import load_processor
    from pulse_unlearn.records import Example, Question

    processor = load_processor(tiny_models["finetuned"])
    q = Question("p/multimodal/0", "p", "multimodal", "Who?", {"A": "x", "B": "y"}, "A", _png(5))
    attack = make_attack({"name": "image_transforms", "transforms": ["rotation"], "severities": [3]})
    (changed,) = attack.change([q, replace(q, qid="p/text/0", modality="text", image=None)],
                               "transform=rotation:3", None)
    assert changed.qid == "p/multimodal/0/rotation:3"
    enc = Encoder(processor).encode([Example(changed.question, "x", changed.image)], add_eos=False)
    expected = processor.image_processor(Image.open(io.BytesIO(transform_image(q.image, "rotation", 3))),
                                         return_tensors="pt")["pixel_values"]
    plain = processor.image_processor(Image.open(io.BytesIO(q.image)), return_tensors="pt")["pixel_values"]
    got = enc.images.select([0])["pixel_values"]
    assert got.shape == expected.shape and (got - expected).abs().max() < 1e-6
    assert (got - plain).abs().max() > 0.1


@pytest.mark.parametrize("entry, says", [
    ("{name: quantise}", "attacks.0.name: unknown attack 'quantise'"),
    ("{name: image_transforms, severities: [0]}", "attacks.0.severities.0: must be >= 1"),
    ("{name: image_transforms, transforms: [blur, blur]}", "attacks.0.transforms: lists a value more than once"),
    ("{name: image_transforms, bits: 4}", "attacks.0.bits: unknown parameter"),
    ("[consistency]", "attacks.0: must be a mapping"),
    ("{name: consistency, scenarios: [finetune]}", "attacks.0.scenarios: unknown scenario 'finetune'"),
    ("{name: image_transforms, splits: [forgett]}", "attacks.0.splits: unknown split 'forgett'"),
    ("{name: mia, splits: [retain]}", "attacks.0.splits: mia scores forget_facts only"),
    ("{name: mia, k: 0}", "attacks.0.k: must be > 0"),
    ("{name: mia, k: 1.5}", "attacks.0.k: must be <= 1"),
    ("{name: mia, scores: [loss, loss]}", "attacks.0.scores: lists a value more than once"),
    ("{name: mia, scores: [ppl]}", "attacks.0.scores.0:"),
    ("{name: mia, max_items: 0}", "attacks.0.max_items: must be >= 1"),
    ("{name: quantize, bits: [3]}", "attacks.0.bits.0:"),
    ("{name: quantize, bits: [4, 4]}", "attacks.0.bits: lists a value more than once"),
    ("{name: quantize, bits: []}", "attacks.0.bits:"),
    ("{name: quantize, library: gptq}", "attacks.0.library:"),
    ("{name: relearn, share: 1.0}", "attacks.0.share: must be < 1"),
    ("{name: relearn, share: 0}", "attacks.0.share: must be > 0"),
    ("{name: relearn_retain, steps: 0}", "attacks.0.steps: must be >= 1"),
    ("{name: relearn, lr: -1.0}", "attacks.0.lr: must be > 0"),
    ("{name: relearn, rank: 4}", "attacks.0.rank: unknown parameter"),
])
def test_a_bad_attack_entry_is_one_line_and_nothing_is_written(tmp_path, capsys, entry, says):
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\nattacks:\n  - {entry}\n")
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "out").exists()


def test_attacks_run_after_every_operation_and_on_the_starting_model(watched):
    """shared_runs.WATCHED: consistency and image_transforms after every operation."""
    att = rows(watched / "attacks.csv")
    # attacks_every_operation: the sequential unit after both operations, its one-shot baseline
    # after its one; operation 0 is the starting model, each attack's baseline
    assert {(r["scenario"], r["operation"]) for r in att} == {("finetuned", "0"), ("finetuned", "1"),
                                                             ("sequential", "0"), ("sequential", "1"),
                                                             ("sequential", "2")}
    assert {r["attack"] for r in att} == {"consistency", "image_transforms"}
    summary = rows(watched / "summary.csv")
    for r in att:
        if r["attack"] == "image_transforms" and r["operation"] != "0":
            # unlearned = the summary's forget multimodal accuracy after the same operation
            (plain,) = [s for s in summary if (s["scenario"], s["step"], s["split"], s["request"], s["modality"])
                        == (r["scenario"], r["operation"], "forget", "all", "multimodal")]
            assert float(r["unlearned"]) == pytest.approx(float(plain["accuracy"]), abs=1e-6)
            base = next(b for b in att if b["operation"] == "0" and b["scenario"] == r["scenario"]
                        and (b["attack"], b["setting"], b["modality"]) == (r["attack"], r["setting"], r["modality"]))
            assert r["start"] == base["value"]
            value, un, start = float(r["value"]), float(r["unlearned"]), float(r["start"])
            if start - un > MIN_GAP:
                assert float(r["recovery"]) == pytest.approx((value - un) / (start - un), abs=1e-5)
                # the interval, where a resample defines it, holds the estimate
                if r["recovery_ci_low"] != "":
                    assert float(r["recovery_ci_low"]) <= float(r["recovery"]) <= float(r["recovery_ci_high"])
            else:
                assert r["recovery"] == r["recovery_ci_low"] == r["recovery_ci_high"] == ""
        if r["attack"] == "consistency":
            assert r["modality"] == "pair" and r["recovery"] == ""
    shares = {}
    for r in att:
        if r["attack"] == "consistency":
            shares.setdefault((r["scenario"], r["operation"], r["split"]), 0.0)
            shares[r["scenario"], r["operation"], r["split"]] += float(r["value"])
    assert all(s == pytest.approx(1.0, abs=1e-5) for s in shares.values())


def test_an_attack_that_does_not_apply_says_so_once_per_run(watched):
    """mia has no never-trained people here: said once, not at each of the five attacked models."""
    said = [line for line in (watched / "run.log").read_text().splitlines() if "does not apply" in line]
    assert len(said) == 1 and "attack mia does not apply: every fictitious person" in said[0], said


def test_sigkill_after_the_first_unit_resumes_attacks_byte_identically(watched, watched_killed):
    out, at_kill = watched_killed
    # killed after the one-shot unit (and the sequential unit's operation 1) wrote its attack rows
    assert {(r["scenario"], r["operation"]) for r in at_kill} == {("finetuned", "0"), ("finetuned", "1"),
                                                                 ("sequential", "0"), ("sequential", "1")}
    for name in ("attacks.csv", "summary.csv", "predictions.csv", "operations.csv"):
        assert (out / name).read_bytes() == (watched / name).read_bytes(), name


def _frame(recoveries: dict[str, float], align=(0.1, 0.3), start: dict[str, float] | None = None,
           ci: dict[str, tuple[float, float]] | None = None):
    """Operation 0 and 1 of one unit: each attack's starting value (default 80%), unlearned 25%;
    each recovery's interval (default: +- 0.05)."""
    import pandas as pd

    rows = []
    for op in (0, 1):
        for attack, rec in recoveries.items():
            s = (start or {}).get(attack, 0.8)
            rows.append({"scenario": "finetuned", "method": "ga", "update": "llm", "operation": op, "attack": attack,
                         "setting": "", "split": "forget", "modality": "all", "n": 10, "metric": "accuracy",
                         "value": s if op == 0 else 0.25 + rec * (s - 0.25), "unlearned": s if op == 0 else 0.25,
                         "start": s, "recovery": "" if op == 0 else rec,
                         "recovery_ci_low": "" if op == 0 else (ci or {}).get(attack, (rec - 0.05, rec + 0.05))[0],
                         "recovery_ci_high": "" if op == 0 else (ci or {}).get(attack, (rec - 0.05, rec + 0.05))[1]})
        rows.append({"scenario": "finetuned", "method": "ga", "update": "llm", "operation": op,
                     "attack": "consistency", "setting": "", "split": "forget", "modality": "pair", "n": 10,
                     "metric": "image_wrong_text_right", "value": align[op], "unlearned": "", "start": "",
                     "recovery": ""})
    return pd.DataFrame(rows)


def test_the_residual_finding_follows_its_thresholds():
    from pulse_unlearn.report.attacks import pool_attacks, residual_findings

    hidden = residual_findings(pool_attacks(_frame({"relearn": 0.6, "quantize": 0.1})))
    assert "hidden: relearn brings back 60% [55%, 65%] of what was forgotten (25.0% -> 58.0%" in hidden
    assert "broken alignment" in hidden  # 10% -> 30% of the forget pairs: +20 points >= 10
    removed = residual_findings(pool_attacks(_frame({"relearn": 0.15, "quantize": -0.2}, align=(0.1, 0.15))))
    assert "removed: no attack brings back more than 15% (most: relearn 15% [10%, 20%])" in removed
    assert "broken alignment" not in removed
    assert "unclear: relearn brings back 30% [25%, 35%]" in residual_findings(pool_attacks(_frame({"relearn": 0.3})))
    # an estimate in one zone whose interval reaches the other is inconclusive
    wide = residual_findings(pool_attacks(_frame({"relearn": 0.6}, ci={"relearn": (0.1, 0.9)})))
    assert "inconclusive: relearn brings back 60% [10%, 90%], its interval reaches 20%" in wide
    low = residual_findings(pool_attacks(_frame({"relearn": 0.15, "quantize": 0.0},
                                                ci={"quantize": (-0.3, 0.55)})))
    assert "inconclusive: no attack brings back more than 15% (most: relearn), but quantize up to 55%" in low
    # an attack whose questions the starting model barely knows (start 33%, unlearned 25%: 8 points
    # forgotten) does not count, whatever its ratio; the finding says so
    small = residual_findings(pool_attacks(_frame({"relearn": 0.1, "neighbours": 1.0}, start={"neighbours": 0.33})))
    assert "removed: no attack brings back more than 10% (most: relearn 10% [5%, 15%])" in small
    assert "not counted (the starting model under it is less than 10 points above the unlearned model): " \
           "neighbours (8.0 points)" in small


def test_compare_pools_attacks_over_runs():
    import pandas as pd

    from pulse_unlearn.report.attacks import pool_attacks

    a, b = _frame({"relearn": 0.6}).assign(run=0), _frame({"relearn": 0.2}).assign(run=1)
    pooled = pool_attacks(pd.concat([a, b]))
    row = pooled[(pooled.attack == "relearn") & (pooled.operation == 1)].iloc[0]
    assert row.runs == 2 and row.recovery == pytest.approx(0.4)
    assert row.recovery_std == pytest.approx(pd.Series([0.6, 0.2]).std())
    assert np.isnan(row.recovery_ci_low) and np.isnan(row.recovery_ci_high)  # the mean of intervals is none
    # read from the mean recovery, and said so
    from pulse_unlearn.report.attacks import residual_findings

    assert "unclear: relearn brings back 40% (the mean over 2 runs; no interval)" in residual_findings(pooled)


def test_the_report_has_the_residual_knowledge_section(watched, tmp_path):
    from pulse_unlearn import load_run
    from pulse_unlearn.report.build import build_report, findings_text

    html = build_report(watched, tmp_path / "report").read_text()
    assert "residual knowledge (recovery attacks)" in html and "Residual knowledge (hidden" in html
    assert (tmp_path / "report" / "recovery.png").is_file() or "rec " not in html
    assert "# Residual knowledge" in findings_text(watched)
    run = load_run(watched)
    assert run.attacks is not None and set(run.attacks.attack) == {"consistency", "image_transforms"}


def test_the_demo_attacks_validate_in_the_demo_config():
    import json

    from pulse_unlearn.config import shipped_configs
    from pulse_unlearn.protocol.catalog import load_config
    from pulse_unlearn.config.shipped import demo_attacks

    cfg = load_config(shipped_configs()["demo"], [f"attacks={json.dumps(demo_attacks())}"])
    assert [a["name"] for a in cfg.attacks] == ["relearn", "quantize", "image_transforms", "paraphrase",
                                                "neighbours", "consistency"]
    assert all(a["scenarios"] == ["finetuned", "pretrained"] for a in cfg.attacks)
    assert load_config(shipped_configs()["demo"]).attacks == []  # plain `pulse demo` runs none
