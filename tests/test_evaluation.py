"""The evaluation layer's components: prediction kinds round-trip, metrics and splits are
registered and the schema follows them, probes change inputs or models, the registry refuses
clashes and names broken plugins."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from pulse_unlearn.errors import PulseError
from pulse_unlearn.evaluation import metrics as metric_registry
from pulse_unlearn.evaluation.predictions import KINDS, OpenPrediction, Prediction, from_record, to_record
from pulse_unlearn.evaluation.splits import SPLITS, Split, split_items
from pulse_unlearn.evaluation.summary import (point_rows, prediction_columns, prediction_rows,
                                             summary_columns, summary_rows)
from pulse_unlearn.evaluation.facts import FactPrediction
from pulse_unlearn.records import Example, Question
from pulse_unlearn.core.registry import Registry

CHOICE = Prediction("p1/multimodal/0", "p1", "multimodal", "B", "C", {"A": -1.5, "B": 0.25, "C": 2.0})
FACT = FactPrediction("p1/fact-0", "p1", "text", "a painter", "a baker", 0.5)
CLOZE = OpenPrediction("p1/cloze/0", "p1", "text", "cloze", "Paris", "in Paris", 1.0)
GENERATION = OpenPrediction("p1/generation/0", "p1", "text", "generation", "a b", "a c", 0.5,
                            {"rouge1": 0.5, "rouge2": 0.0, "rougeL": 0.5, "bleu": 0.1})


@pytest.mark.parametrize("pred", [CHOICE, CLOZE, GENERATION, FACT], ids=["choice", "cloze", "generation", "facts"])
def test_every_prediction_kind_round_trips_through_json(pred):
    """What resume records hold: written as JSON, read back as the same prediction of the same kind."""
    back = from_record(json.loads(json.dumps(to_record(pred))))
    assert back == pred and type(back) is type(pred)


def test_every_registered_kind_is_covered_by_the_round_trip():
    assert set(KINDS) == {"choice", "open", "facts"}


def test_headline_value_and_cells_by_kind():
    assert (CHOICE.value, CHOICE.correct_cell()) == (0.0, 0)
    assert (CLOZE.value, CLOZE.correct_cell()) == (1.0, 1)
    assert (GENERATION.value, GENERATION.correct_cell()) == (0.5, 0.5)
    assert (FACT.value, FACT.correct_cell()) == (0.5, 0.5)
    # chance: a blind guess's score, 1/3 over three options, 0 for free answers and facts
    assert (CHOICE.chance, CLOZE.chance, GENERATION.chance, FACT.chance) == (pytest.approx(1 / 3), 0.0, 0.0, 0.0)


def test_summary_and_prediction_columns_follow_the_metric_registry():
    assert summary_columns() == ("scenario", "method", "update", "step", "request", "split", "category", "modality",
                                 "n", "accuracy", "ci_low", "ci_high", "scoring", "stop", "rouge1", "rouge2", "rougeL",
                                 "bleu")
    assert prediction_columns()[-5:] == ("correct", "rouge1", "rouge2", "rougeL", "bleu")


def test_the_general_benchmark_is_also_summarised_per_category():
    """Per category: n and accuracy of its items alone (colour: 1 of 2 right; city: 2 of 2), next to
    the row over all items; a people split has only the rows over all; predictions carry the category."""
    def pred(i, category, right, subject=None):
        return Prediction(f"g{i}", subject or str(i), "text", "A", "A" if right else "B", {"A": 0.0, "B": 0.0},
                          category)

    general = [pred(0, "colour", True), pred(1, "colour", False), pred(2, "city", True), pred(3, "city", True)]
    forget = [pred(9, "hobby", False, "p"), pred(8, "city", True, "p")]
    rows = summary_rows({"general": general, "forget": forget}, (("p",),), 1)
    by = {(r["split"], r["category"], r["modality"]): r for r in rows}
    assert (by[("general", "colour", "all")]["n"], by[("general", "colour", "all")]["accuracy"]) == (2, 0.5)
    assert by[("general", "city", "all")]["accuracy"] == 1.0
    assert by[("general", "all", "all")]["accuracy"] == 0.75
    assert {r["category"] for r in rows if r["split"] == "forget"} == {"all"}
    assert [r["category"] for r in prediction_rows({"forget": forget}, 1)] == ["hobby", "city"]
    assert all("category" not in r for r in point_rows({"general": general}))


def test_a_registered_metric_becomes_a_column_and_fills_the_rows_of_its_task(monkeypatch):
    """A metric added to the registry (as a plugin would) is a summary column, aggregated as declared
    (median of 1, 2, 10 is 2), on the splits of its task only, and a per-item column in predictions."""
    reg = Registry("metric")
    for m in metric_registry.METRICS.values():
        reg.register(m)
    reg.register(metric_registry.Metric("reply_length", lambda p: float(len(p.predicted)), tasks=("choice",),
                                        aggregate="median", higher_is_better=False))
    monkeypatch.setattr(metric_registry, "METRICS", reg)
    assert summary_columns()[-1] == "reply_length" and prediction_columns()[-1] == "reply_length"
    preds = [Prediction(f"q{i}", "p", "text", "A", "x" * n, {"A": 0.0}) for i, n in enumerate((1, 2, 10))]
    rows = summary_rows({"forget": preds, "forget_cloze": [CLOZE]}, (("p",),), 1)
    by = {(r["split"], r["modality"]): r for r in rows}
    assert by[("forget", "all")]["reply_length"] == 2
    assert "reply_length" not in by[("forget_cloze", "all")]
    assert [r["reply_length"] for r in prediction_rows({"forget": preds}, 1)] == [1.0, 2.0, 10.0]


def test_a_summary_rows_interval_resamples_its_people():
    """Three people, two questions each: the row's interval is the people-clustered bootstrap of
    its items, at the configured resamples, seed and level; a one-person row's is a point."""
    from pulse_unlearn.config import IntervalConfig
    from pulse_unlearn.stats import Sample, interval

    answers = {"a": ("A", "A"), "b": ("A", "B"), "c": ("B", "B")}
    preds = [Prediction(f"{person}/{i}", person, "text", "A", said, {"A": 0.0})
             for person, pair in answers.items() for i, said in enumerate(pair)]
    settings = IntervalConfig(resamples=300, seed=4, level=0.9)
    row = next(r for r in summary_rows({"forget": preds}, (), 1, settings) if r["modality"] == "text")
    low, high = interval(Sample([1, 1, 1, 0, 0, 0], list("aabbcc")), 300, 4, 0.9)
    assert (row["ci_low"], row["ci_high"]) == (round(low, 6), round(high, 6))
    assert row["ci_low"] <= row["accuracy"] == 0.5 <= row["ci_high"] and row["ci_low"] < row["ci_high"]
    alone = summary_rows({"forget": preds[:2]}, (), 1, settings)[0]
    assert alone["ci_low"] == alone["accuracy"] == alone["ci_high"] == 1.0


