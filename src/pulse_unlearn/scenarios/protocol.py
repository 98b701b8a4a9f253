"""The PULSE runner. It reads like the paper:

    build the sets  ->  (fine-tune)  ->  for each request: unlearn, evaluate, record

Scenarios
- ``finetuned``: start from the fine-tuned model; forget 50 / retain 50 of its 100 people;
  one operation.
- ``pretrained``: start from the base model; probe it on every celebrity, keep those it knows
  (accuracy >= threshold on both modalities), forget 20 / retain 25 of them; one operation.
- ``sequential``: the finetuned scenario's forget set in 5 disjoint requests of 10; each
  operation starts from the previous one's merged model with a fresh adapter; evaluated after
  every operation. Its one-shot counterpart is the finetuned scenario (same forget set), which
  the config always runs alongside.

Step 0 is the starting model, evaluated once per scenario and shared by its units. Each
split is encoded once per scenario (``Scorer``) and scored after every operation. Where the
data has Test_Set images of the forget people (fictitious people only), their multimodal
questions are also asked with such an image, as the split ``forget_test``. Under
``scoring=mllmu`` the forget and retain people's cloze and generation items are scored too,
as the splits ``forget_cloze``, ``forget_generation``, ``retain_cloze``, ``retain_generation``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..data.batches import Encoder
from ..data.mllmu import check_layout, load_facts, load_people, load_test_images
from ..data.mmbench import load_mmbench
from ..errors import PulseError
from ..methods.registry import make_method
from ..methods.unlearn import unlearn
from ..evaluation.collapse import answer_collapse
from ..evaluation.evaluator import Evaluator, demo_for, make_scorer
from ..evaluation.summary import evaluation_rows, prediction_columns, summary_columns
from ..models.load import load_model, load_processor, resolve_device, resolve_dtype
from ..records import Example, OpenQuestion, Person, Question, split_key, subject_key
from ..runs.resume import Resume, Start, apply_adapters, resume_key
from ..runs.store import RunStore, file_fingerprint, model_fingerprint, versions
from .. import distributed
from . import splits


# --- inputs ------------------------------------------------------------------------------

@dataclass
class Sources:
    """People, their unlearning/fine-tuning facts, and the general benchmark; every person by
    subject key (``records.subject_key``), as the sets name them."""

    fictitious: dict[str, Person]
    celebrities: dict[str, Person]
    facts: dict[str, list[Example]]
    general: list[Question]
    fingerprint: str
    test_images: dict[str, tuple[bytes, ...]] = field(default_factory=dict)  # Test_Set, by person key

    def facts_of(self, ids) -> list[Example]:
        missing = [pid for pid in ids if not self.facts.get(pid)]
        if missing:
            population, pid = split_key(missing[0])
            raise PulseError(f"no unlearning data (ft_Data or Generation_Task) for {population} person {pid}")
        return [ex for pid in ids for ex in self.facts[pid]]

    @property
    def people(self) -> dict[str, Person]:
        return {**self.fictitious, **self.celebrities}

    def questions_of(self, ids) -> list[Question]:
        return [q for pid in ids for q in self.people[pid].questions]

    def open_of(self, ids, task: str) -> list[OpenQuestion]:
        """The people's cloze (Mask_Task) or generation (Generation_Task) items."""
        people = self.people
        return [q for pid in ids for q in people[pid].open_questions if q.task == task]


def load_sources(mllmu: Path, mmbench: Path, subset: int | None, seed: int) -> Sources:
    fictitious = {p.key: p for p in load_people(mllmu, "Full_Set")}
    celebrities = {p.key: p for p in load_people(mllmu, "Retain_Set")}
    facts = {key: list(p.facts) for key, p in {**fictitious, **celebrities}.items()}
    ft = load_facts(mllmu) if (Path(mllmu) / "ft_Data").is_dir() else {}
    # ft_Data, where present, is the data of record; it and Test_Set name Full_Set's people
    facts.update({subject_key("fictitious", pid): exs for pid, exs in ft.items()})
    check_layout(mllmu, [p.id for p in fictitious.values()], list(ft))
    general = load_mmbench(mmbench)
    if subset is not None and subset < len(general):
        keep = sorted(np.random.default_rng([seed, 9]).choice(len(general), subset, replace=False))
        general = [general[i] for i in keep]
    tests = load_test_images(mllmu) if (Path(mllmu) / "Test_Set").is_dir() else {}
    tests = {subject_key("fictitious", pid): images for pid, images in tests.items()}
    files = sorted(Path(mllmu).glob("*/*.parquet")) + [Path(mmbench)]
    return Sources(fictitious, celebrities, facts, general, file_fingerprint(files), tests)


