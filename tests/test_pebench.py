"""The PEBench-style folder: the embedded world writes it (people composed into event scenes,
questions and facts about both concepts of each image) and ``data/pebench.py`` reads it back,
refusing a broken folder with one line that names the file and line."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pulse_unlearn.data.pebench import load_pebench
from pulse_unlearn.errors import PulseError
from pulse_unlearn.world import events
from pulse_unlearn.world.build import PEBENCH, build_world, world_config


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    root = tmp_path_factory.mktemp("pebench")
    with_events = build_world(world_config("tiny", n_events=4), root / "events")
    without = build_world(world_config("tiny"), root / "plain")
    return with_events, without


def test_the_world_writes_every_person_into_its_events_and_nothing_else_changes(worlds):
    with_events, without = worlds
    data = load_pebench(with_events / PEBENCH)
    assert len(data.keys("person")) == 10 and len(data.keys("event")) == 4
    assert len(data.shows) == 10 * 2  # events_per_person images per person
    per_person = defaultdict(set)
    for person, event in data.shows.values():
        per_person[person].add(event)
    assert all(len(v) == 2 for v in per_person.values())
    assert not (without / PEBENCH).exists()
    for path in sorted(without.rglob("*")):  # the other files: the same bytes with events or without
        if path.is_file() and path.name != "world.json":  # which records the event fields
            assert (with_events / path.relative_to(without)).read_bytes() == path.read_bytes(), path
    assert "n_events" not in json.loads((without / "world.json").read_text())["config"]
    assert json.loads((with_events / "world.json").read_text())["config"]["n_events"] == 4


def test_each_image_shows_its_event_scene_around_its_person(worlds):
    data = load_pebench(worlds[0] / PEBENCH)
    left, top, side = events.person_box(32)
    outside = np.ones((32, 32), bool)
    outside[top:top + side, left:left + side] = False
    for file, (_, event) in data.shows.items():
        kind = events.KINDS[int(event.split(":E")[1])]
        pixels = np.asarray(Image.open(worlds[0] / PEBENCH / file).convert("RGB"))
        assert np.array_equal(pixels[outside], np.asarray(events.render_scene(kind))[outside]), file


def test_questions_are_about_the_concepts_of_their_image_and_agree_across_images_and_modalities(worlds):
    data = load_pebench(worlds[0] / PEBENCH)
    assert len(data.questions) == 20 * (5 + 3) + 10 * 5 + 4 * 3
    truth: dict[tuple[str, str], str] = {}
    for q in data.questions:
        assert q.qid.startswith(q.subject + "/")
        if q.modality == "multimodal":
            assert q.subject in data.shows[data.question_image[q.qid]]
        value = q.options[q.answer]
        assert truth.setdefault((q.subject, q.category), value) == value, q.qid
    by_subject = defaultdict(set)
    for q in data.questions:
        by_subject[q.subject].add(q.modality)
    assert all(v == {"multimodal", "text"} for v in by_subject.values())
    # the facts teach the values the questions ask for, and name each concept
    for key in data.names:
        answers = {f.example.answer for f in data.facts if f.about == key}
        assert {v for (s, _), v in truth.items() if s == key} <= answers
        assert data.names[key] in answers


def test_a_model_learning_some_people_gets_their_facts_their_images_and_every_event_by_name(worlds):
    data = load_pebench(worlds[0] / PEBENCH)
    people = {"person:001", "person:004"}
    chosen = data.facts_with(people)
    expected = [f for f in data.facts if f.about in people or (f.image and data.shows[f.image][0] in people)
                or (not f.image and f.about.startswith("event:"))]
    assert chosen == [f.example for f in expected]
    images = {f.image for f in expected if f.image}
    assert len(images) == 4 and all(data.shows[i][0] in people for i in images)
    assert {f.about for f in expected} >= {"event:E00", "event:E01", "event:E02", "event:E03"} | people
    assert len(data.facts_with({f"person:{i:03d}" for i in range(10)})) == len(data.facts)


def _copy(worlds, tmp_path) -> Path:
    folder = tmp_path / PEBENCH
    shutil.copytree(worlds[0] / PEBENCH, folder)
    return folder


def _edit(folder: Path, file: str, line: int, change) -> None:
    path = folder / file
    rows = path.read_text().splitlines()
    rows[line - 1] = change(rows[line - 1])
    path.write_text("\n".join(rows) + "\n")


def _json(change):
    def edit(text):
        row = json.loads(text)
        change(row)
        return json.dumps(row)
    return edit


@pytest.mark.parametrize(("file", "line", "change", "message"), [
    ("questions.jsonl", 3, _json(lambda r: r.update(answer="E")), r"questions.jsonl:3: answer 'E' is not among"),
    ("questions.jsonl", 2, _json(lambda r: r.update(person="999")), r"questions.jsonl:2: person '999' is not in"),
    ("questions.jsonl", 2, _json(lambda r: r.update(event="")), "questions.jsonl:2: an image row names its person"),
    ("questions.jsonl", 2, _json(lambda r: r.update(image="images/nope.png")), "images/nope.png not found"),
    ("questions.jsonl", 2, _json(lambda r: r.update(concept="place")), "concept 'place' is not one of"),
    ("questions.jsonl", 2, _json(lambda r: r.pop("question")), "questions.jsonl:2: missing field"),
    ("questions.jsonl", 2, lambda t: t[:-1], "questions.jsonl:2: not JSON"),
    ("facts.jsonl", 4, _json(lambda r: r.update(event="E00" if r["event"] != "E00" else "E01")),
     "facts.jsonl:4: image images/.* shows person:000 and event:E0. elsewhere"),
    ("concepts.csv", 3, lambda t: t.replace("person", "place", 1), r"concepts.csv:3: concept 'place'"),
])
def test_a_broken_folder_is_refused_naming_its_file_and_line(worlds, tmp_path, file, line, change, message):
    folder = _copy(worlds, tmp_path)
    _edit(folder, file, line, change)
    with pytest.raises(PulseError, match=message):
        load_pebench(folder)


def test_a_duplicate_qid_and_an_unreadable_image_are_refused(worlds, tmp_path):
    folder = _copy(worlds, tmp_path)
    first = (folder / "questions.jsonl").read_text().splitlines()[0]
    _edit(folder, "questions.jsonl", 2, lambda t: first)
    with pytest.raises(PulseError, match="questions.jsonl:2: qid '000_E.*' appears twice"):
        load_pebench(folder)
    folder = _copy(worlds, tmp_path / "b")
    image = json.loads(first)["image"]
    (folder / image).write_bytes(b"not an image")
    with pytest.raises(PulseError, match=f"questions.jsonl:1: image {image} is not a readable image"):
        load_pebench(folder)
    with pytest.raises(PulseError, match="PEBench-style folder not found"):
        load_pebench(tmp_path / "missing")


def test_event_sizes_out_of_range_are_refused():
    from pydantic import ValidationError

    for bad in ({"n_events": 13}, {"n_events": -1}, {"n_events": 4, "events_per_person": 0},
                {"n_events": 4, "events_per_person": 13}):
        with pytest.raises(ValidationError):
            world_config("tiny", **bad)
    with pytest.raises(ValidationError, match="events_per_person=5 exceeds n_events=4"):
        world_config("tiny", n_events=4, events_per_person=5)
    assert world_config("tiny", events_per_person=5).n_events == 0  # no events: the field is not used


def test_fine_tuning_learns_the_events_only_in_a_world_that_has_them(worlds):
    from pulse_unlearn.data.pebench import concept_key
    from pulse_unlearn.models.world_models import _world_texts, finetune_examples, models_config

    with_events, without = worlds
    cfg = models_config("tiny")
    chosen, plain = finetune_examples(without, cfg)
    chosen_too, examples = finetune_examples(with_events, cfg)
    assert chosen == chosen_too and examples[:len(plain)] == plain
    concepts = load_pebench(with_events / PEBENCH)
    assert examples[len(plain):] == concepts.facts_with({concept_key("person", pid) for pid in chosen})
    assert len(examples) > len(plain)
    event_name = concepts.names["event:E00"]
    assert any(event_name in t for t in _world_texts(with_events, ""))
    assert not any(event_name in t for t in _world_texts(without, ""))


def test_a_world_with_events_fine_tunes_for_proportionally_more_steps(worlds):
    from pydantic import ValidationError

    from pulse_unlearn.models.world_models import models_config

    with_events, without = worlds
    cfg = models_config("default")
    assert cfg.for_world(without) is cfg
    scaled = cfg.for_world(with_events)
    assert scaled.finetune.steps == round(1920 * 1.25) == 2400 and scaled.events_step_scale == 1.0
    assert scaled.for_world(with_events) == scaled  # folded in once, never twice
    assert scaled.key("w", "base") == cfg.key("w", "base")  # the base model is not retrained
    assert scaled.key("w", "finetuned") != cfg.key("w", "finetuned")
    # the factor itself is not hashed: a world without events keeps its keys whatever it is
    assert models_config("default", events_step_scale=4.0).key("w", "finetuned") == cfg.key("w", "finetuned")
    assert "events_step_scale" not in cfg.settings()
    for bad in (0.5, 11.0):
        with pytest.raises(ValidationError):
            models_config("default", events_step_scale=bad)


def test_doctor_reads_a_pebench_folder_and_names_its_problem(worlds, tmp_path, capsys):
    from pulse_unlearn.cli import main

    assert main(["doctor", "--data", str(worlds[0] / PEBENCH)]) == 0
    assert "ok: 10 people, 4 events, 20 images, 222 questions" in capsys.readouterr().out
    folder = _copy(worlds, tmp_path)
    _edit(folder, "questions.jsonl", 5, _json(lambda r: r.update(answer="Z")))
    assert main(["doctor", "--data", str(folder)]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "questions.jsonl:5: answer 'Z' is not among the options" in err[0]