def test_metric_aggregation_is_declared():
    with pytest.raises(ValueError, match="aggregate"):
        metric_registry.Metric("x", lambda p: 1.0, aggregate="geometric")
    mean = metric_registry.METRICS["accuracy"]
    assert mean.of([CHOICE, Prediction("q", "p", "text", "A", "A", {})]) == 0.5
    assert metric_registry.METRICS["bleu"].of([CHOICE]) is None  # a choice has no BLEU: no value


def _question(qid, subject, modality, image=None):
    return Question(qid, subject, modality, "?", {"A": "x", "B": "y"}, "A", image, "")


def _src():
    people = {pid: SimpleNamespace(image=b"profile-" + pid.encode()) for pid in ("a", "b", "c")}
    qs = {pid: [_question(f"{pid}/multimodal/0", pid, "multimodal", b"profile"),
                _question(f"{pid}/text/0", pid, "text")] for pid in people}
    return SimpleNamespace(people=people, test_images={"a": (b"profile-a", b"pose-a"), "b": (b"profile-b",)},
                           general=[_question("g0", "0", "text")],
                           questions_of=lambda ids: [q for pid in ids for q in qs[pid]],
                           open_of=lambda ids, task: [], away_from=lambda items, forget: items,
                           scope_of=lambda forget: [])


