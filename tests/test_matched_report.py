"""The report at matched forgetting: from hand-written trajectory.csv and matched.csv (the files of
issue #13's spec), the table, the findings, the trajectory plot, the stopping-rule labels and
``pulse compare``'s pooling say what the hand values imply."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import pulse_unlearn
from pulse_unlearn.cli import main
from pulse_unlearn.report import plots
from pulse_unlearn.report.build import build_compare, build_report, findings_text
from pulse_unlearn.report.matched import combined
from test_report import md_tables
from pulse_unlearn.report.runs import read_run

ORACLE = "target (oracle: forget questions)"
TARGET = 0.5  # the comparison target on the forget split, every scenario and modality
# (scenario, method, operation) -> steps, forget examples per step, and the accuracy at each step of
# forget multimodal, forget text, retain (all questions) and general
PATHS = {
    ("finetuned", "ga", 1): ([0, 10, 20, 30, 40], 4, {"fmm": [.80, .60, .40, .30, .25],
                                                      "ftxt": [.80, .75, .70, .66, .62],
                                                      "retain": [.80, .75, .60, .55, .50],
                                                      "general": [.60, .59, .55, .52, .50]}),
    ("finetuned", "npo", 1): ([0, 10, 20, 30, 40], 5, {"fmm": [.80, .70, .60, .55, .50],
                                                       "ftxt": [.80, .50, .45, .40, .35],
                                                       "retain": [.80, .78, .76, .74, .72],
                                                       "general": [.60, .60, .59, .59, .58]}),
    ("pretrained", "ga", 1): ([0, 20, 40, 60], 4, {"fmm": [.90, .70, .50, .45], "ftxt": [.95, .90, .85, .80],
                                                   "retain": [.80, .65, .50, .45], "general": [.60, .45, .35, .30]}),
    ("sequential", "ga", 1): ([0, 10, 20], 4, {"fmm": [.80, .55, .45], "ftxt": [.80, .60, .50],
                                               "retain": [.80, .70, .60], "general": [.60, .55, .50]}),
    ("sequential", "ga", 2): ([0, 10, 20], 4, {"fmm": [.85, .60, .40], "ftxt": [.85, .80, .70],
                                               "retain": [.60, .55, .45], "general": [.50, .45, .35]}),
}
# retain multimodal and text-only questions: 2 points below and above the retain accuracy on all
SERIES = {("forget", "multimodal"): ("fmm", 0), ("forget", "text"): ("ftxt", 0), ("retain", "all"): ("retain", 0),
          ("retain", "multimodal"): ("retain", -.02), ("retain", "text"): ("retain", .02),
          ("general", "all"): ("general", 0)}


def crossing(forget: list[float], target: float) -> float | None:
    """Where (a fractional checkpoint index) ``forget`` first reaches ``target``, interpolated."""
    for i, x in enumerate(forget):
        if x <= target:
            return 0.0 if i == 0 else i - 1 + (forget[i - 1] - target) / (forget[i - 1] - x)
    return None


def at(values: list[float], pos: float) -> float:
    i = int(pos)
    return values[i] if pos == i else values[i] + (values[i + 1] - values[i]) * (pos - i)


def area(xs: list[float], ys: list[float]) -> float:
    return sum((xs[i] - xs[i + 1]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1))


def mean_to(forget: list[float], ys: list[float], pos: float | None) -> float | None:
    """ys's mean over forget accuracy from the start to the crossing at ``pos`` (monotone paths)."""
    if not pos:
        return None
    i = int(pos)
    xs, vs = forget[:i + 1], ys[:i + 1]
    if pos > i:
        xs, vs = xs + [at(forget, pos)], vs + [at(ys, pos)]
    return area(xs, vs) / (xs[0] - xs[-1])


