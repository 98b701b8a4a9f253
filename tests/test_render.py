"""benchmarks/render.py: the READMEs' findings blocks come from the benchmark's files, and the
repository's blocks are what its committed results give (never typed by hand)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RENDER = ROOT / "benchmarks" / "render.py"
FIELDS = ("finding", "at", "method", "update", "scenarios", "target_modality", "comparison", "estimate", "ci_low",
          "ci_high", "level", "p", "p_holm", "worlds", "runs", "resamples", "verdict", "agree", "per_run")


def render(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RENDER), *map(str, args)], capture_output=True, text=True)


def results(folder: Path) -> Path:
    rows = [("1", "budget", "ga", "llm", "pretrained vs finetuned", "", "general drop: pre-trained minus fine-tuned",
             0.2149, 0.05, 0.4, 0.975, 0.01, 0.02, 5, 10, 2000, "reproduced", "7/10", "reproduced 7, inconclusive 3"),
            ("2", "budget", "npo", "llm", "finetuned vs sequential", "", "general accuracy: one-shot minus sequential",
             -0.0004, -0.1, 0.1, 0.95, 0.9, 1.0, 5, 10, 2000, "inconclusive", "10/10", "inconclusive 10"),
            ("3", "matched", "ga", "llm", "finetuned", "", "forget examples to the target: text-only minus multimodal",
             -151.6, -300.2, -20.0, 0.98, 0.02, 0.04, 5, 10, 2000, "the opposite", "4/10",
             "the opposite 4, inconclusive 6")]
    folder.mkdir(parents=True)
    with open(folder / "findings-pooled.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELDS)
        w.writerows(rows)
    meta = {"world_seeds": [0, 1, 2, 3, 4], "run_seeds": [0, 1], "date": "2026-12-07", "total_minutes": 61.4,
            "machine": {"cpu": "Some CPU", "cores": 2, "torch": "2.13.0+cpu", "transformers": "5.23.0",
                        "commit": "abc1234"}}
    (folder / "findings-meta.json").write_text(json.dumps(meta))
    return folder


def repository(folder: Path) -> Path:
    (folder / "benchmarks").mkdir(parents=True)
    for path in (folder / "README.md", folder / "benchmarks" / "README.md"):
        path.write_text("# typed\n<!-- findings:begin -->\nstale\n<!-- findings:end -->\ntyped after\n")
    return folder


def test_blocks_are_written_from_the_files_and_checked(tmp_path):
    data, root = results(tmp_path / "results"), repository(tmp_path / "repo")
    assert render("--results", data, "--root", root, "--check").returncode == 1
    assert render("--results", data, "--root", root).returncode == 0
    assert render("--results", data, "--root", root, "--check").returncode == 0
    readme = (root / "README.md").read_text()
    assert readme.startswith("# typed\n<!-- findings:begin -->\n") and readme.endswith("<!-- findings:end -->\n"
                                                                                      "typed after\n")
    assert "stale" not in readme
    assert "5 worlds x 2 run seeds" in readme and "1 reproduced, 1 the opposite, 1 inconclusive." in readme
    assert "- Finding 1, pre-trained vs fine-tuned knowledge: 1 reproduced, 0 the opposite, 0 inconclusive; " \
           "reproduced for ga at budget (+21.5 pts [+5.0, +40.0])." in readme
    assert "the opposite for ga at matched (-152 examples [-300, -20])" in readme
    table = (root / "benchmarks" / "README.md").read_text()
    assert "commit abc1234" in table and "Some CPU, 2 cores" in table and "(10 runs, 61 min)" in table
    # a value that rounds to zero is printed +0.0, never -0.0
    assert "| 2 | budget | general accuracy: one-shot minus sequential | npo | - | +0.0 pts | [-10.0, +10.0] " \
           "(95.0%) | inconclusive | 10/10 (inconclusive 10) |" in table
    assert "21 of 30 per-run verdicts agree" in table  # 7 + 10 + 4 of 10 + 10 + 10


def test_the_sensitivity_table_is_one_column_per_level(tmp_path):
    data, root = results(tmp_path / "results"), repository(tmp_path / "repo")
    fields = ("kept", *FIELDS)
    with open(data / "findings-sensitivity.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for kept, estimate, low, high, verdict in (("0.3", 0.031, -0.01, 0.07, "inconclusive"),
                                                   ("0.7", 0.052, 0.012, 0.09, "reproduced")):
            w.writerow((kept, "2", "matched", "ga", "llm", "finetuned vs sequential", "text",
                        "general cost at matched forgetting", estimate, low, high, 0.99, 0.1, 0.2, 5, 10, 2000,
                        verdict, "9/10", ""))
    assert render("--results", data, "--root", root).returncode == 0
    table = (root / "benchmarks" / "README.md").read_text()
    assert "| finding | compares | method | forgotten on | kept 0.3 | kept 0.7 |" in table
    assert "| 2 | finetuned vs sequential | ga | text | inconclusive +3.1 [-1.0, +7.0] | " \
           "reproduced +5.2 [+1.2, +9.0] |" in table
    assert "1 reproduced, 0 the opposite, 1 inconclusive" in table
    assert "kept 0.3" not in (root / "README.md").read_text()  # benchmarks/README only


def test_missing_results_are_one_clear_line(tmp_path):
    root = repository(tmp_path / "repo")
    out = render("--results", tmp_path / "none", "--root", root)
    assert out.returncode == 2 and "lacks findings-pooled.csv, findings-meta.json" in out.stderr
    assert "stale" in (root / "README.md").read_text()


def test_the_repositorys_blocks_are_generated():
    out = render("--check")
    assert out.returncode == 0, out.stderr


def test_the_selectivity_block_comes_from_its_file(tmp_path):
    data, root = results(tmp_path / "results"), repository(tmp_path / "repo")
    bench = root / "benchmarks" / "README.md"
    bench.write_text(bench.read_text() + "<!-- selectivity:begin -->\ntyped\n<!-- selectivity:end -->\n")
    fields = ("levers", "world_seed", "method", "modality", "pending_start", "pending_after_op1", "pending_kept",
              "kept_ci_low", "kept_ci_high", "request1_after_op1", "request1_ci_low", "request1_ci_high", "steps",
              "selective")
    with open(data / "world-selectivity.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        w.writerow(("as shipped", 0, "npo", "multimodal", 0.8, 0.3, 0.0909, 0.0, 0.2, 0.16, 0.06, 0.3, "25 0 0 0 0",
                    False))
        w.writerow(("as shipped", 0, "npo", "text", 1.0, 0.3, 0.0667, 0.0, 0.17, 0.26, 0.14, 0.4, "25 0 0 0 0",
                    False))
        w.writerow(("unlearn.lr=5e-4", 0, "ga_klr", "multimodal", 0.8, 0.7, 0.818, 0.7, 0.9, 0.2, 0.1, 0.32,
                    "80 5 5 5 5", True))
        w.writerow(("unlearn.lr=5e-4", 0, "ga_klr", "text", 1.0, 0.9, 0.8667, 0.8, 0.93, 0.6, 0.48, 0.7,
                    "80 5 5 5 5", True))
    assert render("--results", data, "--root", root, "--check").returncode == 1
    assert render("--results", data, "--root", root).returncode == 0
    text = bench.read_text()
    assert "typed\n<!-- selectivity:end -->" not in text
    assert ("| as shipped | 0 | npo | 0.09 [0.00, 0.20] | 0.07 [0.00, 0.17] | 0.16 [0.06, 0.30] / 0.26 [0.14, 0.40] "
            "| 25 0 0 0 0 | no |") in text
    assert ("| unlearn.lr=5e-4 | 0 | ga_klr | 0.82 [0.70, 0.90] | 0.87 [0.80, 0.93] | 0.20 [0.10, 0.32] / "
            "0.60 [0.48, 0.70] | 80 5 5 5 5 | yes |") in text
    assert render("--results", data, "--root", root, "--check").returncode == 0


def test_the_oracle_block_comes_from_its_files(tmp_path):
    data, root = results(tmp_path / "results"), repository(tmp_path / "repo")
    bench = root / "benchmarks" / "README.md"
    bench.write_text(bench.read_text() + "<!-- oracle:begin -->\ntyped\n<!-- oracle:end -->\n")
    with open(data / "oracle.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("world_seed", "scenario", "operation", "model", "split", "modality", "n", "accuracy", "ci_low",
                    "ci_high"))
        w.writerow((0, "sequential", 1, "retrain", "forget", "multimodal", 50, 0.262, 0.2, 0.34))
        w.writerow((0, "sequential", 1, "retrain", "pending", "text", 200, 0.805, 0.75, 0.86))
        w.writerow((0, "sequential", 1, "retrain", "general", "all", 300, 0.7, 0.65, 0.75))
    (data / "oracle-meta.json").write_text(json.dumps({
        "date": "2026-12-07", "machine": {"commit": "abc1234", "cpu": "Some CPU", "cores": 2},
        "overrides": ["oracle=retrain"], "world_seeds": [0], "run_seed": 0, "minutes": 31.5}))
    assert render("--results", data, "--root", root).returncode == 0
    text = bench.read_text()
    assert "typed\n<!-- oracle:end -->" not in text
    assert "| 0 | sequential | 1 | retrain oracle | 26 [20, 34] | - | - | 80 [75, 86] | - | - | 70 [65, 75] |" in text
    assert "commit abc1234" in text and "`oracle=retrain`" in text and "31.5 min" in text
    assert render("--results", data, "--root", root, "--check").returncode == 0


def test_the_world_quality_block_comes_from_its_files(tmp_path):
    data, root = results(tmp_path / "results"), repository(tmp_path / "repo")
    bench = root / "benchmarks" / "README.md"
    bench.write_text(bench.read_text() + "<!-- quality:begin -->\ntyped\n<!-- quality:end -->\n")
    with open(data / "world-quality.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(("levers", "world_seed", "model", "group", "modality", "statistic", "n", "value", "ci_low",
                    "ci_high"))
        w.writerow(("wordings=6", 0, "finetuned", "fictitious", "multimodal", "accuracy", 500, 0.812, 0.78, 0.85))
        w.writerow(("wordings=6", 0, "finetuned", "fictitious", "text", "accuracy", 500, 0.9, 0.87, 0.93))
        w.writerow(("wordings=6", 0, "finetuned", "fictitious", "text", "reworded - original", 500, -0.052, -0.08,
                    -0.021))
        w.writerow(("wordings=6", 0, "base", "general: world_city", "all", "accuracy", 30, 0.97, 0.9, 1.0))
    (data / "world-quality-meta.json").write_text(json.dumps({"wordings=6 / world 0": {
        "date": "2026-12-08", "machine": {"commit": "abc1234", "cpu": "Some CPU", "cores": 2}}}))
    assert render("--results", data, "--root", root, "--check").returncode == 1
    assert render("--results", data, "--root", root).returncode == 0
    text = bench.read_text()
    assert "typed\n<!-- quality:end -->" not in text
    assert "| wordings=6 | 0 | finetuned | fictitious | accuracy | 81.2 [78.0, 85.0] | 90.0 [87.0, 93.0] | - |" in text
    assert "| wordings=6 | 0 | finetuned | fictitious | reworded - original | - | -5.2 [-8.0, -2.1] | - |" in text
    assert "| wordings=6 | 0 | base | general: world_city | accuracy | - | - | 97.0 [90.0, 100.0] |" in text
    assert "commit abc1234" in text
    assert render("--results", data, "--root", root, "--check").returncode == 0