# --- the run ---------------------------------------------------------------------------------

def run(cfg: RunConfig, out: Path, models: dict[str, Path | None], mllmu: Path, mmbench: Path,
        finetune: Callable[[list[str], list[Example]], Path] | None = None, log=print) -> RunStore:
    """Run every unit of ``cfg`` into ``out``. ``models`` holds ``base`` and optionally
    ``finetuned``; ``finetune(ids, facts)`` makes the fine-tuned model when it is missing (``ids``:
    the chosen people's Full_Set IDs).

    Inputs are checked before anything is written. A folder holding part of this very run
    (same config, data, models, versions and device) is resumed: its finished steps and
    operations are read back, not computed again (``runs/resume.py``)."""
    r = _prepare(cfg, out, models, mllmu, mmbench, finetune, log)  # build the sets, (fine-tune)
    for scenario in r.scenarios:
        t0 = time.time()
        step0 = _start(r, scenario)  # the starting model, evaluated once (pretrained: probed first)
        for _, method_name, update in [u for u in r.units if u[0] == scenario]:
            _unlearn_unit(r, {"scenario": scenario, "method": method_name, "update": update}, step0)
        r.store.flush()
        log(f"[{scenario}] done in {time.time() - t0:.0f} s")
    r.store.flush()
    return r.store


@dataclass
class _Run:
    """What every scenario of a run shares: inputs, sets, starting models, results, resume state."""

    cfg: RunConfig
    src: Sources
    store: RunStore
    done: Resume
    units: list[tuple[str, str, str]]
    scenarios: list[str]
    start_models: dict[str, Path]
    scenario_sets: dict[str, splits.Sets]
    log: Callable
    sets_record: dict[str, dict] = field(default_factory=dict)
    shared_scorers: dict = field(default_factory=dict)
    evaluators: dict[str, Evaluator] = field(default_factory=dict)

    def evaluator(self, scenario: str, encoder: Encoder | None, sets: splits.Sets) -> Evaluator:
        """The scenario's splits, encoded once (a resumed step 0 builds them on first use)."""
        if scenario not in self.evaluators:
            if encoder is None:
                encoder = Encoder(load_processor(self.start_models[scenario], self.cfg.model.trust_remote_code))
            self.evaluators[scenario] = Evaluator(encoder, self.cfg, self.src, sets, self.shared_scorers)
        return self.evaluators[scenario]


def _prepare(cfg: RunConfig, out: Path, models: dict[str, Path | None], mllmu: Path, mmbench: Path,
             finetune, log) -> _Run:
    """Check the inputs, build each scenario's sets, fine-tune where needed, open the run
    folder (environment.json) and its resume state."""
    config = cfg.model_dump(mode="json")
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    src = load_sources(mllmu, mmbench, cfg.data.mmbench_subset, cfg.seed)
    units = cfg.units()
    scenarios = list(dict.fromkeys(s for s, _, _ in units))
    _check_sizes(cfg, src, Path(mllmu), scenarios)
    for path in models.values():
        if path is not None:
            load_processor(path, cfg.model.trust_remote_code)
    store = RunStore(out, config, config_hash, write=distributed.is_main(),
                     columns={"summary.csv": summary_columns(), "predictions.csv": prediction_columns()})
    sizes = cfg.splits
    fingerprints = {"config": config_hash, "data": src.fingerprint}

    ft_people = splits.finetune_people(list(src.fictitious), min(sizes.finetune_people, len(src.fictitious)),
                                       cfg.seed)
    start_models: dict[str, Path] = {}
    scenario_sets: dict[str, splits.Sets] = {}
    if {"finetuned", "sequential"} & set(scenarios):
        finetuned = models.get("finetuned")
        if finetuned is None:
            if finetune is None:
                raise PulseError("the finetuned and sequential scenarios need a fine-tuned model (model.finetuned)")
            finetuned = finetune([split_key(key)[1] for key in ft_people], src.facts_of(ft_people))
        start_models["finetuned"] = start_models["sequential"] = Path(finetuned)
        scenario_sets["finetuned"] = splits.finetuned_sets(ft_people, sizes.forget, cfg.seed)
        if "sequential" in scenarios:
            scenario_sets["sequential"] = splits.sequential_sets(ft_people, sizes.forget, sizes.requests, cfg.seed)
    if "pretrained" in scenarios:
        start_models["pretrained"] = Path(models["base"])

    for label, path in {**models, **start_models}.items():
        if path is not None:
            fingerprints[f"model:{label}"] = model_fingerprint(path)
    env = {"versions": versions(), "fingerprints": fingerprints,
           "models": {k: str(v) for k, v in {**models, **start_models}.items()}}
    store.write_json("environment.json", env)
    device = resolve_device(cfg.model.device)
    done = Resume(store.folder / "resume", resume_key({**env, "device": device,
                                                      "dtype": str(resolve_dtype(cfg.model.dtype, device))}), log,
                  write=distributed.is_main())
    return _Run(cfg, src, store, done, units, scenarios, start_models, scenario_sets, log)