def paths(shift: float, pretrained_mm) -> dict:
    """PATHS with ``shift`` added to finetuned retain and general after step 0 (another seed) and
    the pretrained scenario's forget multimodal path replaced by ``pretrained_mm``."""
    out = {}
    for (scenario, method, op), (steps, per, series) in PATHS.items():
        series = {k: list(v) for k, v in series.items()}
        if scenario == "finetuned":
            for k in ("retain", "general"):
                series[k] = [series[k][0]] + [v + shift for v in series[k][1:]]
        if scenario == "pretrained" and pretrained_mm is not None:
            series["fmm"] = list(pretrained_mm)
        out[(scenario, method, op)] = (steps, per, series)
    return out


def trajectory_rows(data: dict) -> list[dict]:
    rows = []
    for (scenario, method, op), (steps, per, series) in data.items():
        for k, step in enumerate(steps):
            for (split, modality), (name, offset) in SERIES.items():
                rows.append({"scenario": scenario, "method": method, "update": "llm", "operation": op, "step": step,
                             "examples": per * step, "split": split, "modality": modality, "n": 20, "chance": 0.25,
                             "accuracy": round(series[name][k] + offset, 6), "scoring": "likelihood", "rouge1": None})
    return rows


def matched_rows(data: dict) -> list[dict]:
    rows = []
    for (scenario, method, op), (steps, per, series) in data.items():
        for tm, forget in (("multimodal", series["fmm"]), ("text", series["ftxt"])):
            pos = crossing(forget, TARGET)
            for (split, modality), (name, offset) in SERIES.items():
                if split == "forget":
                    continue
                ys = [v + offset for v in series[name]]
                hit = {} if pos is None else {
                    "step": round(at(steps, pos), 2), "examples": round(per * at(steps, pos), 2),
                    "accuracy": round(at(ys, pos), 6), "cost": round(ys[0] - at(ys, pos), 6)}
                rows.append({"scenario": scenario, "method": method, "update": "llm", "operation": op,
                             "target_modality": tm, "target": TARGET, "reached": int(pos is not None),
                             "step": hit.get("step"), "examples": hit.get("examples"), "split": split,
                             "modality": modality, "start": round(ys[0], 6), "accuracy": hit.get("accuracy"),
                             "cost": hit.get("cost"), "budget_steps": steps[-1],
                             "auc": None if pos is None else round(mean_to(forget, ys, pos), 6)})
    return rows


def summary_rows(data: dict, stop: str) -> list[dict]:
    """summary.csv: step 0 and after each operation (its last checkpoint), request all."""
    rows = []
    for scenario, method in dict.fromkeys(k[:2] for k in data):
        ops = sorted(k[2] for k in data if k[:2] == (scenario, method))
        points = [(0, data[(scenario, method, 1)], 0)] + [(op, data[(scenario, method, op)], -1) for op in ops]
        for step, (_, _, series), k in points:
            acc = {key: series[name][k] + offset for key, (name, offset) in SERIES.items()}
            acc[("forget", "all")] = (acc[("forget", "multimodal")] + acc[("forget", "text")]) / 2
            for (split, modality), a in acc.items():
                rows.append({"scenario": scenario, "method": method, "update": "llm", "step": step, "request": "all",
                             "split": split, "modality": modality, "n": 20, "accuracy": round(a, 6),
                             "scoring": "likelihood", "stop": stop})
    return rows


OPERATIONS = ("scenario,method,update,operation,steps,first_loss,last_loss,diverged_at,top_answer,top_share,collapsed,"
              "seconds,stop,sees,rule,stopped_at,reason\n"
              "finetuned,ga,llm,1,40,0.1,-3.0,,C,0.3,0,1.0,target,oracle,forget multimodal <= 50%,40,budget spent\n")


def make_run(folder: Path, seed: int = 0, shift: float = 0.0, pretrained_mm=None, stop: str = ORACLE,
             trajectories: bool = True) -> Path:
    folder.mkdir(parents=True)
    data = paths(shift, pretrained_mm)
    pd.DataFrame(summary_rows(data, stop)).to_csv(folder / "summary.csv", index=False)
    if trajectories:
        pd.DataFrame(trajectory_rows(data)).to_csv(folder / "trajectory.csv", index=False)
        pd.DataFrame(matched_rows(data)).to_csv(folder / "matched.csv", index=False)
    (folder / "config.yaml").write_text(f"name: {folder.name}\nseed: {seed}\n")
    (folder / "environment.json").write_text(json.dumps({"versions": {}}))
    (folder / "operations.csv").write_text(OPERATIONS)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = make_run(tmp_path_factory.mktemp("matched") / "hand")
    build_report(folder)
    return folder


