"""What every scenario of a run shares: its inputs, plan, results, checkpoints, stopping rule,
trackers, and each scenario's evaluator (its splits, encoded once)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig
from ..data.batches import Encoder
from ..data.sources import Sources
from ..evaluation.evaluator import Evaluator
from ..evaluation.matched import matched_rows
from ..evaluation.stopping import StopRule
from ..models.load import load_model, load_processor
from ..runs.store import RunStore
from ..runs.trackers import Trackers
from .checkpoints import Checkpoints
from .records import TIMING_COLUMNS, Result
from .scenarios import Makers, Plan
from .sets import Sets


@dataclass
class RunContext:
    cfg: RunConfig
    src: Sources
    plan: Plan
    store: RunStore
    checkpoints: Checkpoints
    log: Callable
    stop: StopRule
    trackers: Trackers
    makers: Makers = field(default_factory=Makers)
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

    def start_model(self, scenario: str):
        return self.load(self.plan.start_models[scenario])[0]

    def oracle_model(self, scenario: str, forgotten: tuple[str, ...]) -> Path:
        """The scenario's starting model made again without ``forgotten`` (the retrain oracle)."""
        return self.plan.scenarios[scenario].oracle_model(self.plan, self.src, self.makers, forgotten)

    def record(self, result: Result, flush: bool = False) -> None:
        """Append an evaluation's rows (and its operation's, if any) to the run's results."""
        s = self.store
        s.summary += result.summary
        s.predictions += result.predictions
        if result.operation:
            s.operations.append(result.operation)
            s.timings.append({**{k: result.operation[k] for k in TIMING_COLUMNS[:-1]}, "seconds": result.seconds})
        s.attacks += result.attacks
        s.search += result.search
        if result.trajectory:
            s.trajectory += result.trajectory
            s.trajectory_predictions += result.trajectory_predictions
            s.matched += matched_rows(result.trajectory, self.cfg.trajectory.compare,
                                      items=result.trajectory_predictions, intervals=self.cfg.intervals)
        if flush:
            s.flush()
