"""The PULSE runner. ``run`` reads like the paper:

    load the data -> plan each scenario's sets -> (fine-tune) -> for each scenario: the starting
    model evaluated (its sets selected first where it probes) -> for each unit, for each forget
    request: unlearn (or search a suffix), evaluate, record -> the findings' comparisons, each
    with its interval and verdict (``verdicts.py``)

A scenario (``scenarios/``) declares its starting model and draws its sets; an approach
(``approaches.py``: weight unlearning or a suffix search) turns a request into an operation's
record; the hooks after an operation (``hooks.py``) add the attacks, the log line and the
trackers' scalars. Step 0 is the starting model, evaluated once per scenario and shared by its
units. Every finished step is kept under ``resume/`` (``checkpoints.py``): a killed run, started
again with the same command, reads its finished steps back instead of computing them.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import partial
from pathlib import Path

from .. import distributed
from ..config import RunConfig
from ..data.batches import Encoder
from ..data.sources import Sources, load_sources
from ..errors import PulseError
from ..evaluation.attacks import COLUMNS as ATTACK_COLUMNS
from ..evaluation.attacks import attack_inputs, attacked, baseline_rows
from ..evaluation.matched import COLUMNS as MATCHED_COLUMNS
from ..evaluation.stopping import StopRule
from ..evaluation.summary import (TRAJECTORY_PREDICTION_COLUMNS, prediction_columns, summary_columns,
                                  trajectory_columns)
from ..methods.registry import make_method
from ..methods.unlearn import unsupported_under_fsdp
from ..models.load import decoder_layers, load_processor, resolve_device, resolve_dtype
from ..records import Unit
from ..runs.store import RunStore, file_fingerprint, model_fingerprint, versions
from ..runs.trackers import Trackers, check_available
from . import catalog, scenarios, verdicts
from .approaches import approach
from .checkpoints import Checkpoints, resume_key
from .context import RunContext
from .records import OPERATION_COLUMNS, TIMING_COLUMNS, Start
from .scenarios import PROBE_COLUMNS, Makers, Plan
from .suffix_search import COLUMNS as SEARCH_COLUMNS
from .suffix_search import check_search
from .trajectory import Trajectory


def run(cfg: RunConfig, out: Path, models: dict[str, Path | None], mllmu: Path, mmbench: Path,
        makers: Makers = Makers(), log=print, pebench: Path | None = None) -> RunStore:
    """Run every unit of ``cfg`` into ``out``. ``models`` holds ``base`` and optionally
    ``finetuned``; ``makers`` make the fine-tuned model when it is missing and the retrain
    oracle's models (``scenarios.Makers``); ``pebench``: the people and events of the concepts
    scenarios. Inputs are checked before anything is written."""
    catalog.checked(cfg)
    src = load_sources(mllmu, mmbench, cfg.data.mmbench_subset, cfg.seed, cfg.data.replay, pebench)
    src.files += attack_inputs(cfg.attacks, src)  # checked here: before anything is written
    plan = scenarios.plan(cfg, catalog.units(cfg), src, Path(mllmu))
    r = _open(cfg, out, src, plan, models, makers, log)
    for name in plan.scenarios:
        t0 = time.time()
        start = r.checkpoints.start(name, partial(_evaluate_start, r, name))
        _record_start(r, name, start)
        for unit in plan.units_of(name):
            done = r.checkpoints.unit(unit, len(start.sets.requests))
            work = approach(r, unit, start, done)
            r.record(work.start_result())
            for k in range(1, len(start.sets.requests) + 1):
                r.record(done.operation(k, partial(work.operate, k)), flush=work.computed)
            done.done()
        r.store.flush()
        log(f"[{name}] done in {time.time() - t0:.0f} s")
    r.store.flush()
    judged = verdicts.measured(r.store.predictions, cfg.intervals, r.store.trajectory,
                               r.store.trajectory_predictions, cfg.trajectory.compare, cfg.trajectory.sensitivity)
    r.store.write_csv("findings.csv", verdicts.decided(judged.own, cfg.intervals), verdicts.COLUMNS)
    sensitivity = verdicts.level_rows(judged, cfg.intervals)
    if sensitivity:
        r.store.write_csv("sensitivity.csv", sensitivity, verdicts.SENSITIVITY_COLUMNS)
    r.trackers.close()
    return r.store


def _open(cfg: RunConfig, out: Path, src: Sources, plan: Plan, models: dict[str, Path | None], makers: Makers,
          log) -> RunContext:
    """Check the models' processors and the trackers' packages, open the run folder (refused when
    it holds another config), make the starting models (fine-tuning where needed), write
    environment.json, open the checkpoints under a key over everything the results depend on,
    and the trackers."""
    check_available(cfg.log_with)
    for path in models.values():
        if path is not None:
            load_processor(path, cfg.model.trust_remote_code)
    _check_methods(cfg, plan.units, [p for p in models.values() if p is not None], src)
    config = cfg.model_dump(mode="json")
    config_hash = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    store = RunStore(out, config, config_hash, write=distributed.is_main(),
                     columns={"summary.csv": summary_columns(), "predictions.csv": prediction_columns(),
                              "operations.csv": OPERATION_COLUMNS, "timings.csv": TIMING_COLUMNS,
                              "trajectory.csv": trajectory_columns(), "matched.csv": MATCHED_COLUMNS,
                              "trajectory_predictions.csv": TRAJECTORY_PREDICTION_COLUMNS,
                              "attacks.csv": ATTACK_COLUMNS, "search.csv": SEARCH_COLUMNS})
    plan.start_models = scenarios.start_models(plan, src, models, makers)
    fingerprints = {"config": config_hash, "data": file_fingerprint(src.files)}
    for label, path in {**models, **plan.start_models}.items():
        if path is not None:
            fingerprints[f"model:{label}"] = model_fingerprint(path)
    env = {"versions": versions(), "fingerprints": fingerprints, "method_params": catalog.resolved_params(cfg),
           "models": {k: str(v) for k, v in {**models, **plan.start_models}.items()}}
    store.write_json("environment.json", env)
    device = resolve_device(cfg.model.device)
    key = resume_key({**env, "device": device, "dtype": str(resolve_dtype(cfg.model.dtype, device))})
    checkpoints = Checkpoints(store.folder / "resume", key, log, write=distributed.is_main())
    trackers = Trackers.open(cfg.log_with, Path(cfg.tracker_dir or store.folder / "trackers"), cfg.name, config)
    return RunContext(cfg, src, plan, store, checkpoints, log, StopRule.of(cfg.unlearn), trackers, makers)


def _check_methods(cfg: RunConfig, units: list[Unit], models: list[Path], src: Sources) -> None:
    """Each method's parameters against the models' depth, its data, and what FSDP cannot run;
    each black-box search's vocabulary."""
    for name in dict.fromkeys(u.method for u in units if not u.is_oracle):
        if catalog.is_search(name):
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