def test_fixture_helpers_agree_with_hand_computation():
    """The fixture's interpolation and area, against values worked out on paper."""
    steps, _, s = PATHS[("finetuned", "ga", 1)]
    pos = crossing(s["fmm"], TARGET)  # 0.6 at step 10, 0.4 at step 20: half way
    assert at(steps, pos) == pytest.approx(15) and at(s["retain"], pos) == pytest.approx(0.675)
    # 0.2 * (0.8 + 0.75) / 2 + 0.2 * (0.75 + 0.6) / 2 + 0.1 * (0.6 + 0.55) / 2 + 0.05 * (0.55 + 0.5) / 2
    assert area(s["fmm"], s["retain"]) == pytest.approx(0.37375)
    # to the target only: (0.2 * (0.8 + 0.75) / 2 + 0.1 * (0.75 + 0.675) / 2) / (0.8 - 0.5)
    assert mean_to(s["fmm"], s["retain"], pos) == pytest.approx(0.22625 / 0.3)
    assert crossing(s["ftxt"], TARGET) is None


def test_matched_table_shows_costs_and_unreached_targets(run):
    tables = md_tables((run / "report" / "tables.md").read_text(encoding="utf-8"))
    rows = tables["finetuned: at matched forgetting"]
    ga_mm, ga_txt = (r for r in rows if r["method"] == "ga")
    assert ga_mm["forgotten on"] == "multimodal" and ga_mm["target"] == "50.0"
    assert ga_mm["reached at"] == "step 15, 60 examples"
    # retain multimodal starts at 78.0 and is 65.5 half way between 73.0 and 58.0: a cost of 12.5 points
    assert ga_mm["retain mm"] == "78.0 -> 65.5 (-12.5)" and ga_mm["retain text"] == "82.0 -> 69.5 (-12.5)"
    assert ga_mm["general"] == "60.0 -> 57.0 (-3.0)"
    assert ga_mm["AUC retain"] == "75.4"  # 0.22625 / 0.3, see the test above
    assert ga_txt["forgotten on"] == "text-only" and ga_txt["reached at"] == "not reached within 40 steps"
    assert ga_txt["retain mm"] == "-" and ga_txt["general"] == "-"
    assert ga_mm["stop"] == ORACLE
    npo_txt = [r for r in rows if r["method"] == "npo"][1]
    assert npo_txt["reached at"] == "step 10, 50 examples" and npo_txt["general"] == "60.0 -> 60.0 (+0.0)"
    seq = tables["sequential: at matched forgetting"]
    assert [(r["op"], r["forgotten on"]) for r in seq] == [("1", "multimodal"), ("1", "text-only"), ("2", "multimodal"),
                                                           ("2", "text-only")]
    assert seq[2]["general"] == "50.0 -> 40.0 (-10.0)" and seq[3]["reached at"] == "not reached within 20 steps"
    assert tables["pretrained: at matched forgetting"][0]["reached at"] == "step 40, 160 examples"
    tex = (run / "report" / "tables.tex").read_text(encoding="utf-8")
    assert "78.0 -> 65.5 ($-$12.5)" in tex and "not reached within 40 steps" in tex


