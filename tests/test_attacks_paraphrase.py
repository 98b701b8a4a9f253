"""The paraphrase attack: the world's rewordings are new text, the changed items keep everything but
the wording, a bad rewordings file is one line before anything is written, and a tiny run's rows."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from processes import pulse, rows

from pulse_unlearn.cli import main
from pulse_unlearn.data.mllmu import load_facts, load_people
from pulse_unlearn.evaluation.attacks import make_attack
from pulse_unlearn.records import Question
from pulse_unlearn.runs.store import file_fingerprint
from pulse_unlearn.world import people, rewordings
from pulse_unlearn.world.build import build_world, world_config


def _read_jsonl(path) -> dict[str, str]:
    return {r["id"]: r["question"] for r in map(json.loads, path.read_text().splitlines())}


@pytest.mark.parametrize("world", ["tiny_world", "rich_world"])
def test_the_world_rewords_every_question_in_words_no_training_or_evaluation_text_uses(world, request):
    tiny_world = request.getfixturevalue(world)
    n = json.loads((tiny_world / "world.json").read_text())["config"].get("attributes", people.FIRST_ATTRIBUTES)
    bench = tiny_world / "MLLMU-Bench"
    reworded = _read_jsonl(bench / rewordings.FILE_NAME)
    persons = load_people(bench, "Full_Set") + load_people(bench, "Retain_Set")
    questions = {q.qid: q.question for p in persons for q in p.questions}
    assert set(reworded) == set(questions) and len(reworded) == 2 * n * len(persons)
    # every text the world trains on or evaluates with: corpus prompts (multiple-choice drills hold
    # their question inside the prompt), ft_Data, cloze and generation items, every subset's questions
    corpus = pq.read_table(tiny_world / "corpus" / "pretrain.parquet", columns=["prompt"]).column("prompt").to_pylist()
    ft = [ex.prompt for exs in load_facts(bench).values() for ex in exs]
    tests = load_people(bench, "Test_Set")
    others = [q.question for p in persons + tests for q in (*p.questions, *p.open_questions)]
    others += [ex.prompt for p in persons for ex in p.facts]
    assert len(corpus) > 1000 and len(ft) == 3 * (2 + 2 * n) * world_config("tiny").n_fictitious
    known = set(corpus) | set(ft) | set(others)
    for qid, text in reworded.items():
        assert text != questions[qid] and text not in known, text
        assert not any(text in prompt for prompt in corpus), text
    for phrase in rewordings.IMAGE_WHO:  # the image is named in words no training text has
        assert phrase not in people.MM_WHO_TRAIN + (people.MM_WHO,)
        assert not any(phrase in t for t in corpus + ft + others), phrase
    mm = [t for qid, t in reworded.items() if "/multimodal/" in qid]
    assert all(any(phrase in t for phrase in rewordings.IMAGE_WHO) for t in mm)


def test_writing_the_rewordings_changes_no_other_world_file(tiny_world, tmp_path, monkeypatch):
    monkeypatch.setattr(rewordings, "write_rewordings", lambda *args: None)
    without = build_world(world_config("tiny"), tmp_path / "w")
    files = sorted(p.relative_to(without) for p in without.rglob("*") if p.is_file())
    assert (tiny_world / "MLLMU-Bench" / rewordings.FILE_NAME).is_file()
    assert sorted(p.relative_to(tiny_world) for p in tiny_world.rglob("*") if p.is_file()) == sorted(
        files + [Path("MLLMU-Bench") / rewordings.FILE_NAME])
    for f in files:
        assert (without / f).read_bytes() == (tiny_world / f).read_bytes(), f


def _q(qid, image=b"png"):
    subject, modality, _ = qid.rsplit("/", 2)
    return Question(qid, subject, modality, "What is the occupation of X?", {"A": "baker", "B": "pilot"}, "B",
                    image if modality == "multimodal" else None, "occupation")


def _ctx(mllmu, items):
    src = SimpleNamespace(people={"p": SimpleNamespace(questions=tuple(items))}, mllmu=mllmu)
    return SimpleNamespace(evaluator=SimpleNamespace(src=src))


def test_changed_items_carry_the_rewording_and_keep_options_answer_and_image(tmp_path):
    items = [_q("fictitious:1/multimodal/0"), _q("fictitious:1/text/0"), _q("fictitious:1/text/1")]
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "fictitious:1/multimodal/0", "question": "What line of work is the one shown in?"}\n\n'
                    '{"question": "Which job does Bo Ka hold?", "id": "fictitious:1/text/0"}\n')
    attack = make_attack({"name": "paraphrase", "file": str(path)})
    assert attack.scored == ("forget",) and attack.settings() == [""]
    changed = attack.change(items, "", _ctx(None, items))
    assert [c.qid for c in changed] == ["fictitious:1/multimodal/0/paraphrase", "fictitious:1/text/0/paraphrase"]
    assert [c.question for c in changed] == ["What line of work is the one shown in?", "Which job does Bo Ka hold?"]
    for c, q in zip(changed, items):
        assert (c.options, c.answer, c.image, c.subject, c.modality, c.category) == \
            (q.options, q.answer, q.image, q.subject, q.modality, q.category)
    assert attack.inputs(_ctx(None, items).evaluator.src) == [path]
    # unset file: the data's own paraphrases.jsonl, else the attack does not apply and says why
    plain = make_attack({"name": "paraphrase"})
    assert "the attack's file is not set and the data has no paraphrases.jsonl" in plain.does_not_apply(
        _ctx(tmp_path, items))
    assert plain.inputs(_ctx(tmp_path, items).evaluator.src) == []
    (tmp_path / rewordings.FILE_NAME).write_text(path.read_text())
    assert [c.qid for c in plain.change(items, "", _ctx(tmp_path, items))] == [c.qid for c in changed]


BAD_FILES = [
    ("missing", None, "rewordings file not found"),
    ("not-json", '{"id": "fictitious:000/text/0", "question": "Who?"}\n{"id": oops}\n', ":2: not JSON"),
    ("not-an-object", '["fictitious:000/text/0", "Who?"]\n', ":1: must be an object"),
    ("missing-key", '{"id": "fictitious:000/text/0"}\n', ":1: missing key(s) question"),
    ("extra-key", '{"id": "fictitious:000/text/0", "question": "Who?", "answer": "A"}\n',
     ":1: unknown key(s) answer"),
    ("empty-text", '{"id": "fictitious:000/text/0", "question": "  "}\n', ":1: question 'fictitious:000/text/0' has an "
     "empty rewording"),
    ("duplicate", '{"id": "fictitious:000/text/0", "question": "Who?"}\n' * 2,
     ":2: id 'fictitious:000/text/0' is given twice (first on line 1)"),
    ("unknown-id", '{"id": "000/text/0", "question": "Who?"}\n', ":1: id '000/text/0' matches no multiple-choice "
     "question of the data"),
    ("empty-file", "\n", "holds no rewordings"),
]


@pytest.mark.parametrize("name, text, says", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_rewordings_file_is_one_line_and_nothing_is_written(tiny_models, cache, tmp_path, name, text, says):
    path = tmp_path / "rewordings.jsonl"
    if text is not None:
        path.write_text(text)
    world, config = tiny_models["world"], tmp_path / "bad.yaml"
    config.write_text(CONFIG.replace("{name: paraphrase}", f"{{name: paraphrase, file: {path}}}").replace(
        "{source: world, preset: tiny}", f"{{source: path, base: {tiny_models['base']}, "
        f"finetuned: {tiny_models['finetuned']}}}").replace(
        "data: {", f"data: {{mllmu: {world / 'MLLMU-Bench'}, mmbench: {world / 'MMBench' / 'mmbench_dev_en.tsv'}, "))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = main(["run", str(config), "--out", str(tmp_path / "out"), "--cache", str(cache)])
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    assert status == 2 and len(lines) == 1, err.getvalue()
    assert lines[0].startswith(f"pulse: error: {path}") and says in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


CONFIG = """name: para
model: {source: world, preset: tiny}
splits: {finetune_people: 10, forget: 2}
data: {mmbench_subset: 8}
grid:
  - {scenarios: [finetuned], methods: [ga], updates: [llm]}
