"""MLLMU-Bench numbers Full_Set (fictitious people) and Retain_Set (celebrities) independently, so
one ID may name two people. A run keeps them apart by population wherever IDs meet, and every
file a user reads names a person by original ID and population. Here both subsets number their
people from 000, and a tiny llava-hf LLaVA runs the finetuned and pretrained scenarios on them."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest
from processes import run_killed_once
from real_data import build_tiny_llava, write_mllmu, write_mmbench

from pulse_unlearn.cli import main
from pulse_unlearn.data.mllmu import load_people
from pulse_unlearn.evaluation.unseen_images import with_test_images
from pulse_unlearn.draws import demo_person
from pulse_unlearn.records import POPULATIONS, split_key, subject_key
from pulse_unlearn.protocol import sets as splits

N_FULL, N_CELEB = 10, 4
CONFIG = ("name: shared-ids\n"
          f"splits: {{finetune_people: {N_FULL}, forget: 4, probe_threshold: 0.0, pretrained_forget: 2,"
          " pretrained_retain: 2}\n"
          "finetune: {lr: 1.0e-3, epochs: 1, batch_size: 4}\n"
          "unlearn: {lr: 1.0e-3, epochs: 1, batch_size: 4, lora: {rank: 4, alpha: 8}}\n"
          "scoring: logits\n")
OUTPUTS = ("summary.csv", "predictions.csv", "probe.csv", "sets.json")


# --- keys ----------------------------------------------------------------------------------------

def test_subject_keys_round_trip_and_sort_as_the_ids():
    ids = ["0", "2", "10", "c1", "a:b", "007", ""]
    for population in POPULATIONS:
        keys = [subject_key(population, pid) for pid in ids]
        assert [split_key(k) for k in keys] == [(population, pid) for pid in ids]
        assert sorted(keys) == [subject_key(population, pid) for pid in sorted(ids)]
        assert split_key(f"{keys[1]}/multimodal/0/test") == (population, "2/multimodal/0/test")  # a qid
    assert subject_key("fictitious", "0") != subject_key("celebrity", "0")
    for not_a_person in ("1000", "mmbench/1000", "alien:0"):
        assert split_key(not_a_person) == ("", not_a_person)
    with pytest.raises(ValueError, match="unknown population 'alien'"):
        subject_key("alien", "0")


def test_seeded_draws_pick_the_same_people_by_key_as_by_id():
    """Every draw of protocol/sets.py and draws.py over keys of one population gives the people it gives over
    their bare IDs (so the sets of a run on data without shared IDs are what they were)."""
    ids = [str(i) for i in range(30)] + [f"c{i:03d}" for i in range(30)]

    def keyed(population, pids):
        return [subject_key(population, pid) for pid in pids]

    def bare(keys):
        return tuple(split_key(k)[1] for k in keys)

    for seed in (0, 1, 7):
        for population in POPULATIONS:
            people = splits.finetune_people(ids, 20, seed)
            assert bare(splits.finetune_people(keyed(population, ids), 20, seed)) == tuple(people)
            plain = splits.sequential_sets(people, 10, 5, seed)
            by_key = splits.sequential_sets(keyed(population, people), 10, 5, seed)
            assert [bare(r) for r in by_key.requests] == list(plain.requests)
            assert bare(by_key.retain) == plain.retain
            plain, note = splits.pretrained_sets(ids[:9], 5, 5, seed)
            by_key, same_note = splits.pretrained_sets(keyed(population, ids[:9]), 5, 5, seed)
            assert (bare(by_key.forget), bare(by_key.retain), same_note) == (plain.forget, plain.retain, note)
            assert split_key(demo_person(keyed(population, ids), keyed(population, ids[:3]), seed))[1] == \
                demo_person(ids, ids[:3], seed)


# --- data -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """(MLLMU-Bench folder whose Full_Set and Retain_Set both number from 000, MMBench TSV)."""
    root = tmp_path_factory.mktemp("shared-ids")
    bench = write_mllmu(root / "MLLMU-Bench", n_full=N_FULL, n_celeb=N_CELEB, shared_ids=True)
    return bench, write_mmbench(root / "mmbench_dev_en.tsv")


def test_the_same_id_in_both_subsets_is_two_people(shared):
    from pulse_unlearn.doctor import check_data
    from pulse_unlearn.data.sources import load_sources

    bench, mmbench = shared
    src = load_sources(bench, mmbench, None, 0)  # once refused: "Full_Set and Retain_Set share IDs"
    fictitious, celebrity = src.fictitious["fictitious:000"], src.celebrities["celebrity:000"]
    assert fictitious.id == celebrity.id == "000" and fictitious.image != celebrity.image
    assert (fictitious.population, celebrity.population) == ("fictitious", "celebrity")
    assert len(src.people) == N_FULL + N_CELEB
    for person in (fictitious, celebrity):
        assert {q.subject for q in src.questions_of([person.key])} == {person.key}
        assert all(q.qid.startswith(f"{person.key}/") for q in person.questions + person.open_questions)
    assert [q.answer for q in celebrity.questions] != [q.answer for q in fictitious.questions]
    # ft_Data and Test_Set name Full_Set's people: the celebrity keeps its own unlearning data and
    # gets no Test_Set image of the fictitious person of its ID.
    assert {ex.source for ex in src.facts_of([fictitious.key])} == {"ft"}
    assert src.facts_of([celebrity.key]) == list(celebrity.facts) and celebrity.facts
    # what the forget_test split asks
    assert with_test_images(src.questions_of([fictitious.key]), src)
    assert with_test_images(src.questions_of([celebrity.key]), src) == []
    said: list[str] = []
    check_data(bench, said.append)
    assert any(f"Full_Set: ok: {N_FULL} people (fictitious)" in line for line in said), said
    assert any(f"Retain_Set: ok: {N_CELEB} people (celebrity)" in line for line in said), said


# --- runs -----------------------------------------------------------------------------------------

def _args(tmp: Path, checkpoint: Path, shared, out: Path) -> list[str]:
    bench, mmbench = shared
    config = tmp / "shared.yaml"
    config.write_text(CONFIG)
    return ["run", str(config), f"model={checkpoint}", f"data.mllmu={bench}", f"data.mmbench={mmbench}",
            "scenario=[finetuned,pretrained]", "method=[ga,npo]", "update=llm", "--out", str(out),
            "--cache", str(tmp / "cache")]


def _pulse(args: list[str]) -> str:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        status = main(args)
    assert status == 0, err.getvalue()
    return err.getvalue()


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, shared):
    """(checkpoint, the folder of an uninterrupted run, the folder holding its config and cache)."""
    tmp = tmp_path_factory.mktemp("shared-run")
    checkpoint = build_tiny_llava(tmp / "tiny-llava")
    out = tmp / "whole"
    _pulse(_args(tmp, checkpoint, shared, out))
    return checkpoint, out, tmp


def test_people_of_one_id_stay_apart_in_every_file(run_folder, shared):
    _, out, _ = run_folder
    bench, _ = shared
    answers = {}
    for subset in ("Full_Set", "Retain_Set"):
        for person in load_people(bench, subset):
            for q in person.questions:
                answers[(person.population, split_key(q.qid)[1])] = q.answer
                if q.modality == "multimodal":
                    answers[(person.population, f"{split_key(q.qid)[1]}/test")] = q.answer
    assert answers[("fictitious", "000/multimodal/0")] != answers[("celebrity", "000/multimodal/0")]

    with open(out / "predictions.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header[header.index("subject") + 1] == "population"
    rows = _csv(out / "predictions.csv")
    people = [r for r in rows if r["split"] != "general"]
    assert {(r["scenario"], r["population"]) for r in people} == {("finetuned", "fictitious"),
                                                                 ("pretrained", "celebrity")}
    assert {r["population"] for r in rows if r["split"] == "general"} == {""}
    assert {r["subject"] for r in people if r["population"] == "celebrity"} == {f"{i:03d}" for i in range(N_CELEB)}
    assert {r["subject"] for r in people if r["population"] == "fictitious"} == {f"{i:03d}" for i in range(N_FULL)}
    for r in people:  # qid as the data names it; each row with its own person's answer
        assert r["qid"].startswith(f"{r['subject']}/") and ":" not in r["qid"]
        assert r["answer"] == answers[(r["population"], r["qid"])], r
    first = [(r["population"], r["answer"]) for r in people if r["qid"] == "000/multimodal/0"
             and r["step"] == "0" and r["method"] == "ga"]
    assert sorted(first) == sorted({("fictitious", answers[("fictitious", "000/multimodal/0")]),
                                    ("celebrity", answers[("celebrity", "000/multimodal/0")])})
    keys = [(r["scenario"], r["method"], r["step"], r["split"], r["population"], r["qid"]) for r in rows]
    assert len(keys) == len(set(keys))
    # Test_Set names fictitious people: no celebrity is asked with a fictitious person's Test_Set image.
    assert {r["population"] for r in rows if r["split"] == "forget_test"} == {"fictitious"}

    probe = _csv(out / "probe.csv")
    assert list(probe[0])[:2] == ["id", "population"]
    assert [(r["id"], r["population"]) for r in probe] == [(f"{i:03d}", "celebrity") for i in range(N_CELEB)]
    sets = json.loads((out / "sets.json").read_text())
    assert (sets["finetuned"]["population"], sets["pretrained"]["population"]) == ("fictitious", "celebrity")
    for scenario, n in (("finetuned", N_FULL), ("pretrained", N_CELEB)):
        named = [pid for request in sets[scenario]["forget_requests"] for pid in request] + sets[scenario]["retain"]
        assert sorted(named) == [f"{i:03d}" for i in range(n)]
    assert {r["id"] for r in probe if r["selected"] == "forget"} == set(sets["pretrained"]["forget_requests"][0])


def test_killed_run_resumes_from_keyed_records(run_folder, shared):
    """Killed (SIGKILL) once the pretrained scenario's step 0 (probe, sets, predictions, all by key)
    is recorded; the same command then reads back what was finished and ends with the files of
    the uninterrupted run."""
    checkpoint, whole, tmp = run_folder
    out = tmp / "killed"
    args = _args(tmp, checkpoint, shared, out)
    start = out / "resume" / "pretrained" / "start.json"
    run_killed_once(start, args)
    assert start.exists() and not (out / "resume" / "pretrained" / "npo--llm" / "op-1.json").exists()
    record = json.loads(start.read_text())["data"]
    assert {pid for request in record["requests"] for pid in request} | set(record["retain"]) == {
        subject_key("celebrity", f"{i:03d}") for i in range(N_CELEB)}

    log = _pulse(args)
    assert "[finetuned] step 0: read back" in log and "[pretrained] step 0: read back" in log
    assert "operation(s) read back from the interrupted run" in log
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (whole / name).read_bytes(), name