def test_findings_at_matched_forgetting(run):
    text = findings_text(run)
    budget, matched = text.split("# At matched forgetting\n")
    assert budget.startswith("# At the run's budget\n1. Pre-trained vs fine-tuned knowledge")
    lines = matched.splitlines()
    f1, f2, f3 = (next(i for i, ln in enumerate(lines) if ln.startswith(f"{n}. ")) for n in (1, 2, 3))
    ga_mm, ga_txt = lines[f1 + 1], lines[f1 + 2]
    # finetuned: general 60 -> 57 (3.0), retain 80 -> 67.5 (12.5); pretrained: 60 -> 35 (25.0), 80 -> 50 (30.0)
    assert "general cost: finetuned 3.0 pts, pretrained 25.0 pts" in ga_mm
    # no interval at matched forgetting: the estimate (pretrained minus finetuned general cost), no verdict
    assert "retain cost: finetuned 12.5 pts, pretrained 30.0 pts" in ga_mm
    assert ga_mm.endswith("-> inconclusive (no interval; estimate +22.0 pts)")
    assert "finetuned: not reached within 40 steps (target 50.0%)" in ga_txt
    assert "pretrained: not reached within 60 steps" in ga_txt and ga_txt.endswith("-> not measured (the target "
                                                                                   "was not reached)")
    seq_mm, seq_txt = lines[f2 + 1], lines[f2 + 2]
    # the one-shot side's general cost 60 -> 57; the sequence's side is only in findings.csv, which this run lacks
    assert "one-shot general cost 3.0 pts; no findings.csv holds the sequence's matched point" in seq_mm
    assert seq_mm.endswith("-> not measured")
    assert "one-shot: not reached within 40 steps" in seq_txt and seq_txt.endswith("not measured (the target was "
                                                                                    "not reached)")
    third = lines[f3 + 1:]
    assert len(third) == 3  # finetuned ga, finetuned npo, pretrained ga; sequential has no line
    assert third[0].startswith("   finetuned/ga/llm ")
    assert "multimodal (target 50.0%): step 15, 60 examples; text-only (target 50.0%): not reached within 40 " \
           "steps" in third[0]
    assert third[0].endswith("-> inconclusive (no interval; only multimodal reached the target)")
    assert "multimodal (target 50.0%): step 40, 200 examples; text-only (target 50.0%): step 10, 50 " \
           "examples" in third[1]
    assert third[1].endswith("-> inconclusive (no interval; estimate -150.0 examples)")  # text-only 50 - multimodal 200
    page = (run / "report" / "report.html").read_text(encoding="utf-8")
    assert "<h3>At matched forgetting</h3>" in page and "<h3>At the run&#x27;s budget</h3>" in page


def test_stopping_rule_is_labelled_and_an_oracle_visibly(run):
    md = (run / "report" / "tables.md").read_text(encoding="utf-8")
    head = md.split("\n## ", 1)[0]
    assert f"Stopping rule: {ORACLE}." in head and "ORACLE" in head
    tables = md_tables(md)
    assert {r["stop"] for r in tables["finetuned: after unlearning"][1:]} == {ORACLE}
    (stopping,) = tables["stopping: where each operation stopped"]
    assert stopping["sees"] == "ORACLE (forget questions)" and stopping["reason"] == "budget spent"
    assert stopping["stopped_at"] == "40" and stopping["rule"] == "forget multimodal <= 50%"
    page = (run / "report" / "report.html").read_text(encoding="utf-8")
    assert f"<p class='oracle'>Stopping rule: {ORACLE}. ORACLE" in page


def test_training_facts_rule_is_not_called_an_oracle(tmp_path):
    folder = make_run(tmp_path / "train", stop="target (training facts)")
    build_report(folder)
    md = (folder / "report" / "tables.md").read_text(encoding="utf-8")
    assert "Stopping rule: target (training facts)." in md and "ORACLE:" not in md
    page = (folder / "report" / "report.html").read_text(encoding="utf-8")
    assert "<p class='note'>Stopping rule: target (training facts).</p>" in page