def _start(r: _Run, scenario: str) -> Start:
    """Step 0 of a scenario: the starting model evaluated on every split (the pretrained
    scenario probes every celebrity and selects its sets first), or read back on resume."""
    cfg, log = r.cfg, r.log
    step0 = r.done.start(scenario)
    if step0 is None:
        model, processor = _load(cfg, r.start_models[scenario])
        encoder = Encoder(processor)
        if cfg.eval_share_prefix and encoder.prefix_sharing_blocker:
            log(f"[{scenario}] prefix sharing off: {encoder.prefix_sharing_blocker}")
        probe_preds, probe_rows, note = None, None, None
        sets = r.scenario_sets.get(scenario)
        if scenario == "pretrained":
            probe_preds, sets, probe_rows, note = _probe_and_select(cfg, r.src, encoder, model, log)
        evaluate = r.evaluator(scenario, encoder, sets)
        if probe_preds is None:
            start_preds = evaluate(model)
        else:  # the probe already scored the starting model on every celebrity: reuse it
            start_preds = {name: [p for p in probe_preds if p.subject in set(ids)]
                           for name, ids in (("forget", sets.forget), ("retain", sets.retain))}
            for name, scorer in evaluate.scorers.items():
                if name not in start_preds:
                    start_preds[name] = scorer(model)
        del model
        step0 = Start(sets, start_preds, probe_rows, note)
        r.done.save_start(scenario, step0)
    else:
        log(f"[{scenario}] step 0: read back from the interrupted run")
    sets = step0.sets
    if step0.probe_rows is not None:
        r.store.write_csv("probe.csv", step0.probe_rows, PROBE_COLUMNS)
        if step0.note:
            r.store.extra["pretrained_note"] = step0.note
    r.sets_record[scenario] = _sets_record(sets)
    r.store.write_json("sets.json", r.sets_record)
    log(f"[{scenario}] forget {len(sets.forget)} people in {len(sets.requests)} request(s), "
        f"retain {len(sets.retain)}; start model evaluated")
    return step0


def _unlearn_unit(r: _Run, unit: dict, step0: Start) -> None:
    """One (scenario, method, update): for each forget request, unlearn, evaluate, record.
    Operations finished by an interrupted run are read back; the model is rebuilt from their
    saved adapters."""
    cfg, log, done, scenario = r.cfg, r.log, r.done, unit["scenario"]
    sets = step0.sets
    forget_facts = [r.src.facts_of(req) for req in sets.requests]
    retain_facts = r.src.facts_of(sets.retain)
    _replay(r.store, evaluation_rows(unit, step0.preds, sets.requests, 0, cfg.scoring))
    finished = done.operations(unit, len(forget_facts))
    for record in finished:
        _replay(r.store, record)
    if finished:
        log(f"[{scenario}] {unit['method']}/{unit['update']}: {len(finished)} of {len(forget_facts)} operation(s) "
            "read back from the interrupted run")
    if len(finished) == len(forget_facts):
        done.unit_done(unit)
        return
    evaluate = r.evaluator(scenario, None, sets)
    method = make_method(unit["method"], **cfg.method_params.get(unit["method"], {}))
    model, _ = _load(cfg, r.start_models[scenario])
    model = apply_adapters(model, [done.adapter(unit, k) for k in range(1, len(finished) + 1)])
    for k in range(len(finished) + 1, len(forget_facts) + 1):
        t1 = time.time()
        model, oplog = unlearn(model, evaluate.encoder, method, forget_facts[k - 1], retain_facts,
                               unit["update"], cfg.unlearn,
                               desc=f"{scenario}/{unit['method']}/{unit['update']} op {k}",
                               on_adapter=lambda peft, k=k: done.save_adapter(unit, k, peft))
        preds = evaluate(model)
        collapse = answer_collapse(preds)
        operation = {**unit, "operation": k, "steps": len(oplog.losses),
                     "first_loss": _r(oplog.losses[0]) if oplog.losses else "",
                     "last_loss": _r(oplog.losses[-1]) if oplog.losses else "",
                     "diverged_at": "" if oplog.diverged_at is None else oplog.diverged_at,
                     "top_answer": collapse.letter, "top_share": round(collapse.share, 4),
                     "collapsed": int(collapse.collapsed), "seconds": round(time.time() - t1, 2)}
        record = {**evaluation_rows(unit, preds, sets.requests, k, cfg.scoring), "operation": operation}
        done.save_operation(unit, k, record)
        _replay(r.store, record)
        r.store.flush()
        acc = _acc(preds)
        log(f"[{scenario}] {unit['method']}/{unit['update']} op {k}: forget {acc['forget']:.1%} "
            f"retain {acc['retain']:.1%} general {acc['general']:.1%}"
            + (f"  (diverged at step {oplog.diverged_at}: loss {oplog.losses[-1]})" if oplog.diverged else "")
            + (f"  (answers collapsed: {collapse.share:.0%} {collapse.letter!r})" if collapse.collapsed else ""))
    done.unit_done(unit)


