"""The two ways a unit answers a forget request, behind one interface: ``operate(k)`` turns the
unit's model so far and request k into operation k's ``Result`` (its ``Operation`` row, every
split evaluated, and what the hooks after an operation add).

- ``WeightUnlearning``: a method's loss trains a LoRA adapter on the request (``methods/unlearn.py``),
  watched along its trajectory and stopped by the run's rule; the adapter is merged (or stacked)
  and the next request starts from there.
- ``SuffixSearch``: a black-box search finds a prompt suffix from the model's answers alone
  (``suffix_search.py``); every split is then evaluated with it appended; the weights never
  change, so the attacks on the weights do not apply.
- ``Retrain``: the retrain oracle (``oracle: retrain``): operation k scores the starting model made
  again without the people of requests 1..k (``Scenario.oracle_model``), the reference for
  forgetting that leaves everything else alone. The attacks run on it as on any unit: relearning
  it measures what the attack teaches people the model never knew.

The model is loaded (and rebuilt from the adapters an interrupted run saved) only when the
first operation is computed, not read back.
"""

from __future__ import annotations

import time

from ..evaluation.collapse import answer_collapse
from ..evaluation.attacks import public
from ..evaluation.evaluator import Evaluator
from ..evaluation.stopping import BUDGET_SPENT, DIVERGED
from ..evaluation.summary import evaluation_rows
from ..methods.registry import make_method
from ..methods.unlearn import unlearn
from ..models.lora import adapter_state
from ..records import Unit, split_key
from ..runs.store import model_fingerprint
from .catalog import is_search
from .checkpoints import UnitCheckpoints, apply_adapters
from .context import RunContext
from .hooks import attack_rows, log_operation, track_operation, track_point
from .records import Operation, Result, Start
from .suffix_search import find_suffix, make_search, vocabulary
from .trajectory import Trajectory


class Approach:
    """One unit's operations that are not read back."""

    def __init__(self, r: RunContext, unit: Unit, start: Start, done: UnitCheckpoints):
        self.r, self.unit, self.start, self.done, self.model, self.computed = r, unit, start, done, None, False
        self.sets = start.sets
        if done.finished:
            r.log(f"[{unit.scenario}] {unit.method}/{unit.update}: {len(done.finished)} of "
                  f"{len(start.sets.requests)} operation(s) read back from the interrupted run")

    @property
    def evaluate(self) -> Evaluator:
        """The scenario's splits (built on first use: a unit read back whole never needs them)."""
        return self.r.evaluator(self.unit.scenario, self.sets)

    stop_label = property(lambda self: self.r.stop.label)  # summary.csv's ``stop``: the run's stopping rule

    def start_result(self) -> Result:
        """The unit's step 0: the scenario's starting model, and each attack's baseline."""
        rows = evaluation_rows(self.unit.fields, self.start.preds, self.sets.requests, 0, self.r.cfg.scoring,
                               self.stop_label, self.r.cfg.intervals)
        return Result(rows["summary"], rows["predictions"],
                      attacks=[{**self.unit.fields, "operation": 0, **row} for row in public(self.start.attacks)])

    def operate(self, k: int) -> Result:
        raise NotImplementedError

    def _result(self, k: int, model, evaluate: Evaluator, preds: dict, operation: Operation,
                weights_fixed: bool = False, **extra) -> Result:
        """Operation k's rows, the attacks after it included."""
        attacks = attack_rows(self.r, self.unit, k, k == len(self.sets.requests), model, evaluate, preds,
                              self.start.attacks, weights_fixed)
        rows = evaluation_rows(self.unit.fields, preds, self.sets.requests, k, self.r.cfg.scoring, self.stop_label,
                               self.r.cfg.intervals)
        return Result(rows["summary"], rows["predictions"], operation.row, attacks=attacks, **extra)


def approach(r: RunContext, unit: Unit, start: Start, done: UnitCheckpoints) -> Approach:
    kind = Retrain if unit.is_oracle else SuffixSearch if is_search(unit.method) else WeightUnlearning
    return kind(r, unit, start, done)


