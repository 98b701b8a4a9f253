"""Property-based tests (hypothesis) of the config, the loaders, the records and the metrics."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pulse_unlearn.cli import main
from pulse_unlearn.config import RunConfig
from pulse_unlearn.protocol.catalog import approaches, load_config, units
from pulse_unlearn.core.messages import schema_keys
from pulse_unlearn.data.mllmu import load_people
from pulse_unlearn.data.mmbench import load_mmbench
from pulse_unlearn.errors import PulseError
from pulse_unlearn.evaluation.collapse import answer_collapse
from pulse_unlearn.evaluation.scorers import Prediction, accuracy
from pulse_unlearn.records import LETTERS, MC_INSTRUCTION, Question, mc_prompt
from pulse_unlearn.evaluation.summary import summary_rows


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

line_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
    lambda s: s.strip() not in ("", "nan"))
option_sets = st.integers(2, 4).flatmap(lambda n: st.lists(line_text, min_size=n, max_size=n)).map(
    lambda texts: dict(zip(LETTERS, texts)))
predictions = st.lists(st.builds(
    lambda m, opts, ans, pred: Prediction("q", "s", m, LETTERS[ans % opts], LETTERS[pred % opts], {}),
    st.sampled_from(["multimodal", "text"]), st.integers(2, 4), st.integers(0, 3), st.integers(0, 3)), max_size=60)


@SETTINGS
@given(predictions)
def test_accuracy_is_the_share_of_correct_answers(preds):
    acc = accuracy(preds)
    if not preds:
        assert acc == {}
        return
    n, value = acc["all"]
    assert n == len(preds) and value == pytest.approx(sum(p.predicted == p.answer for p in preds) / len(preds))
    assert 0.0 <= value <= 1.0
    # "all" is the question-weighted mean of the modalities
    parts = [acc[m] for m in ("multimodal", "text") if m in acc]
    assert sum(k for k, _ in parts) == n
    assert sum(k * v for k, v in parts) / n == pytest.approx(value)


@SETTINGS
@given(predictions)
def test_summary_rows_count_every_prediction_once(preds):
    rows = summary_rows({"forget": preds, "retain": preds[:5]}, (("s",),), 1)
    by = {(r["split"], r["modality"]): r for r in rows}
    if preds:
        assert by[("forget", "all")]["n"] == len(preds)
        assert by[("forget", "all")]["accuracy"] == pytest.approx(accuracy(preds)["all"][1], abs=1e-6)
    assert all(0.0 <= r["accuracy"] <= 1.0 and r["n"] > 0 for r in rows)


@SETTINGS
@given(predictions)
def test_collapse_is_the_share_of_the_most_frequent_answer(preds):
    c = answer_collapse(preds)
    if not preds:
        assert not c.collapsed and c.n == 0
        return
    top = Counter(p.predicted for p in preds).most_common(1)[0][1]
    assert c.share == pytest.approx(top / len(preds)) and c.n == len(preds)
    assert c.collapsed == (len(preds) >= 20 and c.share >= 0.9 and
                           sum(p.answer == c.letter for p in preds) / len(preds) < 0.5)


@SETTINGS
@given(option_sets, st.sampled_from(LETTERS), line_text, st.booleans())
def test_question_accepts_exactly_an_answer_among_its_options(options, answer, text, with_image):
    make = lambda: Question("q", "s", "multimodal" if with_image else "text", text, options, answer,  # noqa: E731
                            PNG if with_image else None)
    if answer in options:
        q = make()
        lines = mc_prompt(q.question, q.options).split("\n")
        assert lines[-1] == MC_INSTRUCTION and lines[-1 - len(options):-1] == [f"{k}. {v}" for k, v in
                                                                                  options.items()]
    else:
        with pytest.raises(ValueError, match="not among options"):
            make()
    with pytest.raises(ValueError, match="image"):  # an image exactly on multimodal questions
        Question("q", "s", "text" if with_image else "multimodal", text, options, next(iter(options)),
                 PNG if with_image else None)


mmbench_rows = st.lists(st.tuples(line_text, st.one_of(st.just(""), line_text), option_sets, st.integers(0, 3),
                                  st.booleans()), min_size=1, max_size=8)


@SETTINGS
@given(mmbench_rows)
def test_mmbench_tsv_round_trip(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("tsv") / "mmbench.tsv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image"])
        for i, (question, hint, options, ans, image) in enumerate(rows):
            answer = list(options)[ans % len(options)]
            w.writerow([i, question, hint, *(options.get(k, "") for k in LETTERS), answer, "cat",
                        base64.b64encode(PNG).decode() if image else ""])
    loaded = load_mmbench(path)
    assert len(loaded) == len(rows)
    for q, (question, hint, options, ans, image) in zip(loaded, rows):
        assert q.options == options and q.answer == list(options)[ans % len(options)]
        assert q.question == (f"{hint.strip()}\n{question}" if hint.strip() else question)
        assert (q.image == PNG) == image and q.modality == ("multimodal" if image else "text")


def _task(questions):
    return [{"Question": t, "Options": {k: opts.get(k) for k in LETTERS}, "Correct_Answer": a}
            for t, opts, a in questions]


people_rows = st.lists(st.tuples(
    st.lists(st.tuples(line_text, option_sets, st.integers(0, 3), st.booleans()), max_size=3),
    st.lists(st.tuples(line_text, option_sets, st.integers(0, 3), st.booleans()), max_size=3)),
    min_size=1, max_size=5)


@SETTINGS
@given(people_rows)
def test_mllmu_parquet_round_trip(tmp_path_factory, people):
    """Questions come back as written, whether Correct_Answer holds the letter or the option's text."""
    root = tmp_path_factory.mktemp("mllmu")
    (root / "Full_Set").mkdir()
    rows, expected = [], []
    for i, (mm, text) in enumerate(people):
        want, task = [], {}
        for key, items, modality in (("Image_Textual_Questions", mm, "multimodal"), ("Pure_Text_Questions", text,
                                                                                    "text")):
            written = []
            for t, opts, ans, as_text in items:
                letter = list(opts)[ans % len(opts)]
                # As text only where that is unambiguous: no other option has the same text, and the
                # text is not itself a letter nor changed by the loader's strip().
                text_ok = list(opts.values()).count(opts[letter]) == 1 and opts[letter] not in LETTERS and \
                    opts[letter] == opts[letter].strip()
                answer = opts[letter] if as_text and text_ok else letter
                written.append((t, opts, answer))
                want.append((modality, t, opts, letter))
            task[key] = _task(written)
        rows.append({"ID": f"p{i}", "image": {"bytes": PNG, "path": None}, "biography": "b",
                     "Classification_Task": task})
        expected.append(want)
    pq.write_table(pa.Table.from_pylist(rows), root / "Full_Set" / "train-00000-of-00001.parquet")
    loaded = load_people(root, "Full_Set")
    assert [p.id for p in loaded] == [f"p{i}" for i in range(len(people))]
    for person, want in zip(loaded, expected):
        got = [(q.modality, q.question, q.options, q.answer) for q in person.questions]
        assert got == want
        assert all((q.image == PNG) == (q.modality == "multimodal") for q in person.questions)


