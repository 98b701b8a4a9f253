"""``pretrained``: forget pre-trained knowledge. Start from the base model; probe it on every
celebrity, keep those it knows (accuracy >= ``splits.probe_threshold`` on both modalities), and
forget ``splits.pretrained_forget`` / retain ``splits.pretrained_retain`` of them in one
operation. Its sets are known only once the starting model has been probed (``probe.csv``)."""

from __future__ import annotations

from ...core.names import ConfigProblem
from ...errors import PulseError
from ...evaluation.evaluator import demo_for, make_scorer
from ...records import split_key
from ..sets import probe, pretrained_sets
from .base import BASE, SCENARIOS, Scenario, Selected

PROBE_COLUMNS = ("id", "population", "multimodal", "text", "known", "selected")


@SCENARIOS.register
class Pretrained(Scenario):
    name = "pretrained"
    start = BASE
    knowledge = "pre-trained"
    marker = "s"

    def check_data(self, cfg, src, where) -> None:
        if len(src.celebrities) < 2:
            raise PulseError(f"{where / 'Retain_Set'}: {len(src.celebrities)} people; the pretrained scenario needs "
                             "at least 2")

    def draw(self, cfg, src, people):
        return None

    def check_oracle(self, cfg) -> None:
        if cfg.model.source != "world":
            raise ConfigProblem("oracle", "retrain in the pretrained scenario pre-trains the base model again "
                                "without the forget celebrities, which only the embedded world can "
                                "(model.source: world); leave the scenario out or set oracle: none")

    def oracle_model(self, plan, src, makers, forgotten):
        """The base model pre-trained without the ``forgotten`` celebrities' mentions."""
        if makers.pretrain is None:
            raise PulseError("the pretrained scenario's retrain oracle needs a model the run can pre-train")
        return makers.pretrain(sorted(split_key(key)[1] for key in forgotten))

    def select(self, cfg, src, drawn, encoder, model, log) -> Selected:
        """Probe the base model on every celebrity and select the known ones; the probe has
        already scored the forget and retain people's questions: step 0 reuses them."""
        questions = src.questions_of(sorted(src.celebrities))
        preds = make_scorer("choice", encoder, questions, cfg, demo=demo_for(cfg, src, questions))(model)
        result = probe(preds, cfg.splits.probe_threshold)
        sets, note = pretrained_sets(result.known, cfg.splits.pretrained_forget, cfg.splits.pretrained_retain,
                                     cfg.seed)
        rows = [{"id": split_key(pid)[1], "population": split_key(pid)[0],
                 "multimodal": round(a.get("multimodal", float("nan")), 4),
                 "text": round(a.get("text", float("nan")), 4), "known": int(pid in result.known),
                 "selected": "forget" if pid in sets.forget else "retain" if pid in sets.retain else ""}
                for pid, a in sorted(result.accuracy.items())]
        log(f"[pretrained] probe: {len(result.known)} of {len(src.celebrities)} celebrities known "
            f"(>= {result.threshold:.0%} on both modalities)" + (f"; {note}" if note else ""))
        scored = {name: [p for p in preds if p.subject in set(ids)]
                  for name, ids in (("forget", sets.forget), ("retain", sets.retain))}
        return Selected(sets, scored, rows, note)
