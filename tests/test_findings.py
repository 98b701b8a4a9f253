"""The main table and the findings read the summary rows they are given, nothing else."""

from pulse_unlearn.report.findings import Summary, findings, judged_of, main_table


def rows(scenario, method, steps):
    """steps: {step: {(split, modality): accuracy}}"""
    out = []
    for step, accs in steps.items():
        for (split, modality), acc in accs.items():
            out.append({"scenario": scenario, "method": method, "update": "llm", "step": step, "request": "all",
                        "split": split, "modality": modality, "n": 10, "accuracy": acc})
    return out


def test_findings_follow_the_numbers():
    start = {("forget", "multimodal"): 0.8, ("forget", "text"): 0.8, ("general", "all"): 0.6,
             ("retain", "all"): 0.8}
    data = rows("finetuned", "ga", {0: start, 1: {("forget", "multimodal"): 0.1, ("forget", "text"): 0.4,
                                                  ("general", "all"): 0.55, ("retain", "all"): 0.7}})
    data += rows("pretrained", "ga", {0: start, 1: {("forget", "multimodal"): 0.5, ("forget", "text"): 0.52,
                                                    ("general", "all"): 0.1, ("retain", "all"): 0.3}})
    data += rows("sequential", "ga", {0: start, **{k: {("general", "all"): 0.6 - 0.1 * k, ("retain", "all"): 0.5}
                                                   for k in range(1, 6)}})
    s = Summary(data)
    text = findings(s)
    lines = text.splitlines()
    # no findings.csv rows: the point estimate, and no verdict either way
    assert "general drop: finetuned 5.0 pts, pretrained 50.0 pts" in lines[1]
    assert lines[1].endswith("-> inconclusive (no interval; estimate +45.0 pts)")
    assert "general 55.0% one-shot vs 10.0% after 5 ops" in lines[3] and lines[3].endswith("estimate +45.0 pts)")
    # above chance (25%): multimodal 0.1 is below it (keeps 0%), text-only keeps 0.15 / 0.55
    assert "multimodal 80.0% -> 10.0% (keeps 0%), text-only 80.0% -> 40.0% (keeps 27%)" in lines[5]
    assert lines[5].endswith("estimate +27.3 pts)")
    assert lines[6].endswith("estimate +3.6 pts)")  # pretrained: keeps 49% text-only vs 45%
    assert "Holm" in lines[7]
    # with findings.csv's rows, each line states its verdict, estimate and interval
    judged = judged_of([{"finding": 1, "at": "budget", "method": "ga", "update": "llm",
                         "scenarios": "pretrained vs finetuned", "estimate": 0.45, "ci_low": 0.3, "ci_high": 0.6,
                         "level": 0.9875, "verdict": "reproduced"},
                        {"finding": 3, "at": "budget", "method": "ga", "update": "llm", "scenarios": "pretrained",
                         "estimate": 0.036, "ci_low": -0.2, "ci_high": 0.12, "level": 0.975,
                         "verdict": "inconclusive"}])
    lines = findings(s, judged).splitlines()
    assert lines[1].endswith("-> reproduced (+45.0 pts, 98.8% interval [+30.0, +60.0])")
    assert lines[6].endswith("-> inconclusive (+3.6 pts, 97.5% interval [-20.0, +12.0])")
    assert lines[3].endswith("(no interval; estimate +45.0 pts)")  # no row for finding 2
    table = main_table(s)
    assert " 80.0 ->  10.0" in table and "sequential" in table