@SETTINGS
@given(st.binary(max_size=64))
def test_mllmu_refuses_bytes_that_are_not_an_image(tmp_path_factory, junk):
    root = tmp_path_factory.mktemp("junk")
    (root / "Full_Set").mkdir()
    pq.write_table(pa.Table.from_pylist([{"ID": "p0", "image": {"bytes": junk, "path": None}, "biography": "b",
                                          "Classification_Task": {"Pure_Text_Questions": []}}]),
                   root / "Full_Set" / "train.parquet")
    expected = r"Full_Set/train.parquet: person p0: image (has no bytes|bytes are not a readable image)"
    with pytest.raises(PulseError, match=expected):
        load_people(root, "Full_Set")


# Defect 3: any value of any type at any key of the schema (each method's parameters included)
# either loads, and `pulse run --check` lists the units, or is one line and exit 2; nothing is
# written either way.
METHOD_PARAM_KEYS = {f"method_params.{name}.{param}" for name, cls in approaches().items()
                     for param in cls.Params.model_fields}
CONFIG_KEYS = sorted({k.replace("*", "0") for k in schema_keys(RunConfig)} | METHOD_PARAM_KEYS
                     | {"scenario", "method", "update", "model"})
config_values = st.one_of(
    st.integers(1, 10), st.floats(0.01, 1), st.integers(-5, 200), st.integers(min_value=2**40),
    st.integers(max_value=-(2**40)),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0, 0.0, -0.0, 1e300, -1e-300]),
    st.booleans(), st.none(), st.text(max_size=8),
    st.sampled_from(["tiny", "default", "path", "world", "npo", "ga", "sequential", "pretrained", "llm", "cuda:0",
                     "auto", "mllmu", "logits", "bfloat16"]),
    st.lists(st.one_of(st.integers(-2, 3), st.text(max_size=4), st.sampled_from(["ga", "npo", "finetuned"])),
             max_size=3),
    st.dictionaries(st.sampled_from(["lr", "rank", "beta", "x"]), st.integers(-2, 3), max_size=2),
)


def _as_yaml(value) -> str:
    """The value as a command-line override writes it."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("\n").removesuffix("\n...")


overrides = st.lists(st.tuples(st.sampled_from(CONFIG_KEYS), st.one_of(config_values.map(_as_yaml),
                                                                         st.text(max_size=10))), min_size=1,
                     max_size=3).map(lambda pairs: [f"{k}={v}" for k, v in pairs])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(overrides)
def test_any_config_value_loads_or_is_one_line_and_nothing_is_written(tmp_path, monkeypatch, items):
    monkeypatch.chdir(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["run", "demo_tiny", *items, "--check", "--cache", str(tmp_path / "cache")])
    assert not any(tmp_path.iterdir()), sorted(tmp_path.iterdir())  # no run folder, no cache
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    if status == 0:
        cfg = load_config("demo_tiny", items)
        assert not lines and out.getvalue().splitlines()[1:] == [
            f"  {s:<11} {m:<10} {u}" for s, m, u in units(cfg)]
    else:
        assert status == 2 and len(lines) == 1 and lines[0].startswith("pulse: error: "), (items, err.getvalue())
        with pytest.raises(PulseError):
            load_config("demo_tiny", items)
        # the line names one of the keys set (or the section it sits in)
        assert any(item.split("=")[0].split(".")[0] in lines[0] for item in items), (items, lines[0])
