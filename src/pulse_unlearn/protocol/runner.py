"""The PULSE runner. ``run`` reads like the paper:

    load the data -> build each scenario's sets (probing for the pretrained one) -> (fine-tune)
    -> the starting model evaluated -> for each unit, for each forget request: unlearn, evaluate, record

An operation's stopping rule (``evaluation/stopping.py``) and, with ``unlearn.eval_every``, its
trajectory (``trajectory.py``: the model evaluated at checkpoints during the operation) are
recorded with it; ``matched.csv`` derives the comparison at matched forgetting from the
trajectories (``evaluation/matched.py``).

Step 0 is the starting model, evaluated once per scenario and shared by its units. What is
evaluated is the registered splits (``evaluation/splits.py``), each encoded once per scenario
and scored after every operation. Every finished step is kept under ``resume/``
(``checkpoints.py``): a killed run, started again with the same command, reads its finished
steps back instead of computing them.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .. import distributed
from ..config import RunConfig
from ..config.schema import CONCEPT_SCENARIOS
from ..config.params import resolved_params
from ..data.batches import Encoder
from ..data.sources import Sources, load_sources
from ..evaluation.attacks import COLUMNS as ATTACK_COLUMNS
from ..evaluation.attacks import attack_inputs, attacked, baseline_rows, with_recovery
from ..evaluation.collapse import answer_collapse
from ..evaluation.evaluator import Evaluator
from ..evaluation.matched import COLUMNS as MATCHED_COLUMNS
from ..evaluation.matched import matched_rows
from ..evaluation.stopping import BUDGET_SPENT, DIVERGED, StopRule
from ..evaluation.summary import evaluation_rows, prediction_columns, summary_columns, trajectory_columns
from ..errors import PulseError
from ..methods.registry import make_method
from ..methods.unlearn import unlearn, unsupported_under_fsdp
from ..models.lora import adapter_state
from ..models.load import decoder_layers, load_model, load_processor, resolve_device, resolve_dtype
from ..records import Example, split_key
from ..runs.store import RunStore, file_fingerprint, model_fingerprint, versions
from ..runs.trackers import Trackers, check_available
from . import scenarios
from .blackbox import COLUMNS as SEARCH_COLUMNS
from .blackbox import check_search, find_suffix, is_search, make_search, vocabulary
from .checkpoints import Checkpoints, Start, UnitCheckpoints, apply_adapters, resume_key
from .scenarios import PROBE_COLUMNS, Plan
from .sets import Sets
from .trajectory import Trajectory


def run(cfg: RunConfig, out: Path, models: dict[str, Path | None], mllmu: Path, mmbench: Path,
        finetune: Callable[[list[str], list[Example]], Path] | None = None, log=print,
        pebench: Path | None = None) -> RunStore:
    """Run every unit of ``cfg`` into ``out``. ``models`` holds ``base`` and optionally
    ``finetuned``; ``finetune(ids, facts)`` makes the fine-tuned model when it is missing (``ids``:
    the chosen people's Full_Set IDs); ``pebench``: the people and events of the concepts
    scenarios. Inputs are checked before anything is written."""
    src = load_sources(mllmu, mmbench, cfg.data.mmbench_subset, cfg.seed, cfg.data.replay, pebench)
    src.files += attack_inputs(cfg.attacks, src)  # checked here: before anything is written
    plan = scenarios.plan(cfg, src, Path(mllmu))
    r = _open(cfg, out, src, plan, models, finetune, log)
    for scenario in plan.scenarios:
        t0 = time.time()
        start = r.checkpoints.start(scenario, partial(_evaluate_start, r, scenario))
        _record_start(r, scenario, start)
        for unit in plan.units_of(scenario):
            _record(r, {**evaluation_rows(unit, start.preds, start.sets.requests, 0, cfg.scoring, r.stop.label),
                        "attacks": [{**unit, "operation": 0, **row} for row in start.attacks]})
            done = r.checkpoints.unit(unit, len(start.sets.requests))
            work = _UnitWork(r, unit, start, done)
            for k in range(1, len(start.sets.requests) + 1):
                _record(r, done.operation(k, partial(work.unlearn_and_evaluate, k)), flush=work.computed)
            done.done()
        r.store.flush()
        log(f"[{scenario}] done in {time.time() - t0:.0f} s")
    r.store.flush()
    r.trackers.close()
    return r.store


@dataclass
class _Run:
    """What every scenario of a run shares: inputs, plan, results, checkpoints, scorers."""

    cfg: RunConfig
    src: Sources
    plan: Plan
    store: RunStore
    checkpoints: Checkpoints
    log: Callable
    stop: StopRule
    trackers: Trackers
    sets_record: dict[str, dict] = field(default_factory=dict)
    shared_scorers: dict = field(default_factory=dict)
    evaluators: dict[str, Evaluator] = field(default_factory=dict)
    attacks_said: set = field(default_factory=set)  # (attack, reason) already logged as not applying

    def evaluator(self, scenario: str, sets: Sets, encoder: Encoder | None = None) -> Evaluator:
        """The scenario's splits, encoded once (a resumed step 0 builds them on first use)."""
        if scenario not in self.evaluators:
            if encoder is None:
                encoder = Encoder(load_processor(self.plan.start_models[scenario], self.cfg.model.trust_remote_code))
            self.evaluators[scenario] = Evaluator(encoder, self.cfg, self.src, sets, self.shared_scorers)
        return self.evaluators[scenario]

    def load(self, path: Path):
        m = self.cfg.model
        return load_model(path, dtype=m.dtype, device=m.device, trust_remote_code=m.trust_remote_code)


def _open(cfg: RunConfig, out: Path, src: Sources, plan: Plan, models: dict[str, Path | None], finetune,
          log) -> _Run:
    """Check the models' processors and the trackers' packages, open the run folder (refused when
    it holds another config), make the starting models (fine-tuning where needed), write
    environment.json, open the checkpoints under a key over everything the results depend on,
    and the trackers."""
    check_available(cfg.log_with)
    for path in models.values():
        if path is not None:
            load_processor(path, cfg.model.trust_remote_code)
    _check_methods(cfg, [p for p in models.values() if p is not None], src)
    config = cfg.model_dump(mode="json")
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    store = RunStore(out, config, config_hash, write=distributed.is_main(),
                     columns={"summary.csv": summary_columns(), "predictions.csv": prediction_columns(),
                              "trajectory.csv": trajectory_columns(), "matched.csv": MATCHED_COLUMNS,
                              "attacks.csv": ATTACK_COLUMNS, "search.csv": SEARCH_COLUMNS})
    plan.start_models = scenarios.start_models(plan, src, models, finetune)
    fingerprints = {"config": config_hash, "data": file_fingerprint(src.files)}
    for label, path in {**models, **plan.start_models}.items():
        if path is not None:
            fingerprints[f"model:{label}"] = model_fingerprint(path)
    env = {"versions": versions(), "fingerprints": fingerprints, "method_params": resolved_params(cfg),
           "models": {k: str(v) for k, v in {**models, **plan.start_models}.items()}}
    store.write_json("environment.json", env)
    device = resolve_device(cfg.model.device)
    key = resume_key({**env, "device": device, "dtype": str(resolve_dtype(cfg.model.dtype, device))})
    checkpoints = Checkpoints(store.folder / "resume", key, log, write=distributed.is_main())
    trackers = Trackers.open(cfg.log_with, Path(cfg.tracker_dir or store.folder / "trackers"), cfg.name, config)
    return _Run(cfg, src, plan, store, checkpoints, log, StopRule.of(cfg.unlearn), trackers)


def _check_methods(cfg: RunConfig, models: list[Path], src: Sources) -> None:
    """Each method's parameters against the models' depth, its data, and what FSDP cannot run;
    each black-box search's vocabulary."""
    for name in dict.fromkeys(m for _, m, _ in cfg.units()):
        if is_search(name):
            check_search(name, cfg, src)
            continue
        method = make_method(name, **cfg.method_params.get(name, {}))
        if distributed.fsdp() and (reason := unsupported_under_fsdp(method, cfg.unlearn)):
            raise PulseError(reason)
        if method.needs_replay and cfg.data.replay == 0:
            raise PulseError(f"method {name} needs general replay data: set data.replay to the number of "
                             f"general-benchmark items to hold out of evaluation for it (e.g. 60)")
        for path in models:
            layers = decoder_layers(path)
            if layers is not None and (reason := method.check(layers)):
                raise PulseError(f"{path}: {reason}")


def _evaluate_start(r: _Run, scenario: str) -> Start:
    """Step 0: the starting model on every split; the pretrained scenario probes every celebrity
    and selects its sets first (its probe already scored forget and retain: reused)."""
    model, processor = r.load(r.plan.start_models[scenario])
    encoder = Encoder(processor)
    if r.cfg.eval_share_prefix and encoder.prefix_sharing_blocker:
        r.log(f"[{scenario}] prefix sharing off: {encoder.prefix_sharing_blocker}")
    probed, probe_rows, note, sets = {}, None, None, r.plan.sets.get(scenario)
    if scenario == "pretrained":
        probe_preds, sets, probe_rows, note = scenarios.probe_and_select(r.cfg, r.src, encoder, model, r.log)
        probed = {name: [p for p in probe_preds if p.subject in set(ids)]
                  for name, ids in (("forget", sets.forget), ("retain", sets.retain))}
    evaluate = r.evaluator(scenario, sets, encoder)
    preds = {name: probed[name] if name in probed else scorer(model) for name, scorer in evaluate.scorers.items()}
    starting = None
    if r.cfg.unlearn.eval_every is not None:  # what each operation's targets are relative to
        starting = Trajectory.starting_points(evaluate, r.cfg, sets.requests, model)
    # each attack's baseline
    attacks = baseline_rows(attacked(r.cfg.attacks, model, evaluate, preds, scenario, r.log, r.attacks_said))
    return Start(sets, preds, probe_rows, note, starting, attacks)


def _record_start(r: _Run, scenario: str, start: Start) -> None:
    if start.probe_rows is not None:
        r.store.write_csv("probe.csv", start.probe_rows, PROBE_COLUMNS)
        if start.note:
            r.store.extra["pretrained_note"] = start.note
    r.sets_record[scenario] = scenarios.sets_record(start.sets)
    r.store.write_json("sets.json", r.sets_record)
    who = "people" if scenario not in CONCEPT_SCENARIOS else "concepts"
    r.log(f"[{scenario}] forget {len(start.sets.forget)} {who} in {len(start.sets.requests)} request(s), "
          f"retain {len(start.sets.retain)}; start model evaluated")


class _UnitWork:
    """One unit's operations that are not read back: the model is loaded (and rebuilt from the
    adapters of the operations an interrupted run finished) only when the first is computed."""

    def __init__(self, r: _Run, unit: dict, start: Start, done: UnitCheckpoints):
        self.r, self.unit, self.start, self.done, self.model, self.computed = r, unit, start, done, None, False
        self.sets = sets = start.sets
        self.previous: dict | None = None  # the last operation's predictions, when computed here
        self.forget = [r.src.facts_of(request) for request in sets.requests]
        # each forget fact's concept kind (person / event; a person's population elsewhere), for unlearn.balance
        self.forget_groups = [[split_key(key)[0] for key in request for _ in r.src.facts[key]]
                              for request in sets.requests]
        self.retain = r.src.away_from(r.src.facts_of(sets.retain), sets.forget)
        self.replay = r.src.replay_examples()
        if done.finished:
            r.log(f"[{unit['scenario']}] {unit['method']}/{unit['update']}: {len(done.finished)} of "
                  f"{len(sets.requests)} operation(s) read back from the interrupted run")

    def _point(self, trajectory: Trajectory, rows: list[dict]) -> None:
        """A checkpoint's rows: to trajectory.csv (the operation so far) and to the trackers."""
        self.r.store.write_trajectory(trajectory.rows)
        self.r.trackers.log({_tag(row, f"op{row['operation']}", row["split"], row["modality"], "accuracy"):
                             row["accuracy"] for row in rows}, rows[0]["step"])

    def _evaluate(self, evaluate: Evaluator, oplog, model) -> dict:
        """Every split on the operation's model. An operation that took no optimizer step (its
        stopping rule was met at step 0) merged an adapter whose B matrices are still zero, so
        the model is the previous operation's, weight for weight: its predictions are reused."""
        if not oplog.losses and self.previous is not None:
            preds = self.previous
        else:
            preds = evaluate(model)
        self.previous = preds
        return preds

    def _adapter_done(self, k: int, peft_model) -> None:
        self.done.save_adapter(k, peft_model)
        if self.stacked is not None:
            self.stacked.append(adapter_state(peft_model))

    def unlearn_and_evaluate(self, k: int) -> dict:
        """Operation k: unlearn request k, evaluate every split, and the operation's record."""
        r, unit, cfg = self.r, self.unit, self.r.cfg
        evaluate = r.evaluator(unit["scenario"], self.sets)
        if is_search(unit["method"]):
            return self.find_suffix_and_evaluate(k, evaluate)
        if self.model is None:
            self.method = make_method(unit["method"], **cfg.method_params.get(unit["method"], {}))
            start = r.load(r.plan.start_models[unit["scenario"]])[0]
            if cfg.unlearn.adapters == "merge":  # the operations' adapters merged in, one after the other
                self.model, self.stacked = apply_adapters(start, self.done.adapters()), None
            else:  # stacked: the starting model never changes; the adapters are rebuilt beside it
                self.model, self.stacked = start, self.done.adapter_states()
        self.computed, t1 = True, time.time()
        trajectory = None
        if cfg.unlearn.eval_every is not None:
            trajectory = Trajectory.of_operation(evaluate, cfg, unit, k, self.sets.requests[k - 1],
                                                 self.start.starting[k - 1],
                                                 on_point=lambda rows: self._point(trajectory, rows))
        model, oplog = unlearn(self.model, evaluate.encoder, self.method, self.forget[k - 1], self.retain,
                               unit["update"], cfg.unlearn,
                               desc=f"{unit['scenario']}/{unit['method']}/{unit['update']} op {k}",
                               on_adapter=lambda peft: self._adapter_done(k, peft), monitor=trajectory,
                               stacked=list(self.stacked or ()), replay=self.replay,
                               forget_groups=self.forget_groups[k - 1])
        if self.stacked is None:
            self.model = model  # merged: the next operation starts from it
        preds = self._evaluate(evaluate, oplog, model)
        collapse = answer_collapse(preds)
        losses = oplog.losses
        reason = trajectory.reason(oplog.diverged) if trajectory else DIVERGED if oplog.diverged else BUDGET_SPENT
        operation = {**unit, "operation": k, "steps": len(losses),
                     "first_loss": round(float(losses[0]), 6) if losses else "",
                     "last_loss": round(float(losses[-1]), 6) if losses else "",
                     "diverged_at": "" if oplog.diverged_at is None else oplog.diverged_at,
                     "top_answer": collapse.letter, "top_share": round(collapse.share, 4),
                     "collapsed": int(collapse.collapsed), "stop": r.stop.stop, "sees": r.stop.sees or "",
                     "rule": r.stop.text, "stopped_at": len(losses) - oplog.diverged, "reason": reason,
                     "seconds": round(time.time() - t1, 2)}
        acc = _accuracies(preds)
        r.log(f"[{unit['scenario']}] {unit['method']}/{unit['update']} op {k}: forget {acc['forget']:.1%} "
              f"retain {acc['retain']:.1%} general {acc['general']:.1%} after {operation['stopped_at']} steps "
              f"({reason})"
              + (f"  (diverged at step {oplog.diverged_at}: loss {losses[-1]})" if oplog.diverged else "")
              + (f"  (answers collapsed: {collapse.share:.0%} {collapse.letter!r})" if collapse.collapsed else ""))
        attacks = self._attacks(k, model, evaluate, preds)
        record = {**evaluation_rows(unit, preds, self.sets.requests, k, cfg.scoring, r.stop.label),
                  "operation": operation, "trajectory": trajectory.rows if trajectory else [], "attacks": attacks}
        _track_operation(r, {**record, "losses": losses})
        return record

    def _attacks(self, k: int, model, evaluate: Evaluator, preds: dict, weights_fixed: bool = False) -> list[dict]:
        """The configured attacks after operation k (the last, or every one when asked), with their
        recovery against the starting model's rows."""
        r, unit, cfg = self.r, self.unit, self.r.cfg
        if k != len(self.sets.requests) and not cfg.attacks_every_operation:
            return []
        rows = attacked(cfg.attacks, model, evaluate, preds, unit["scenario"], r.log, r.attacks_said, weights_fixed)
        return [{**unit, "operation": k, **row} for row in with_recovery(rows, self.start.attacks)]

    def find_suffix_and_evaluate(self, k: int, evaluate: Evaluator) -> dict:
        """Operation k of a black-box unit: a suffix found from the model's answers to the feedback
        (``blackbox.py``), then every split with it appended; the weights never change, so
        attacks on the weights do not apply."""
        r, unit, cfg = self.r, self.unit, self.r.cfg
        if self.model is None:
            self.method = make_search(unit["method"], cfg)
            self.model = r.load(r.plan.start_models[unit["scenario"]])[0]
            self.words = vocabulary(self.method.vocabulary, r.src, cfg.model.source == "world")
        words, found, rows = find_suffix(self.method, self.model, evaluate, unit, k, self.words)
        suffixed = evaluate.with_suffix(words)
        preds = suffixed(self.model)
        collapse = answer_collapse(preds)
        operation = {**unit, "operation": k, "steps": len(rows), "first_loss": "", "last_loss": "", "diverged_at": "",
                     "top_answer": collapse.letter, "top_share": round(collapse.share, 4),
                     "collapsed": int(collapse.collapsed), "stop": "budget", "sees": "feedback",
                     "rule": f"{self.method.budget} questions", "stopped_at": len(rows), "reason": BUDGET_SPENT,
                     "suffix": found["suffix"], "queries": found["queries"], "seconds": found["seconds"]}
        acc = _accuracies(preds)
        r.log(f"[{unit['scenario']}] {unit['method']} op {k}: suffix {found['suffix']!r} after {found['queries']} "
              f"questions: forget {acc['forget']:.1%} retain {acc['retain']:.1%} general {acc['general']:.1%}")
        attacks = self._attacks(k, self.model, suffixed, preds, weights_fixed=True)
        return {**evaluation_rows(unit, preds, self.sets.requests, k, cfg.scoring, r.stop.label),
                "operation": operation, "trajectory": [], "attacks": attacks, "search": rows}


def _accuracies(preds: dict) -> dict[str, float]:
    return {split: sum(p.correct for p in ps) / len(ps) for split, ps in preds.items() if ps}


def _tag(row: dict, *parts) -> str:
    return "/".join(str(p) for p in (row["scenario"], row["method"], row["update"], *parts))


def _track_operation(r: _Run, record: dict) -> None:
    """An operation's losses (x: its steps) and end-of-operation metrics (x: the operation) to the trackers."""
    op = record["operation"]
    for step, loss in enumerate(record.get("losses", [])):
        r.trackers.log({_tag(op, f"op{op['operation']}", "loss"): loss}, step)
    r.trackers.log({_tag(row, "end", row["split"], row["request"], row["modality"], "accuracy"): row["accuracy"]
                    for row in record["summary"]}, op["operation"])


def _record(r: _Run, record: dict, flush: bool = False) -> None:
    """Append an evaluation's rows (and its operation's, if any) to the run's results."""
    r.store.summary += record["summary"]
    r.store.predictions += record["predictions"]
    if record.get("operation"):
        r.store.operations.append(record["operation"])
    r.store.attacks += record.get("attacks", [])
    r.store.search += record.get("search", [])
    if record.get("trajectory"):
        r.store.trajectory += record["trajectory"]
        r.store.matched += matched_rows(record["trajectory"], r.cfg.trajectory.compare)
    if flush:
        r.store.flush()
