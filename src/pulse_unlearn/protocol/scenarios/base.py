"""What a scenario is: a registered component that declares its starting model, draws its sets,
and checks its split sizes (against the config when it is loaded, against the data when they are
read). Other packages add scenarios through the entry-point group ``pulse_unlearn.scenarios``.

Nothing outside a scenario's own file compares scenario names: the runner asks the scenario, and
the report reads the attributes it declares (``sequential``, ``one_shot``, ``knowledge``,
``subjects``, ``marker``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ...core.names import ConfigProblem
from ...core.registry import Registry
from ...data.sources import Sources
from ...draws import finetune_people
from ...errors import PulseError
from ...records import CONCEPTS, Unit, split_key
from ..sets import Sets

SCENARIOS: Registry[type[Scenario]] = Registry("scenario", "pulse_unlearn.scenarios")
FINETUNED, BASE = "finetuned", "base"  # the two starting models a scenario may declare


@dataclass(frozen=True)
class Makers:
    """How a run makes the models it is not given. ``finetune(ids, facts, passes_of=None)``: the base
    model fine-tuned on those fictitious people (``ids``: Full_Set IDs; ``passes_of``: the people the
    recipe's length is set for, so fewer people get as many passes each). ``pretrain(without)``:
    the base model pre-trained without those celebrities (Retain_Set IDs), only where the run can
    pre-train (the embedded world); None elsewhere."""

    finetune: Callable | None = None
    pretrain: Callable | None = None


@dataclass(frozen=True)
class Selected:
    """A scenario's sets as known once its starting model is loaded: the sets, predictions it
    already made on splits (reused as step 0's), ``probe.csv``'s rows and a note (the pretrained
    scenario's probe; none elsewhere)."""

    sets: Sets
    scored: dict[str, list] = field(default_factory=dict)
    probe_rows: list[dict] | None = None
    note: str | None = None


class Scenario:
    """A PULSE scenario. ``start``: the model it starts from (``finetuned``: the model fine-tuned
    on the run's fictitious people; ``base``: the pre-trained model). ``companion``: a scenario
    every unit of this one brings along with the same method and update (the sequential
    scenario's one-shot counterpart). ``group``: a grid shorthand that stands for every
    scenario of the group. The report reads ``sequential`` (several requests: per-operation
    plots), ``one_shot`` (the scenario its operations are compared with), ``knowledge``
    (``fine-tuned`` or ``pre-trained``: the paper's finding 1), ``subjects`` and ``marker``."""

    name: ClassVar[str]
    start: ClassVar[str] = FINETUNED
    companion: ClassVar[str | None] = None
    group: ClassVar[str | None] = None
    subjects: ClassVar[str] = "people"
    sequential: ClassVar[bool] = False
    one_shot: ClassVar[str | None] = None
    knowledge: ClassVar[str | None] = None
    marker: ClassVar[str] = "D"

    def check_config(self, cfg) -> None:
        """Split sizes that contradict each other whatever the data: ``ConfigProblem(key, message)``."""

    def check_data(self, cfg, src: Sources, where: Path) -> None:
        """Split sizes the data cannot give: a ``PulseError`` naming the file (``where``: the
        MLLMU-Bench folder)."""

    def draw(self, cfg, src: Sources, people: list[str]) -> Sets | None:
        """The sets, drawn before the starting model is loaded (``people``: those the fine-tuned
        model learns), or None when they are known only at the start (``select``)."""
        raise NotImplementedError

    def select(self, cfg, src: Sources, drawn: Sets | None, encoder, model, log) -> Selected:
        """The sets at the start, with the starting model at hand: by default the drawn ones."""
        return Selected(drawn)

    def check_oracle(self, cfg) -> None:
        """``oracle: retrain`` where this scenario cannot make its starting model again without
        some of its people: a ``ConfigProblem``. By default it cannot."""
        raise ConfigProblem("oracle", f"the {self.name} scenario has no retrain oracle; set oracle: none "
                            "or leave the scenario out")

    def oracle_model(self, plan: Plan, src: Sources, makers: Makers, forgotten: tuple[str, ...]) -> Path:
        """The starting model made again, by the same recipe, without the ``forgotten`` subjects."""
        raise PulseError(f"the {self.name} scenario has no retrain oracle")


def scenario(name: str) -> Scenario:
    return SCENARIOS[name]()


def finetune_count(cfg, src: Sources) -> int:
    return min(cfg.splits.finetune_people, len(src.fictitious))


@dataclass
class Plan:
    """The run's units, its scenarios in order, the people the fine-tuned model learns, each
    scenario's drawn sets (those known before the start) and its starting model."""

    units: list[Unit]
    scenarios: dict[str, Scenario]
    finetune_people: list[str] = field(default_factory=list)
    sets: dict[str, Sets] = field(default_factory=dict)
    start_models: dict[str, Path] = field(default_factory=dict)

    def units_of(self, name: str) -> list[Unit]:
        return [u for u in self.units if u.scenario == name]


def plan(cfg, units: list[Unit], src: Sources, mllmu: Path) -> Plan:
    """Check the split sizes against the data and draw the sets of people (and concepts)."""
    p = Plan(units, {name: scenario(name) for name in dict.fromkeys(u.scenario for u in units)})
    for s in p.scenarios.values():
        s.check_data(cfg, src, mllmu)
    if any(s.start == FINETUNED for s in p.scenarios.values()):
        p.finetune_people = finetune_people(list(src.fictitious), finetune_count(cfg, src), cfg.model.world_seed)
    for name, s in p.scenarios.items():
        drawn = s.draw(cfg, src, p.finetune_people)
        if drawn is not None:
            p.sets[name] = drawn
    return p


def start_models(p: Plan, src: Sources, models: dict[str, Path | None], makers: Makers) -> dict[str, Path]:
    """Each scenario's starting model: the base model, or the fine-tuned one, made by
    ``makers.finetune`` on the chosen people where no fine-tuned model is given."""
    out: dict[str, Path] = {}
    finetuned = models.get("finetuned")
    if p.finetune_people and finetuned is None:
        if makers.finetune is None:
            raise PulseError("the scenarios that start from the fine-tuned model need one (model.finetuned)")
        finetuned = makers.finetune([split_key(key)[1] for key in p.finetune_people],
                                    src.facts_of(p.finetune_people))
    for name, s in p.scenarios.items():
        out[name] = Path(finetuned if s.start == FINETUNED else models["base"])
    return out


def check_config(cfg, names: list[str]) -> None:
    """Every scenario of the grid checks the config's split sizes and, with ``oracle: retrain``,
    that it can make its retrain oracle (``ConfigProblem``)."""
    for name in names:
        scenario(name).check_config(cfg)
        if cfg.oracle == "retrain":
            scenario(name).check_oracle(cfg)


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


__all__ = ["BASE", "ConfigProblem", "FINETUNED", "Makers", "Plan", "SCENARIOS", "Scenario", "Selected", "check_config",
           "finetune_count", "plan", "scenario", "sets_record", "start_models"]
