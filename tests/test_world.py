"""The synthetic world: deterministic, in MLLMU-Bench/MMBench layouts, and honest (the
fictitious people never leak into pre-training; evaluation wording never is training text)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pulse_unlearn.data.mllmu import load_facts, load_people
from pulse_unlearn.data.mmbench import load_mmbench
from pulse_unlearn.models.world_models import read_corpus
from pulse_unlearn.world import people
from pulse_unlearn.world.build import build_world, world_config


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path):
    cfg = world_config("tiny")
    a = _files(build_world(cfg, tmp_path / "a"))
    b = _files(build_world(cfg, tmp_path / "b"))
    assert a.keys() == b.keys() and len(a) >= 7
    assert a == b
    c = _files(build_world(world_config("tiny", seed=1), tmp_path / "c"))
    full = "MLLMU-Bench/Full_Set/train-00000-of-00001.parquet"
    assert c[full] != a[full]


def test_parquet_follows_mllmu_schema(tiny_world):
    table = pq.read_table(tiny_world / "MLLMU-Bench" / "Full_Set" / "train-00000-of-00001.parquet")
    for col in ("image", "ID", "Directory", "biography", "question", "answer", "Classification_Task",
                "Mask_Task", "Generation_Task"):
        assert col in table.column_names
    row = table.slice(0, 1).to_pylist()[0]
    assert set(row["image"]) == {"bytes", "path"} and row["image"]["bytes"][:4] == b"\x89PNG"
    task = row["Classification_Task"]
    n = world_config("tiny").attributes
    assert n == people.FIRST_ATTRIBUTES
    assert len(task["Image_Textual_Questions"]) == n and len(task["Pure_Text_Questions"]) == n
    item = task["Pure_Text_Questions"][0]
    assert set(item["Options"]) == {"A", "B", "C", "D"} and item["Correct_Answer"] in "ABCD"
    assert {m["Type"] for m in row["Mask_Task"]} == {"Image_Textual", "Pure_Text"}
    assert "__" in row["Mask_Task"][0]["Question"]
    ft = pq.read_table(tiny_world / "MLLMU-Bench" / "ft_Data" / "train-00000-of-00001.parquet")
    assert "metadata" in ft.column_names and "metadata" not in table.column_names
    pairs = json.loads(ft.column("metadata")[0].as_py())
    assert {"Question", "Answer"} <= set(pairs[0])
    test = pq.read_table(tiny_world / "MLLMU-Bench" / "Test_Set" / "train-00000-of-00001.parquet")
    assert "images" in test.column_names and len(test.column("images")[0].as_py()) >= 1


def test_populations_and_questions(tiny_world):
    cfg = world_config("tiny")
    fictitious = load_people(tiny_world / "MLLMU-Bench", "Full_Set")
    celebs = load_people(tiny_world / "MLLMU-Bench", "Retain_Set")
    assert len(fictitious) == cfg.n_fictitious and len(celebs) == cfg.n_celebrities
    for p in fictitious + celebs:
        n = cfg.attributes
        assert len(p.questions_of("multimodal")) == n and len(p.questions_of("text")) == n
        assert all(len(q.options) == 4 and len(set(q.options.values())) == 4 for q in p.questions)
    facts = load_facts(tiny_world / "MLLMU-Bench")
    assert set(facts) == {p.id for p in fictitious}
    assert any(ex.image is None for ex in facts[fictitious[0].id])
    assert any(ex.image is not None for ex in facts[fictitious[0].id])
    # Answers are spread over the letters, not always the same one.
    letters = {q.answer for p in fictitious for q in p.questions}
    assert len(letters) == 4


def test_fictitious_people_never_in_pretraining(tiny_world):
    meta = json.loads((tiny_world / "world.json").read_text())
    corpus_text = " ".join(ex.prompt + " " + ex.answer for ex in read_corpus(tiny_world))
    for info in meta["fictitious"].values():
        assert info["name"] not in corpus_text
    seen = [info["name"] for info in meta["celebrities"].values() if info["name"] in corpus_text]
    assert len(seen) == len(meta["celebrities"])
    mentions = [info["mentions"] for info in meta["celebrities"].values()]
    assert max(mentions) > 2 * min(mentions)  # uneven fame: something for the probe to select


def test_evaluation_questions_are_not_training_prompts(tiny_world):
    training = {ex.prompt for ex in read_corpus(tiny_world)}
    training |= {ex.prompt for exs in load_facts(tiny_world / "MLLMU-Bench").values() for ex in exs}
    for subset in ("Full_Set", "Retain_Set"):
        for p in load_people(tiny_world / "MLLMU-Bench", subset):
            for q in p.questions:
                assert not any(q.question in t for t in training), q.question


def test_mmbench_tsv_reads_back(tiny_world):
    questions = load_mmbench(tiny_world / "MMBench" / "mmbench_dev_en.tsv")
    assert len(questions) == world_config("tiny").n_benchmark
    assert {q.modality for q in questions} == {"multimodal", "text"}
    assert all(q.answer in q.options and 2 <= len(q.options) <= 4 for q in questions)


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown world preset"):
        world_config("huge")


@pytest.mark.parametrize("share", [1.0, 1 / 3, 0.0])
def test_corpus_multiple_choice_copies_follow_the_config(share):
    """Every skill item once free-form; that share of them also as a letter-answer copy; as many
    drills per celebrity mention as configured."""
    import numpy as np

    from pulse_unlearn.world import people, scenes
    from pulse_unlearn.world.build import pretraining_corpus

    rng = np.random.default_rng(0)
    celebs, _ = people.draw_profiles(3, 0, rng, 4, 2)
    images = {p.id: b"png" for p in celebs}
    items = scenes.make_items(30, np.random.default_rng(1))
    corpus = pretraining_corpus(celebs, images, items, rng, skill_mc_share=share, drills=1)
    sources = [ex.source for ex, _ in corpus]
    assert sources.count("skill_free") == 30
    assert sources.count("skill_mc") == round(30 * share)
    drills = sum(s.startswith("drill_") for s in sources)
    assert drills == sum(p.mentions for p in celebs)


def test_models_are_keyed_by_what_they_learn_not_by_the_worlds_side_files(monkeypatch):
    """A new world version (e.g. an attack's side file) leaves the models' key alone; a new
    training version or another config changes it."""
    from pulse_unlearn.world import build

    cfg = build.WorldConfig()
    world, training = cfg.fingerprint(), cfg.training_fingerprint()
    monkeypatch.setattr(build, "WORLD_VERSION", build.WORLD_VERSION + 1)
    assert cfg.fingerprint() != world and cfg.training_fingerprint() == training
    monkeypatch.setattr(build, "TRAINING_VERSION", build.TRAINING_VERSION + 1)
    assert cfg.training_fingerprint() != training
    assert build.WorldConfig(seed=1).training_fingerprint() != cfg.training_fingerprint()


def test_a_rich_world_has_twelve_attributes_six_wordings_and_world_skills(rich_world, tiny_world):
    """Every person answers one question per attribute in each modality; the
    biography names every value; facts use wordings beyond the first three; the benchmark asks the
    world categories too; the fields are recorded (the tiny world's record leaves them out)."""
    people_ = load_people(rich_world / "MLLMU-Bench", "Full_Set")
    for p in people_:
        assert len(p.questions_of("multimodal")) == len(p.questions_of("text")) == len(people.ATTRIBUTES) >= 12
    row = pq.read_table(rich_world / "MLLMU-Bench" / "Full_Set" / "train-00000-of-00001.parquet").to_pylist()[0]
    for q in row["Classification_Task"]["Pure_Text_Questions"]:
        assert q["Options"][q["Correct_Answer"]] in row["biography"]
    prompts = {ex.prompt for exs in load_facts(rich_world / "MLLMU-Bench").values() for ex in exs}
    later = {t for ts in people.TRAIN_TEMPLATES.values() for t in ts[3:]}
    assert any(people.sentence(t.format(who=w)) in prompts for t in later for w in people.MM_WHO_TRAIN)
    bench = {q.category for q in load_mmbench(rich_world / "MMBench" / "mmbench_dev_en.tsv")}
    assert {"world_city", "world_company", "world_year"} <= bench
    assert not {"world_city", "world_company", "world_year"} & {
        q.category for q in load_mmbench(tiny_world / "MMBench" / "mmbench_dev_en.tsv")}
    rich, tiny = (json.loads((w / "world.json").read_text())["config"] for w in (rich_world, tiny_world))
    assert (rich["attributes"], rich["wordings"], rich["world_skills"]) == (12, 6, True)
    assert not {"attributes", "wordings", "world_skills"} & set(tiny)