def test_trajectory_plot_draws_the_paths_and_targets(run):
    files = sorted(p.name for p in (run / "report").glob("trajectory_*"))
    assert files == ["trajectory_multimodal.png", "trajectory_multimodal.svg", "trajectory_text.png",
                     "trajectory_text.svg"]
    loaded = read_run(run)
    fig = plots.trajectory_paths(combined([loaded], "trajectory"), combined([loaded], "matched"), "multimodal")
    try:
        axes = fig.axes
        titles = [ax.get_title() for ax in axes]
        assert titles == ["finetuned: retain", "pretrained: retain", "sequential: retain", "finetuned: general",
                          "pretrained: general", "sequential: general"]
        retain = axes[0]
        paths_drawn = [ln for ln in retain.lines if ln.get_marker() == "o" and len(ln.get_xdata()) > 1]
        assert len(paths_drawn) == 2  # ga and npo
        ga = paths_drawn[0]
        assert list(ga.get_xdata()) == pytest.approx([80, 60, 40, 30, 25])
        assert list(ga.get_ydata()) == pytest.approx([80, 75, 60, 55, 50])
        targets = [ln for ln in retain.lines if list(ln.get_xdata()) == [50, 50]]
        assert len(targets) == 1 and targets[0].get_linestyle() == ":"
        stars = [(ln.get_xdata()[0], ln.get_ydata()[0]) for ln in retain.lines
                 if ln.get_marker() == "*" and len(ln.get_xdata())]
        assert stars == [pytest.approx((50, 67.5)), pytest.approx((50, 72))]  # npo reaches it at step 40
        assert retain.get_xlim() == (100, 0)  # inverted: unlearning moves right
        seq = axes[2]
        assert len([ln for ln in seq.lines if ln.get_marker() == "o" and len(ln.get_xdata()) > 1]) == 2  # per operation
        assert sorted(t.get_text() for t in seq.texts) == ["1", "2"]
    finally:
        plots.plt.close(fig)


def test_a_run_without_trajectories_reports_as_before(tmp_path):
    folder = make_run(tmp_path / "old", stop="", trajectories=False)
    build_report(folder)
    md = (folder / "report" / "tables.md").read_text(encoding="utf-8")
    assert "at matched forgetting" not in md and "Stopping rule" not in md
    assert "stop" not in md_tables(md)["finetuned: after unlearning"][0]
    assert not list((folder / "report").glob("trajectory_*"))
    assert "# At matched forgetting" not in findings_text(folder)


def test_compare_pools_matched_numbers_over_seeds(tmp_path):
    runs = [make_run(tmp_path / "s0", seed=0, shift=0.0),
            make_run(tmp_path / "s1", seed=1, shift=-0.02, pretrained_mm=(.90, .70, .60, .50)),
            make_run(tmp_path / "s2", seed=2, shift=0.02, pretrained_mm=(.90, .80, .70, .60))]
    build_compare(runs, tmp_path / "cmp")
    tables = md_tables((tmp_path / "cmp" / "tables.md").read_text(encoding="utf-8"))
    ga_mm = tables["finetuned: at matched forgetting"][0]
    # retain mm at the match: 65.5, 63.5, 67.5 -> mean 65.5, sample std 2.0; the start is 78.0 in every run
    assert ga_mm["runs"] == "3" and ga_mm["retain mm"] == "78.0 -> 65.5 ± 2.0 (-12.5)"
    assert ga_mm["reached at"] == "step 15 ± 0, 60 ± 0 examples"  # the same point in every run
    pt_mm = tables["pretrained: at matched forgetting"][0]
    # reached at step 40 (160 examples) and step 60 (240): mean 50 and 200, sample std 14.14 and 56.57
    assert pt_mm["reached at"] == "step 50 ± 14.14, 200 ± 56.57 examples; reached in 2 of 3 runs (the others not " \
                                  "within 60 steps)"
    # retain mm there: 50 - 2 = 48 and 45 - 2 = 43 (the third run is left out): 45.5 ± 3.5, from 78.0
    assert pt_mm["retain mm"] == "78.0 -> 45.5 ± 3.5 (-32.5)"
    pt_txt = tables["pretrained: at matched forgetting"][1]
    assert pt_txt["reached at"] == "not reached within 60 steps in any of 3 runs"
    text = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    assert "(pretrained reached it in 2 of 3 runs)" in text