class WeightUnlearning(Approach):
    def __init__(self, r: RunContext, unit: Unit, start: Start, done: UnitCheckpoints):
        super().__init__(r, unit, start, done)
        self.previous: dict | None = None  # the last operation's predictions, when computed here
        self.forget = [r.src.facts_of(request) for request in self.sets.requests]
        # each forget fact's concept kind (person / event; a person's population elsewhere), for unlearn.balance
        self.forget_groups = [[split_key(key)[0] for key in request for _ in r.src.facts[key]]
                              for request in self.sets.requests]
        self.retain = r.src.away_from(r.src.facts_of(self.sets.retain), self.sets.forget)
        self.replay = r.src.replay_examples()
        self.method = make_method(unit.method, **r.cfg.method_params.get(unit.method, {}))
        self.stacked: list | None = None

    def _load(self) -> None:
        start = self.r.start_model(self.unit.scenario)
        if self.r.cfg.unlearn.adapters == "merge":  # the operations' adapters merged in, one after the other
            self.model = apply_adapters(start, self.done.adapters())
        else:  # stacked: the starting model never changes; the adapters are rebuilt beside it
            self.model, self.stacked = start, self.done.adapter_states()

    def _adapter_done(self, k: int, peft_model) -> None:
        self.done.save_adapter(k, peft_model)
        if self.stacked is not None:
            self.stacked.append(adapter_state(peft_model))

    def _trajectory(self, k: int) -> Trajectory | None:
        cfg = self.r.cfg
        if cfg.unlearn.eval_every is None:
            return None
        trajectory = Trajectory.of_operation(
            self.evaluate, cfg, self.unit.fields, k, self.sets.requests[k - 1], self.start.starting[k - 1],
            on_point=lambda rows: track_point(self.r, self.unit, trajectory.rows, rows))
        return trajectory

    def _evaluated(self, oplog, model) -> dict:
        """Every split on the operation's model. An operation that took no optimizer step (its
        stopping rule was met at step 0) merged an adapter whose B matrices are still zero, so
        the model is the previous operation's, weight for weight: its predictions are reused."""
        preds = self.previous if not oplog.losses and self.previous is not None else self.evaluate(model)
        self.previous = preds
        return preds

    def operate(self, k: int) -> Result:
        """Operation k: unlearn request k, evaluate every split, and the operation's record."""
        r, unit, cfg = self.r, self.unit, self.r.cfg
        if self.model is None:
            self._load()
        self.computed, t1 = True, time.time()
        trajectory = self._trajectory(k)
        model, oplog = unlearn(self.model, self.evaluate.encoder, self.method, self.forget[k - 1], self.retain,
                               unit.update, cfg.unlearn, desc=f"{unit} op {k}",
                               on_adapter=lambda peft: self._adapter_done(k, peft), monitor=trajectory,
                               stacked=list(self.stacked or ()), replay=self.replay,
                               forget_groups=self.forget_groups[k - 1])
        if self.stacked is None:
            self.model = model  # merged: the next operation starts from it
        preds = self._evaluated(oplog, model)
        collapse, losses = answer_collapse(preds), oplog.losses
        reason = trajectory.reason(oplog.diverged) if trajectory else DIVERGED if oplog.diverged else BUDGET_SPENT
        op = Operation.of(unit, k, steps=len(losses), first_loss=round(float(losses[0]), 6) if losses else "",
                          last_loss=round(float(losses[-1]), 6) if losses else "",
                          diverged_at="" if oplog.diverged_at is None else oplog.diverged_at,
                          top_answer=collapse.letter, top_share=round(collapse.share, 4),
                          collapsed=int(collapse.collapsed), stop=r.stop.stop, sees=r.stop.sees or "",
                          rule=r.stop.text, stopped_at=len(losses) - oplog.diverged, reason=reason)
        log_operation(r, unit, f"{unit.method}/{unit.update} op {k}", preds,
                      f" after {op.stopped_at} steps ({reason})"
                      + (f"  (diverged at step {oplog.diverged_at}: loss {losses[-1]})" if oplog.diverged else "")
                      + (f"  (answers collapsed: {collapse.share:.0%} {collapse.letter!r})"
                         if collapse.collapsed else ""))
        result = self._result(k, model, self.evaluate, preds, op, trajectory=trajectory.rows if trajectory else [],
                              trajectory_predictions=trajectory.item_rows if trajectory else [],
                              seconds=round(time.time() - t1, 2))
        track_operation(r, unit, result, losses)
        return result


class SuffixSearch(Approach):
    def __init__(self, r: RunContext, unit: Unit, start: Start, done: UnitCheckpoints):
        super().__init__(r, unit, start, done)
        self.search = make_search(unit.method, r.cfg)
        self.words = vocabulary(self.search.vocabulary, r.src, r.cfg.model.source == "world")

    def operate(self, k: int) -> Result:
        """Operation k: a suffix found from the model's answers to the feedback, then every split
        with it appended."""
        if self.model is None:
            self.model = self.r.start_model(self.unit.scenario)
        self.computed = True
        words, found, rows = find_suffix(self.search, self.model, self.evaluate, self.unit, k, self.words)
        suffixed = self.evaluate.with_suffix(words)
        preds = suffixed(self.model)
        collapse = answer_collapse(preds)
        op = Operation.of(self.unit, k, steps=len(rows), top_answer=collapse.letter,
                          top_share=round(collapse.share, 4), collapsed=int(collapse.collapsed), stop="budget",
                          sees="feedback", rule=f"{self.search.budget} questions", stopped_at=len(rows),
                          reason=BUDGET_SPENT, suffix=found["suffix"], queries=found["queries"])
        log_operation(self.r, self.unit, f"{self.unit.method} op {k}: suffix {op.suffix!r} after {op.queries} "
                      "questions", preds)
        return self._result(k, self.model, suffixed, preds, op, weights_fixed=True, search=rows,
                            seconds=found["seconds"])


class Retrain(Approach):
    stop_label = "retrain"  # it trains under no stopping rule

    def operate(self, k: int) -> Result:
        """Operation k: the starting model made without requests 1..k, every split evaluated."""
        self.computed, t1 = True, time.time()
        forgotten = tuple(key for request in self.sets.requests[:k] for key in request)
        path = self.r.oracle_model(self.unit.scenario, forgotten)
        model = self.r.load(path)[0]
        preds = self.evaluate(model)
        collapse = answer_collapse(preds)
        subjects = self.r.plan.scenarios[self.unit.scenario].subjects
        op = Operation.of(self.unit, k, steps=0, top_answer=collapse.letter, top_share=round(collapse.share, 4),
                          collapsed=int(collapse.collapsed), stop="retrain", sees="",
                          rule=f"trained without the {len(forgotten)} {subjects} of "
                               + (f"requests 1-{k}" if k > 1 else "request 1"),
                          reason="retrained", model=model_fingerprint(path))
        log_operation(self.r, self.unit, f"retrain oracle op {k}", preds, f" (without {len(forgotten)})")
        return self._result(k, model, self.evaluate, preds, op, seconds=round(time.time() - t1, 2))
