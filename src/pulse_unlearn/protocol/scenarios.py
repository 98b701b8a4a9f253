"""The three PULSE scenarios: each one's starting model and its forget / retain sets.

- ``finetuned``: start from the fine-tuned model; forget 50 / retain 50 of its 100 people;
  one operation.
- ``pretrained``: start from the base model; probe it on every celebrity, keep those it knows
  (accuracy >= threshold on both modalities), forget 20 / retain 25 of them; one operation.
  Its sets are known only once the starting model has been probed (``probe_and_select``).
- ``sequential``: the finetuned scenario's forget set in 5 disjoint requests of 10; each
  operation starts from the previous one's merged model with a fresh adapter. Its one-shot
  counterpart is the finetuned scenario (same forget set), which the config always runs
  alongside.
- ``concepts-person``, ``concepts-event``, ``concepts-both`` (PEBench: people and events shown in
  one image): start from the fine-tuned model; forget 10 people (their events kept), 2 events
  (their people kept) or both, one operation; the other concept of the forget images is the
  ``scope`` split (cross-concept interference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..config.schema import CONCEPT_SCENARIOS
from ..data.sources import Sources
from ..errors import PulseError
from ..evaluation.evaluator import demo_for, make_scorer
from ..records import CONCEPTS, Example, split_key
from . import sets as sets_module
from .sets import Sets

PROBE_COLUMNS = ("id", "population", "multimodal", "text", "known", "selected")
FINE_TUNED = {"finetuned", "sequential", *CONCEPT_SCENARIOS}  # the scenarios that start from the fine-tuned model


@dataclass
class Plan:
    """The run's units, its scenarios in order, the people the fine-tuned model learns, each
    scenario's sets (except the pretrained scenario's, drawn after probing) and starting model."""

    units: list[tuple[str, str, str]]
    scenarios: list[str]
    finetune_people: list[str] = field(default_factory=list)
    sets: dict[str, Sets] = field(default_factory=dict)
    start_models: dict[str, Path] = field(default_factory=dict)

    def units_of(self, scenario: str) -> list[dict]:
        return [{"scenario": s, "method": m, "update": u} for s, m, u in self.units if s == scenario]


def plan(cfg, src: Sources, mllmu: Path) -> Plan:
    """Check the split sizes against the data and draw the sets of people (and concepts)."""
    units = cfg.units()
    p = Plan(units, list(dict.fromkeys(s for s, _, _ in units)))
    check_sizes(cfg, src, mllmu, p.scenarios)
    sizes = cfg.splits
    if FINE_TUNED & set(p.scenarios):
        p.finetune_people = sets_module.finetune_people(
            list(src.fictitious), min(sizes.finetune_people, len(src.fictitious)), cfg.seed)
    if "finetuned" in p.scenarios or "sequential" in p.scenarios:
        p.sets["finetuned"] = sets_module.finetuned_sets(p.finetune_people, sizes.forget, cfg.seed)
        if "sequential" in p.scenarios:
            p.sets["sequential"] = sets_module.sequential_sets(p.finetune_people, sizes.forget, sizes.requests,
                                                               cfg.seed)
    for scenario in (s for s in p.scenarios if s in CONCEPT_SCENARIOS):
        c = src.concepts
        p.sets[scenario] = sets_module.concept_sets(scenario.removeprefix("concepts-"), c.keys("person"),
                                                    c.keys("event"), sizes.concept_people, sizes.concept_events,
                                                    cfg.seed)
    return p


def start_models(p: Plan, src: Sources, models: dict[str, Path | None],
                 finetune: Callable[[list[str], list[Example]], Path] | None) -> dict[str, Path]:
    """Each scenario's starting model: the base model (pretrained), the fine-tuned one (finetuned,
    sequential), made by ``finetune(ids, facts)`` on the chosen people (``ids``: their Full_Set
    IDs) where no fine-tuned model is given."""
    out: dict[str, Path] = {}
    if p.finetune_people:
        finetuned = models.get("finetuned")
        if finetuned is None:
            if finetune is None:
                raise PulseError("the finetuned and sequential scenarios need a fine-tuned model (model.finetuned)")
            finetuned = finetune([split_key(key)[1] for key in p.finetune_people], src.facts_of(p.finetune_people))
        for scenario in FINE_TUNED:
            out[scenario] = Path(finetuned)
    if "pretrained" in p.scenarios:
        out["pretrained"] = Path(models["base"])
    return out


def check_sizes(cfg, src: Sources, mllmu: Path, scenarios: list[str]) -> None:
    """Split sizes the data cannot give: said before anything runs, naming the file."""
    s = cfg.splits
    if {"finetuned", "sequential"} & set(scenarios):
        n = min(s.finetune_people, len(src.fictitious))
        if not 0 < s.forget < n:
            raise PulseError(f"{mllmu / 'Full_Set'}: {len(src.fictitious)} fictitious people; splits.forget="
                             f"{s.forget} of splits.finetune_people={s.finetune_people} must leave 1 or more to "
                             "retain")
    if "pretrained" in scenarios and len(src.celebrities) < 2:
        raise PulseError(f"{mllmu / 'Retain_Set'}: {len(src.celebrities)} people; the pretrained scenario needs "
                         "at least 2")
    if set(CONCEPT_SCENARIOS) & set(scenarios):
        check_concepts(cfg, src, [s for s in scenarios if s in CONCEPT_SCENARIOS])


def check_concepts(cfg, src: Sources, scenarios: list[str]) -> None:
    """The concepts scenarios start from the fine-tuned model, which must know every person and
    event of the PEBench-style data, and forget fewer of each than there are."""
    c, s = src.concepts, cfg.splits
    where = c.files[0].parent
    people, events = c.keys("person"), c.keys("event")
    if cfg.model.source == "world":
        learnt = {split_key(k)[1] for k in sets_module.finetune_people(
            list(src.fictitious), min(s.finetune_people, len(src.fictitious)), cfg.seed)}
        if not {k.removeprefix("person:") for k in people} <= learnt:
            raise PulseError(f"splits.finetune_people={s.finetune_people}: the concepts scenarios start from a model "
                             f"fine-tuned on every person of {where} ({len(people)}); raise it to {len(people)}")
    elif not cfg.model.finetuned:
        raise PulseError(f"the concepts scenarios start from a model that knows the people and events of {where}: "
                         "set model.finetuned")
    if any(x in scenarios for x in ("concepts-person", "concepts-both")) and not s.concept_people < len(people):
        raise PulseError(f"{where}: {len(people)} people; splits.concept_people={s.concept_people} must leave 1 or "
                         "more to retain")
    if any(x in scenarios for x in ("concepts-event", "concepts-both")) and not s.concept_events < len(events):
        raise PulseError(f"{where}: {len(events)} events; splits.concept_events={s.concept_events} must leave 1 or "
                         "more to retain")


def probe_and_select(cfg, src: Sources, encoder, model, log):
    """Probe the base model on every celebrity and select the known ones: (predictions, sets,
    probe.csv rows, a note when fewer people than asked for are known)."""
    questions = src.questions_of(sorted(src.celebrities))
    preds = make_scorer("choice", encoder, questions, cfg, demo=demo_for(cfg, src, questions))(model)
    result = sets_module.probe(preds, cfg.splits.probe_threshold)
    sets, note = sets_module.pretrained_sets(result.known, cfg.splits.pretrained_forget,
                                             cfg.splits.pretrained_retain, cfg.seed)
    rows = [{"id": split_key(pid)[1], "population": split_key(pid)[0],
             "multimodal": round(a.get("multimodal", float("nan")), 4),
             "text": round(a.get("text", float("nan")), 4), "known": int(pid in result.known),
             "selected": "forget" if pid in sets.forget else "retain" if pid in sets.retain else ""}
            for pid, a in sorted(result.accuracy.items())]
    log(f"[pretrained] probe: {len(result.known)} of {len(src.celebrities)} celebrities known "
        f"(>= {result.threshold:.0%} on both modalities)" + (f"; {note}" if note else ""))
    return preds, sets, rows, note


def sets_record(sets: Sets) -> dict:
    """A scenario's entry in sets.json: its one population and the original IDs (concepts
    scenarios: population ``concepts``, the concept keys)."""
    if all(key.partition(":")[0] in CONCEPTS for key in (*sets.forget, *sets.retain)):
        return {"population": "concepts", "forget_requests": [list(r) for r in sets.requests],
                "retain": list(sets.retain)}
    populations = {split_key(key)[0] for key in (*sets.forget, *sets.retain)}
    assert len(populations) == 1, f"a scenario's people come from one population, not {sorted(populations)}"
    return {"population": populations.pop(),
            "forget_requests": [[split_key(key)[1] for key in request] for request in sets.requests],
            "retain": [split_key(key)[1] for key in sets.retain]}
