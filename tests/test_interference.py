"""Cross-concept interference (report/interference.py) against values computed by hand."""

from __future__ import annotations

import pytest

from pulse_unlearn.report.findings import Summary
from pulse_unlearn.report.interference import drops, interference_findings, interference_table


def _rows(scenario, method, values):
    """values: split -> (start, after), multimodal, one operation."""
    return [{"scenario": scenario, "method": method, "update": "llm", "step": step, "request": "all", "split": split,
             "modality": "multimodal", "accuracy": acc}
            for split, pair in values.items() for step, acc in enumerate(pair)]


def test_interference_is_the_scope_drop_minus_the_retain_drop():
    rows = _rows("concepts-person", "ga", {"forget": (0.8, 0.2), "scope": (0.7, 0.4), "retain": (0.6, 0.5)})
    rows += _rows("concepts-event", "ga", {"forget": (0.9, 0.3), "scope": (0.5, 0.55), "retain": (0.6, 0.5)})
    rows += _rows("finetuned", "ga", {"forget": (0.9, 0.3), "retain": (0.6, 0.5)})
    s = Summary(rows)
    person = drops(s, ("concepts-person", "ga", "llm"))
    assert person["forget"] == pytest.approx(0.6) and person["scope"] == pytest.approx(0.3)
    assert person["retain"] == pytest.approx(0.1) and person["interference"] == pytest.approx(0.2)
    event = drops(s, ("concepts-event", "ga", "llm"))
    assert event["interference"] == pytest.approx(-0.05 - 0.1)  # the scope rose by 5 points
    assert drops(s, ("finetuned", "ga", "llm")) is None  # no scope split
    t = interference_table(s)
    assert [r[0] for r in t.rows] == ["concepts-person", "concepts-event"]
    assert t.rows[0][-1].text() == "20.0" and t.rows[1][-1].text() == "-15.0"
    text = interference_findings(s)
    assert "concepts-person, ga/llm: forget -60.0 points" in text
    assert "-30.0, concepts of other images -10.0: interference +20.0 points (the same images lose more)" in text
    assert "the same images +5.0, concepts of other images -10.0: interference -15.0 points (the same images lose " \
           "no more)" in text
    assert "PEBench" in text and "3.89%" in text


def test_no_concepts_units_no_table_and_no_findings():
    s = Summary(_rows("finetuned", "ga", {"forget": (0.9, 0.3), "retain": (0.6, 0.5)}))
    assert interference_table(s) is None and interference_findings(s) == ""
