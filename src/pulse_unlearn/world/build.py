"""Write the synthetic world to disk in the layouts of the real benchmarks.

People go out as MLLMU-Bench parquet (``Full_Set`` = fictitious people, ``Retain_Set`` =
celebrities, ``Test_Set`` = transformed images, ``ft_Data`` = fine-tuning QA in
``metadata``), the general benchmark as an MMBench dev TSV, so the one loader in
``pulse_unlearn.data`` reads the world and the real data alike. World-only files sit
beside them: the pre-training corpus and ``world.json`` (config, celebrity mentions); the
MLLMU-Bench folder also holds ``paraphrases.jsonl``, new wordings of its multiple-choice questions
(``rewordings.py``, for the ``paraphrase`` attack), and ``neighbours.jsonl``, questions that reach
a person through a colleague (``neighbours.py``, for the ``neighbours`` attack).

Everything comes from one seed: the same config writes the same bytes.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..core.names import unknown_name
from ..records import Example, mc_prompt
from . import events, neighbours, people, portraits, rewordings, scenes

WORLD_VERSION = 8  # bump when the generator's output changes, so caches rebuild
# Bump when what the world's models learn from changes (the people, the corpus, ft_Data, the
# wordings the tokenizer sees): they are cached under ``training_fingerprint``, so a file the
# models never read (an attack's side file) changes the world without retraining them.
TRAINING_VERSION = 5


class WorldConfig(BaseModel):
    """Sizes and seed of the synthetic world; the presets below are starting points."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    n_celebrities: int = 153
    n_fictitious: int = 100
    max_mentions: int = 24  # how often the most famous celebrity appears in pre-training
    min_mentions: int = 2
    n_benchmark: int = 300  # general-benchmark evaluation questions
    n_benchmark_train: int = 9000  # general-skill items in the pre-training corpus
    # Multiple-choice (letter) copies in the corpus: of the skill items, and drills per celebrity
    # mention. They teach the letter format; likelihood scoring reads the answers' text, which
    # the free-form items teach, and the long MC prompts cost a third of pre-training's tokens.
    skill_mc_share: float = 1 / 3
    drills_per_mention: int = 1
    n_test_variants: int = 3  # transformed images per fictitious person (Test_Set)
    image_size: int = 32
    # Events (``events.py``): with n_events > 0 the world also writes a PEBench-style folder
    # (``data/pebench.py``) of the fictitious people composed into event scenes.
    n_events: int = Field(0, ge=0, le=len(events.KINDS))
    events_per_person: int = Field(2, ge=1, le=len(events.KINDS))
    # What a person is and how a fact is worded: the first ``attributes`` of people.ATTRIBUTES, each
    # fact trained in the first ``wordings`` of its wordings (people.TRAIN_TEMPLATES); with
    # ``world_skills`` the general benchmark also asks the words of people's facts (scenes.py).
    attributes: int = Field(people.FIRST_ATTRIBUTES, ge=people.FIRST_ATTRIBUTES, le=len(people.ATTRIBUTES))
    wordings: int = Field(3, ge=3, le=min(len(t) for t in people.TRAIN_TEMPLATES.values()))
    world_skills: bool = False

    def fingerprint(self) -> str:
        return self._hash(WORLD_VERSION)

    def training_fingerprint(self) -> str:
        """What the world's models are keyed by: the config and ``TRAINING_VERSION``."""
        return self._hash(TRAINING_VERSION)

    @model_validator(mode="after")
    def _events_fit(self):
        if self.n_events and self.events_per_person > self.n_events:
            raise ValueError(f"events_per_person={self.events_per_person} exceeds n_events={self.n_events}")
        return self

    def recorded(self) -> dict:
        """The config as fingerprinted and written to world.json: a world without events leaves
        the event fields out, and one of five attributes, three wordings and no world skills those
        fields, so neither its fingerprint nor its bytes depend on them."""
        fields = self.model_dump()
        if not self.n_events:
            fields = {k: v for k, v in fields.items() if k not in EVENT_FIELDS}
        return {k: v for k, v in fields.items() if k not in PEOPLE_DEFAULTS or PEOPLE_DEFAULTS[k] != v}

    def skill_categories(self) -> tuple[str, ...]:
        return scenes.CATEGORIES + (scenes.WORLD_CATEGORIES if self.world_skills else ())

    def _hash(self, version: int) -> str:
        blob = json.dumps({"v": version, **self.recorded()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


EVENT_FIELDS = ("n_events", "events_per_person")
PEOPLE_DEFAULTS = {"attributes": people.FIRST_ATTRIBUTES, "wordings": 3, "world_skills": False}

WORLD_PRESETS: dict[str, dict] = {
    "tiny": dict(n_celebrities=12, n_fictitious=10, max_mentions=8, min_mentions=2,
                 n_benchmark=40, n_benchmark_train=300, n_test_variants=1),
    "default": {},
}

SUBSET_FILE = "train-00000-of-00001.parquet"


def world_config(preset: str = "default", **overrides) -> WorldConfig:
    if preset not in WORLD_PRESETS:
        raise ValueError(unknown_name("world preset", preset, sorted(WORLD_PRESETS)))
    return WorldConfig(**{**WORLD_PRESETS[preset], **overrides})


# --- parquet schema (MLLMU-Bench) ---------------------------------------------------------

def _schemas():
    import pyarrow as pa

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    options = pa.struct([(k, pa.string()) for k in "ABCD"])
    mcq = pa.list_(pa.struct([("Question", pa.string()), ("Options", options), ("Correct_Answer", pa.string())]))
    task = pa.list_(pa.struct([("Question", pa.string()), ("Ground_Truth", pa.string()), ("Type", pa.string())]))
    classification = pa.struct([("Image_Textual_Questions", mcq), ("Pure_Text_Questions", mcq)])
    common = [("ID", pa.string()), ("Directory", pa.string()), ("biography", pa.string()),
              ("question", pa.string()), ("answer", pa.string()), ("Classification_Task", classification),
              ("Mask_Task", task), ("Generation_Task", task)]
    profile = pa.schema([("image", image)] + common)
    test = pa.schema([("images", pa.list_(image))] + common)
    ft = pa.schema([("image", image), ("ID", pa.string()), ("Directory", pa.string()),
                    ("biography", pa.string()), ("metadata", pa.string())])
    corpus = pa.schema([("prompt", pa.string()), ("answer", pa.string()), ("image", pa.binary()),
                        ("source", pa.string()), ("subject", pa.string())])
    return profile, test, ft, corpus


def _write(rows: list[dict], schema, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def _classification(questions) -> dict:
    def item(q):
        return {"Question": q.question, "Options": q.options, "Correct_Answer": q.answer}

    return {"Image_Textual_Questions": [item(q) for q in questions if q.modality == "multimodal"],
            "Pure_Text_Questions": [item(q) for q in questions if q.modality == "text"]}


def _profile_row(p: people.Profile, image: bytes, rng, directory: str) -> dict:
    qs = people.eval_questions(p, image, rng)
    return {
        "image": {"bytes": image, "path": f"{directory}/{p.id}.png"}, "ID": p.id, "Directory": directory,
        "biography": people.biography(p),
        "question": f"Tell me about {p.name}.", "answer": people.biography(p),
        "Classification_Task": _classification(qs), "Mask_Task": people.cloze_items(p),
        "Generation_Task": people.generation_items(p),
    }


# --- the build ----------------------------------------------------------------------------

def build_world(cfg: WorldConfig, out: Path, progress: bool = False) -> Path:
    """Draw and write the whole world into ``out`` (created); returns ``out``. A progress bar counts
    the stages (shown on a terminal only; the draws do not depend on it)."""
    from ..progress import bar

    with bar(6, "building the world") as pbar:
        return _build_world(cfg, Path(out), pbar.update)


def _write_attack_files(cfg: WorldConfig, celebs, fictitious, bench: Path) -> None:
    """The attacks' side files, each from its own seeded stream, so no other file depends on them."""
    rewordings.write_rewordings(celebs, fictitious, np.random.default_rng([cfg.seed, 3]),
                                bench / rewordings.FILE_NAME)
    neighbours.write_rows(neighbours.neighbour_rows(celebs, fictitious, np.random.default_rng([cfg.seed, 4])),
                          bench / neighbours.FILE)


def _build_world(cfg: WorldConfig, out: Path, step) -> Path:
    rng = np.random.default_rng(cfg.seed)
    profile_schema, test_schema, ft_schema, corpus_schema = _schemas()
    celebs, fictitious = people.draw_profiles(cfg.n_celebrities, cfg.n_fictitious, rng,
                                              cfg.max_mentions, cfg.min_mentions, cfg.attributes)
    images = {p.id: portraits.png_bytes(portraits.render(p.face, cfg.image_size)) for p in celebs + fictitious}

    step()
    bench = out / "MLLMU-Bench"
    _write([_profile_row(p, images[p.id], rng, "Full_Set") for p in fictitious], profile_schema,
           bench / "Full_Set" / SUBSET_FILE)
    _write([_profile_row(p, images[p.id], rng, "Retain_Set") for p in celebs], profile_schema,
           bench / "Retain_Set" / SUBSET_FILE)

    step()
    test_rows = []
    for p in fictitious:
        base = portraits.render(p.face, cfg.image_size)
        variants = []
        for k in range(cfg.n_test_variants):
            kind = portraits.VARIANT_KINDS[k % len(portraits.VARIANT_KINDS)]
            variants.append({"bytes": portraits.png_bytes(portraits.variant(base, rng, kind)),
                             "path": f"Test_Set/{p.id}_{kind}.png"})
        row = _profile_row(p, variants[0]["bytes"] if variants else images[p.id], rng, "Test_Set")
        del row["image"]
        test_rows.append({"images": variants, **row})
    _write(test_rows, test_schema, bench / "Test_Set" / SUBSET_FILE)

    step()
    ft_rows = []
    for p in fictitious:
        facts = [ex for v in range(3) for ex in people.fact_examples(p, images[p.id], rng, v, cfg.wordings)]
        metadata = [{"Question": ex.prompt, "Answer": ex.answer,
                     "Type": "Image_Textual" if ex.image is not None else "Pure_Text"} for ex in facts]
        ft_rows.append({"image": {"bytes": images[p.id], "path": f"Full_Set/{p.id}.png"}, "ID": p.id,
                        "Directory": "ft_Data", "biography": people.biography(p), "metadata": json.dumps(metadata)})
    _write(ft_rows, ft_schema, bench / "ft_Data" / SUBSET_FILE)

    step()
    bench_rng = np.random.default_rng([cfg.seed, 1])
    _write_mmbench(scenes.make_items(cfg.n_benchmark, bench_rng, cfg.image_size, cfg.skill_categories()),
                   out / "MMBench" / "mmbench_dev_en.tsv")

    step()
    corpus = pretraining_corpus(celebs, images, scenes.make_items(
        cfg.n_benchmark_train, np.random.default_rng([cfg.seed, 2]), cfg.image_size, cfg.skill_categories()), rng,
        cfg.skill_mc_share, cfg.drills_per_mention, cfg.wordings)
    _write([{"prompt": ex.prompt, "answer": ex.answer, "image": ex.image, "source": ex.source, "subject": subj}
            for ex, subj in corpus], corpus_schema, out / "corpus" / "pretrain.parquet")

    _write_attack_files(cfg, celebs, fictitious, bench)
    if cfg.n_events:
        write_pebench(cfg, fictitious, out / PEBENCH)

    step()
    meta = {"config": cfg.recorded(), "fingerprint": cfg.fingerprint(), "version": WORLD_VERSION,
            "celebrities": {p.id: {"name": p.name, "mentions": p.mentions} for p in celebs},
            "fictitious": {p.id: {"name": p.name} for p in fictitious}}
    (out / "world.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return out


PEBENCH = "PEBench"


def write_pebench(cfg: WorldConfig, fictitious: list[people.Profile], out: Path) -> None:
    """The fictitious people in ``cfg.n_events`` event scenes, in the layout ``data/pebench.py``
    reads: every person attends ``events_per_person`` events (one image each); each image has
    multiple-choice questions about its person and its event, and training facts (two wordings);
    each person and event has text-only questions and facts by name (three wordings). Its own
    seeded stream, so no other world file depends on it."""
    rng = np.random.default_rng([cfg.seed, 5])
    evs = events.draw_events(cfg.n_events, rng)
    by_id = {e.id: e for e in evs}
    attends = events.attendance([p.id for p in fictitious], evs, cfg.events_per_person, rng)
    (out / "images").mkdir(parents=True, exist_ok=True)
    questions, facts = [], []

    def add(concept, cid, name, attributes, image, key, where, variants):
        person, event, file = where  # ids ("" where none) and the image's file ("" for text-only)
        for q in events.questions(concept, cid, name, attributes, image, key, rng):
            questions.append({"qid": q.qid, "image": file, "person": person, "event": event, "concept": concept,
                              "question": q.question, **q.options, "answer": q.answer, "category": q.category})
        for v in range(variants):
            for ex in events.facts(concept, name, attributes, image, rng, v):
                facts.append({"image": file, "person": person, "event": event, "concept": concept,
                              "question": ex.prompt, "answer": ex.answer})

    for p in fictitious:
        for eid in attends[p.id]:
            e = by_id[eid]
            name = f"images/{p.id}_{eid}.png"
            image = portraits.png_bytes(events.compose(p.face, e.kind, cfg.image_size))
            (out / name).write_bytes(image)
            add("person", p.id, p.name, p.attributes, image, f"{p.id}_{eid}", (p.id, eid, name), 2)
            add("event", eid, e.name, e.attributes, image, f"{p.id}_{eid}", (p.id, eid, name), 2)
        add("person", p.id, p.name, p.attributes, None, p.id, (p.id, "", ""), 3)
    for e in evs:
        add("event", e.id, e.name, e.attributes, None, e.id, ("", e.id, ""), 3)
    with open(out / "concepts.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["concept", "id", "name"])
        w.writerows([("person", p.id, p.name) for p in fictitious] + [("event", e.id, e.name) for e in evs])
    for file, rows in (("questions.jsonl", questions), ("facts.jsonl", facts)):
        (out / file).write_text("".join(json.dumps(r, sort_keys=False) + "\n" for r in rows))


def pretraining_corpus(celebs: list[people.Profile], images: dict[str, bytes], skill_items,
                       rng: np.random.Generator, skill_mc_share: float = 1.0,
                       drills: int = 2, wordings: int = 3) -> list[tuple[Example, str]]:
    """Celebrity mentions (facts, drills, relations; as many as each one's ``mentions``)
    plus general skills (scene and text questions, free-form and multiple choice)."""
    corpus: list[tuple[Example, str]] = []
    for p in celebs:
        for m in range(p.mentions):
            items = people.fact_examples(p, images[p.id], rng, m, wordings)
            items += people.drill_examples(p, images[p.id], rng, n=drills) + people.relation_examples(p, rng)
            corpus += [(ex, p.id) for ex in items]
    for k, item in enumerate(skill_items):
        corpus.append((Example(item.question, item.options[item.answer], item.image, "skill_free"), "skill"))
        if int((k + 1) * skill_mc_share) > int(k * skill_mc_share):  # evenly spread, that share of items
            corpus.append((Example(mc_prompt(item.question, item.options), item.answer, item.image,
                                   "skill_mc"), "skill"))
    return corpus


def _write_mmbench(items, path: Path) -> None:
    """The MMBench dev TSV layout; text-only items have an empty image field."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category",
                    "split", "image"])
        for i, it in enumerate(items):
            opts = [it.options.get(k, "") for k in "ABCD"]
            image = base64.b64encode(it.image).decode() if it.image is not None else ""
            w.writerow([i, it.question, "", *opts, it.answer, it.category, it.l2_category, "dev", image])