def _evaluate_start(r: RunContext, name: str) -> Start:
    """Step 0: the starting model on every split, once its scenario has selected its sets (the
    pretrained scenario probes first, and its probe's predictions are reused)."""
    model, processor = r.load(r.plan.start_models[name])
    encoder = Encoder(processor)
    if r.cfg.eval_share_prefix and encoder.prefix_sharing_blocker:
        r.log(f"[{name}] prefix sharing off: {encoder.prefix_sharing_blocker}")
    chosen = r.plan.scenarios[name].select(r.cfg, r.src, r.plan.sets.get(name), encoder, model, r.log)
    evaluate = r.evaluator(name, chosen.sets, encoder)
    preds = {split: chosen.scored[split] if split in chosen.scored else scorer(model)
             for split, scorer in evaluate.scorers.items()}
    starting = None
    if r.cfg.unlearn.eval_every is not None:  # what each operation's targets are relative to
        starting = Trajectory.starting_points(evaluate, r.cfg, chosen.sets.requests, model)
    # each attack's baseline
    attacks = baseline_rows(attacked(r.cfg.attacks, model, evaluate, preds, name, r.log, r.attacks_said))
    return Start(chosen.sets, preds, chosen.probe_rows, chosen.note, starting, attacks)


def _record_start(r: RunContext, name: str, start: Start) -> None:
    if start.probe_rows is not None:
        r.store.write_csv("probe.csv", start.probe_rows, PROBE_COLUMNS)
        if start.note:
            r.store.extra["pretrained_note"] = start.note
    r.sets_record[name] = scenarios.sets_record(start.sets)
    r.store.write_json("sets.json", r.sets_record)
    r.log(f"[{name}] forget {len(start.sets.forget)} {r.plan.scenarios[name].subjects} in "
          f"{len(start.sets.requests)} request(s), retain {len(start.sets.retain)}; start model evaluated")