def test_split_registry_builds_each_split_in_order_and_drops_empty_ones():
    """forget_test is the test_images probe applied to the forget split: a's pose image (its first
    Test_Set image is its profile image), b has none that differs, so only a's multimodal question."""
    cfg = SimpleNamespace(scoring="likelihood", parity=SimpleNamespace(open_tasks=True),
                          unlearn=SimpleNamespace(stop="fixed"), trajectory=SimpleNamespace(splits=["forget"]))
    sets = SimpleNamespace(forget=("a", "b"), retain=("c",))
    items = split_items(cfg, _src(), sets)
    assert list(items) == ["forget", "forget_test", "retain", "general"]
    # the training facts join the evaluation where the trajectory names them (a stopping rule on
    # them reads them at its checkpoints only)
    cfg.unlearn = SimpleNamespace(stop="target", target=SimpleNamespace(sees="training"))
    assert "forget_facts" not in split_items(cfg, _src(), sets)
    cfg.trajectory.splits = ["forget_facts", "retain_facts"]
    src = _src()
    src.facts = {"a": [Example("q?", "x")], "c": [Example("r?", "y", b"img")]}
    items = split_items(cfg, src, sets)
    assert list(items)[-2:] == ["forget_facts", "retain_facts"]
    assert [(q.qid, q.modality) for q in items["retain_facts"]] == [("c/fact-0", "multimodal")]
    assert [(q.qid, q.image) for q in items["forget_test"]] == [("a/multimodal/0/test", b"pose-a")]
    assert [q.subject for q in items["retain"]] == ["c", "c"]
    assert SPLITS["forget"].per_request and not SPLITS["retain"].per_request
    assert [m.name for m in SPLITS["forget_generation"].metrics] == ["accuracy", "rouge1", "rouge2", "rougeL", "bleu"]
    with pytest.raises(ValueError, match="task"):
        Split("x", lambda c: [], task="essay")


def test_registry_refuses_a_second_component_under_one_name_and_lists_choices():
    reg = Registry("split")
    reg.register(SPLITS["forget"])
    with pytest.raises(PulseError, match="registered twice"):
        reg.register(Split("forget", lambda c: []))
    with pytest.raises(PulseError, match="unknown split 'nope'; choose from forget"):
        reg["nope"]


def test_a_broken_plugin_is_one_line(monkeypatch):
    import pulse_unlearn.core.registry as registry

    class EP:
        name, value, group = "bad", "no_such_module:Thing", "pulse_unlearn.test"

        def load(self):
            raise ModuleNotFoundError("No module named 'no_such_module'")

    monkeypatch.setattr(registry, "entry_points", lambda group: [EP()])
    with pytest.raises(PulseError, match="plugin 'no_such_module:Thing'.*cannot be loaded"):
        list(Registry("split", "pulse_unlearn.test"))


def test_forget_test_asks_multimodal_questions_with_another_image():
    """forget_test: each multimodal question with its person's first Test_Set image that is not
    the profile image; text questions and people without such an image are left out."""
    from pulse_unlearn.evaluation.unseen_images import with_test_images

    mm = Question("a/mm/0", "a", "multimodal", "Q?", {"A": "x", "B": "y"}, "A", image=b"profile")
    txt = Question("a/txt/0", "a", "text", "Q?", {"A": "x", "B": "y"}, "A")
    other = Question("b/mm/0", "b", "multimodal", "Q?", {"A": "x", "B": "y"}, "A", image=b"b-profile")
    src = SimpleNamespace(people={"a": SimpleNamespace(image=b"profile"), "b": SimpleNamespace(image=b"b-profile")},
                          test_images={"a": (b"profile", b"unseen"), "b": (b"b-profile",)})
    out = with_test_images([mm, txt, other], src)
    assert [(q.qid, q.image, q.question) for q in out] == [("a/mm/0/test", b"unseen", "Q?")]
