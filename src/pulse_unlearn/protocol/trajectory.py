"""One operation's trajectory: the model evaluated at its checkpoints, and its stopping rule.

At every checkpoint (step 0, every ``unlearn.eval_every`` steps, the end) the declared
``trajectory.splits`` are scored, plus the split the stopping rule looks at. A split that is
broken down per request (the forget splits) holds only the operation's own request, so a
sequential operation's trajectory shows the people it is unlearning; a sequence's trajectories
also score all of its requests' people (``forget_sequence``, drawn like ``forget``), so that the
whole sequence can be compared at one level of forgetting, and the people of its later requests
(``forget_pending``: what unlearning one request takes from people nobody has asked to forget
yet; none in the last operation). ``trajectory.subset``
keeps a seeded draw of at most that many items per split, the same at every checkpoint; a
split the run's config does not evaluate (cloze items under a forward-pass scoring) is left
out. The
rows go to ``trajectory.csv``; the rule (``evaluation/stopping.py``) reads its split's rows.

Targets are relative to the scenario's *starting model* (``starting_accuracy``: its accuracy on
the same items, scored once per scenario by ``starting_points``), not to the operation's step 0:
a sequential request gets the target a one-shot run would give it, and a request that earlier
operations already forgot meets it at step 0 instead of chasing a fraction of what is left.
"""

from __future__ import annotations

from collections.abc import Callable

from ..draws import choose
from ..evaluation.evaluator import Evaluator
from ..evaluation.splits import SPLITS, SplitContext
from ..evaluation.stopping import BUDGET_SPENT, DIVERGED, TARGET_MET, StopRule
from ..evaluation.summary import point_rows, trajectory_prediction_rows


class Trajectory:
    """The monitor of one operation (``methods.unlearn``'s ``monitor``): scores, records, decides."""

    def __init__(self, scorers: dict, rule: StopRule, label: dict, scoring: str,
                 on_point: Callable[[list[dict]], None] | None = None, starting: dict | None = None,
                 intervals=None):
        """``starting``: (split, modality) -> the starting model's accuracy on the same items;
        without it (a trajectory on its own) the rule is relative to the first checkpoint.
        ``intervals``: the config's bootstrap settings for each point's interval."""
        self.scorers, self.rule, self.label, self.scoring, self.on_point = scorers, rule, label, scoring, on_point
        self.starting, self.intervals = starting, intervals
        self.rows: list[dict] = []
        self.item_rows: list[dict] = []  # each checkpoint's items (trajectory_predictions.csv)
        self.start: dict[str, tuple[float, float]] | None = None
        self.met = False

    @staticmethod
    def scorers_of(evaluate: Evaluator, cfg, request: tuple[str, ...]) -> dict:
        """The scorers of an operation unlearning ``request``: the declared splits and the rule's,
        made once per split and items (``Evaluator.scorer``)."""
        rule = StopRule.of(cfg.unlearn)
        names = list(cfg.trajectory.splits)
        if rule.split and rule.split not in names:
            names.append(rule.split)
        if len(evaluate.sets.requests) > 1 and "forget" in names:
            names += [s.name for s in SPLITS.values() if s.in_sequences and s.name not in names]
        ctx = SplitContext(cfg, evaluate.src, evaluate.sets)
        scorers, people, later = {}, set(request), _later(evaluate.sets.requests, request)
        for name in names:
            spec = SPLITS[name]
            if not (spec.enabled(cfg) or name == rule.split or spec.in_sequences):  # e.g. cloze items, logits scoring
                continue
            items = spec.items(ctx)
            if spec.per_request:
                items = [q for q in items if q.subject in people]
            if spec.pending:
                items = [q for q in items if q.subject in later]
            if cfg.trajectory.subset is not None and len(items) > cfg.trajectory.subset:
                keep = set(choose([q.qid for q in items], cfg.trajectory.subset, cfg.seed, "trajectory"))
                items = [q for q in items if q.qid in keep]
            if items:
                scorers[name] = evaluate.scorer(name, items)
        return scorers

    @classmethod
    def of_operation(cls, evaluate: Evaluator, cfg, unit: dict, operation: int, request: tuple[str, ...],
                     starting: list[dict] | None = None,
                     on_point: Callable[[list[dict]], None] | None = None) -> Trajectory:
        """Operation ``operation`` of ``unit``, unlearning ``request``, under the run's stopping rule;
        ``starting``: that request's ``starting_points`` rows."""
        starting = None if starting is None else {(r["split"], r["modality"]): r["accuracy"] for r in starting}
        return cls(cls.scorers_of(evaluate, cfg, request), StopRule.of(cfg.unlearn), {**unit, "operation": operation},
                   cfg.scoring, on_point, starting, cfg.intervals)

    @classmethod
    def starting_points(cls, evaluate: Evaluator, cfg, requests, model) -> list[list[dict]]:
        """Per request, the starting model scored on its operation's trajectory items: split,
        modality and accuracy rows (a split shared by every request is scored once)."""
        scored: dict[int, list] = {}
        out = []
        for request in requests:
            preds = {}
            for name, scorer in cls.scorers_of(evaluate, cfg, request).items():
                if id(scorer) not in scored:
                    scored[id(scorer)] = scorer(model)
                preds[name] = scored[id(scorer)]
            out.append([{k: row[k] for k in ("split", "modality", "accuracy")} for row in point_rows(preds)])
        return out

    def __call__(self, model, step: int, examples: int) -> bool:
        """Checkpoint ``step``: score every split, keep the rows, and whether the rule is met."""
        preds = {name: scorer(model) for name, scorer in self.scorers.items()}
        rows = [{**self.label, "step": step, "examples": examples, **row, "scoring": self.scoring}
                for row in point_rows(preds, self.intervals)]
        if self.starting is not None:
            for row in rows:
                row["starting_accuracy"] = self.starting.get((row["split"], row["modality"]), "")
        self.rows += rows
        self.item_rows += trajectory_prediction_rows(self.label, preds, step)
        if self.on_point is not None:
            self.on_point(rows)
        if self.rule.split is None:
            return False
        now = {r["modality"]: (r["accuracy"], r["chance"]) for r in rows if r["split"] == self.rule.split}
        if self.start is None:
            self.start = now if self.starting is None else {
                m: (self.starting[self.rule.split, m], chance) for m, (_, chance) in now.items()
                if (self.rule.split, m) in self.starting}
        self.met = self.rule.met(self.start, now)
        return self.met

    def reason(self, diverged: bool) -> str:
        """Why the operation stopped."""
        return DIVERGED if diverged else TARGET_MET if self.met else BUDGET_SPENT


def _later(requests, request) -> set:
    """The people of the requests after ``request`` (none where it is not one of them)."""
    own = [i for i, r in enumerate(requests) if tuple(r) == tuple(request)]
    return {pid for r in requests[own[0] + 1:] for pid in r} if own else set()