unlearn: {lr: 3.0e-3, batch_size: 16, lora: {rank: 8, alpha: 16}}
scoring: likelihood
attacks:
  - {name: paraphrase}
"""


def test_a_tiny_run_scores_every_reworded_forget_question(tiny_models, cache, tmp_path):
    config = tmp_path / "para.yaml"
    config.write_text(CONFIG)
    out = tmp_path / "out"
    assert pulse("run", config, "--out", out, "--cache", cache) == 0
    forget = {f"fictitious:{pid}" for request in json.loads((out / "sets.json").read_text())["finetuned"][
        "forget_requests"] for pid in request}
    bench = tiny_models["world"] / "MLLMU-Bench"
    reworded = _read_jsonl(bench / rewordings.FILE_NAME)
    att = [r for r in rows(out / "attacks.csv") if r["attack"] == "paraphrase"]
    assert {r["operation"] for r in att} == {"0", "1"} and {r["split"] for r in att} == {"forget"}
    for r in att:
        want = [q for q in reworded if q.split("/")[0] in forget and (r["modality"] == "all"
                                                                    or f"/{r['modality']}/" in q)]
        assert int(r["n"]) == len(want) > 0, r
    assert {r["modality"] for r in att} == {"multimodal", "text", "all"}
    summary = rows(out / "summary.csv")
    for r in att:  # unlearned: the plain forget accuracy of the same model and modality
        (plain,) = [s for s in summary if (s["scenario"], s["step"], s["split"], s["request"], s["modality"])
                    == ("finetuned", r["operation"], "forget", "all", r["modality"])]
        assert float(r["unlearned"]) == pytest.approx(float(plain["accuracy"]), abs=1e-6)
    # the rewordings file joins the data's fingerprint, so a changed file is never read back on resume
    data = sorted(bench.glob("*/*.parquet")) + [tiny_models["world"] / "MMBench" / "mmbench_dev_en.tsv"]
    env = json.loads((out / "environment.json").read_text())
    assert env["fingerprints"]["data"] == file_fingerprint(data + [bench / rewordings.FILE_NAME])
    assert env["fingerprints"]["data"] != file_fingerprint(data)
