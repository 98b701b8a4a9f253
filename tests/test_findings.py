"""The main table and the findings read the summary rows they are given, nothing else."""

from pulse_unlearn.report.findings import Summary, findings, main_table


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
    assert "general drop: finetuned 5.0 pts, pretrained 50.0 pts" in lines[1] and lines[1].endswith("reproduced")
    assert "general 55.0% one-shot vs 10.0% after 5 ops" in lines[3] and lines[3].endswith("reproduced")
    # above chance (25%): multimodal 0.1 is below it (keeps 0%), text-only keeps 0.15 / 0.55
    assert "multimodal 80.0% -> 10.0% (keeps 0%), text-only 80.0% -> 40.0% (keeps 27%)" in lines[5]
    assert lines[5].endswith("reproduced")
    assert lines[6].endswith("no clear difference (< 5 pts)")  # pretrained: keeps 45% vs 49%
    table = main_table(s)
    assert " 80.0 ->  10.0" in table and "sequential" in table