def _check_sizes(cfg: RunConfig, src: Sources, mllmu: Path, scenarios: list[str]) -> None:
    """Split sizes the data cannot give: said before anything runs, naming the file."""
    s = cfg.splits
    if {"finetuned", "sequential"} & set(scenarios):
        n = min(s.finetune_people, len(src.fictitious))
        if not 0 < s.forget < n:
            raise PulseError(f"{mllmu / 'Full_Set'}: {len(src.fictitious)} fictitious people; splits.forget="
                             f"{s.forget} of splits.finetune_people={s.finetune_people} must leave 1 or more to "
                             "retain")
        if "sequential" in scenarios and (s.requests < 1 or s.forget % s.requests):
            raise PulseError(f"config: splits.forget={s.forget} does not split into splits.requests={s.requests} "
                             "equal requests")
    if "pretrained" in scenarios and len(src.celebrities) < 2:
        raise PulseError(f"{mllmu / 'Retain_Set'}: {len(src.celebrities)} people; the pretrained scenario needs "
                         "at least 2")


def _load(cfg: RunConfig, path: Path):
    m = cfg.model
    return load_model(path, dtype=m.dtype, device=m.device, trust_remote_code=m.trust_remote_code)


def _r(x: float) -> float:
    return round(float(x), 6)


def _acc(preds: dict[str, list]) -> dict[str, float]:
    return {k: (sum(p.correct for p in v) / len(v) if v else float("nan")) for k, v in preds.items()}


def _sets_record(sets: splits.Sets) -> dict:
    """A scenario's entry in sets.json: its one population and the original IDs."""
    populations = {split_key(key)[0] for key in (*sets.forget, *sets.retain)}
    assert len(populations) == 1, f"a scenario's people come from one population, not {sorted(populations)}"
    return {"population": populations.pop(),
            "forget_requests": [[split_key(key)[1] for key in request] for request in sets.requests],
            "retain": [split_key(key)[1] for key in sets.retain]}


def _replay(store: RunStore, record: dict) -> None:
    """Append an evaluation's rows (and its operation's, if any) to the run's results."""
    store.summary += record["summary"]
    store.predictions += record["predictions"]
    if record.get("operation"):
        store.operations.append(record["operation"])


PROBE_COLUMNS = ("id", "population", "multimodal", "text", "known", "selected")


def _probe_and_select(cfg: RunConfig, src: Sources, encoder: Encoder, model, log):
    """Probe the base model on every celebrity and select the known ones: (predictions, sets,
    probe.csv rows, a note when fewer people than asked for are known)."""
    questions = src.questions_of(sorted(src.celebrities))
    preds = make_scorer("choice", encoder, questions, cfg, demo=demo_for(cfg, src, questions))(model)
    result = splits.probe(preds, cfg.splits.probe_threshold)
    sets, note = splits.pretrained_sets(result.known, cfg.splits.pretrained_forget, cfg.splits.pretrained_retain,
                                        cfg.seed)
    rows = [{"id": split_key(pid)[1], "population": split_key(pid)[0],
             "multimodal": round(a.get("multimodal", float("nan")), 4),
             "text": round(a.get("text", float("nan")), 4), "known": int(pid in result.known),
             "selected": "forget" if pid in sets.forget else "retain" if pid in sets.retain else ""}
            for pid, a in sorted(result.accuracy.items())]
    log(f"[pretrained] probe: {len(result.known)} of {len(src.celebrities)} celebrities known "
        f"(>= {result.threshold:.0%} on both modalities)" + (f"; {note}" if note else ""))
    return preds, sets, rows, note