def _no_target(frame):
    return frame.drop(columns=["target"])


def _reached_without_cost(frame):
    frame.loc[frame.reached == 0, "reached"] = 1
    return frame


def _reached_two(frame):
    frame.loc[0, "reached"] = 2
    return frame


def _words_for_steps(frame):
    frame["step"] = frame["step"].astype(object)
    frame.loc[0, "step"] = "soon"
    return frame


@pytest.mark.parametrize("edit, message", [
    (_no_target, "matched.csv: missing column(s) target"),
    (_reached_without_cost, "matched.csv: a row with reached=1 needs step, examples, accuracy and cost"),
    (_reached_two, "matched.csv: column reached must be 0 or 1"),
    (_words_for_steps, "matched.csv: column step must hold numbers"),
])
def test_bad_matched_csv_is_one_line_exit_2(tmp_path, capsys, edit, message):
    folder = make_run(tmp_path / "bad")
    edit(pd.read_csv(folder / "matched.csv")).to_csv(folder / "matched.csv", index=False)
    assert main(["report", str(folder)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and message in err[0], err
    assert not (folder / "report").exists()


def test_python_api_reads_trajectory_and_matched(tmp_path):
    folder = make_run(tmp_path / "api")
    loaded = pulse_unlearn.load_run(folder)
    assert len(loaded.trajectory) == len(trajectory_rows(paths(0.0, None)))
    ga = loaded.matched[(loaded.matched.method == "ga") & (loaded.matched.scenario == "finetuned")
                        & (loaded.matched.target_modality == "multimodal") & (loaded.matched.split == "retain")
                        & (loaded.matched.modality == "all")]
    assert ga.cost.tolist() == pytest.approx([0.125]) and ga.reached.tolist() == [1]
    old = pulse_unlearn.load_run(make_run(tmp_path / "old", trajectories=False))
    assert old.trajectory is None and old.matched is None


def test_the_report_shows_each_matched_verdict_at_every_kept_level(tmp_path):
    """sensitivity.csv's rows side by side, one column per level, the run's own level marked."""
    folder = make_run(tmp_path / "sens")
    (folder / "config.yaml").write_text("name: sens\nseed: 0\ntrajectory: {compare: {rule: kept, kept: 0.5}}\n")
    base = {"finding": 1, "at": "matched", "method": "ga", "update": "llm", "scenarios": "pretrained vs finetuned",
            "target_modality": "multimodal", "comparison": "general cost at matched forgetting: pre-trained minus "
            "fine-tuned", "level": 0.98, "p": 0.01, "p_holm": 0.02, "clusters": 60, "shared": 0, "resamples": 2000}
    rows = [{"kept": 0.3, **base, "estimate": 0.2349, "ci_low": 0.05, "ci_high": 0.4, "verdict": "reproduced"},
            {"kept": 0.5, **base, "estimate": 0.1, "ci_low": -0.02, "ci_high": 0.3, "verdict": "inconclusive"},
            {"kept": 0.3, **base, "finding": 3, "scenarios": "finetuned", "target_modality": "",
             "comparison": "forget examples to the target: text-only minus multimodal", "estimate": -150.4,
             "ci_low": -300.0, "ci_high": -10.6, "verdict": "the opposite"}]
    pd.DataFrame(rows).to_csv(folder / "sensitivity.csv", index=False)
    build_report(folder)
    (table,) = [t for name, t in md_tables((folder / "report" / "tables.md").read_text(encoding="utf-8")).items()
                if name == "matched forgetting: sensitivity to the target"]
    first, third = table
    assert first["kept 0.3"] == "reproduced +23.5 [+5.0, +40.0]"
    assert first["kept 0.5 (run's)"] == "inconclusive +10.0 [-2.0, +30.0]"
    assert third["finding"] == "3" and third["forgotten on"] == "-"
    assert third["kept 0.3"] == "the opposite -150 examples [-300, -11]" and third["kept 0.5 (run's)"] == "-"
