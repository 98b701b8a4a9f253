"""One operation's trajectory: the model evaluated at its checkpoints, and its stopping rule.

At every checkpoint (step 0, every ``unlearn.eval_every`` steps, the end) the declared
``trajectory.splits`` are scored, plus the split the stopping rule looks at. A split that is
broken down per request (the forget splits) holds only the operation's own request, so a
sequential operation's trajectory shows the people it is unlearning. ``trajectory.subset``
keeps a seeded draw of at most that many items per split, the same at every checkpoint; a
split the run's config does not evaluate (cloze items under a forward-pass scoring) is left
out. The
rows go to ``trajectory.csv``; the rule (``evaluation/stopping.py``) reads its split's rows.
"""

from __future__ import annotations

from collections.abc import Callable

from ..draws import choose
from ..evaluation.evaluator import Evaluator
from ..evaluation.splits import SPLITS, SplitContext
from ..evaluation.stopping import BUDGET_SPENT, DIVERGED, TARGET_MET, StopRule
from ..evaluation.summary import point_rows


class Trajectory:
    """The monitor of one operation (``methods.unlearn``'s ``monitor``): scores, records, decides."""

    def __init__(self, scorers: dict, rule: StopRule, label: dict, scoring: str,
                 on_point: Callable[[list[dict]], None] | None = None):
        self.scorers, self.rule, self.label, self.scoring, self.on_point = scorers, rule, label, scoring, on_point
        self.rows: list[dict] = []
        self.start: dict[str, tuple[float, float]] | None = None
        self.met = False

    @classmethod
    def of_operation(cls, evaluate: Evaluator, cfg, unit: dict, operation: int, request: tuple[str, ...],
                     on_point: Callable[[list[dict]], None] | None = None) -> Trajectory:
        """Operation ``operation`` of ``unit``, unlearning ``request``: its splits' scorers, made
        once per split and items (``Evaluator.scorer``), and the run's stopping rule."""
        rule = StopRule.of(cfg.unlearn)
        names = list(cfg.trajectory.splits)
        if rule.split and rule.split not in names:
            names.append(rule.split)
        ctx = SplitContext(cfg, evaluate.src, evaluate.sets)
        scorers, people = {}, set(request)
        for name in names:
            spec = SPLITS[name]
            if not spec.enabled(cfg) and name != rule.split:  # e.g. cloze items under a forward-pass scoring
                continue
            items = spec.items(ctx)
            if spec.per_request:
                items = [q for q in items if q.subject in people]
            if cfg.trajectory.subset is not None and len(items) > cfg.trajectory.subset:
                keep = set(choose([q.qid for q in items], cfg.trajectory.subset, cfg.seed, "trajectory"))
                items = [q for q in items if q.qid in keep]
            if items:
                scorers[name] = evaluate.scorer(name, items)
        return cls(scorers, rule, {**unit, "operation": operation}, cfg.scoring, on_point)

    def __call__(self, model, step: int, examples: int) -> bool:
        """Checkpoint ``step``: score every split, keep the rows, and whether the rule is met."""
        preds = {name: scorer(model) for name, scorer in self.scorers.items()}
        rows = [{**self.label, "step": step, "examples": examples, **row, "scoring": self.scoring}
                for row in point_rows(preds)]
        self.rows += rows
        if self.on_point is not None:
            self.on_point(rows)
        if self.rule.split is None:
            return False
        now = {r["modality"]: (r["accuracy"], r["chance"]) for r in rows if r["split"] == self.rule.split}
        if self.start is None:
            self.start = now
        self.met = self.rule.met(self.start, now)
        return self.met

    def reason(self, diverged: bool) -> str:
        """Why the operation stopped."""
        return DIVERGED if diverged else TARGET_MET if self.met else BUDGET_SPENT
