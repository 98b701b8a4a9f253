"""The protocol's records: what a scenario's step 0 holds (``Start``), one unlearning operation's
row in ``operations.csv`` (``Operation``, one schema for every approach: a column that does not
apply stays empty), and what an evaluation adds to the run's tables (``Result``), which is also
what ``resume/`` keeps of it. An operation's wall time is not a result: it goes to
``timings.csv``, so that the results of a resumed run are byte for byte those of a whole one."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ..records import Unit
from .sets import Sets


@dataclass
class Start:
    """A scenario's step 0: its sets, the starting model's predictions, the probe (pretrained), and
    with trajectories the starting model on each request's trajectory items (``Trajectory.starting_points``)."""

    sets: Sets
    preds: dict[str, list]  # split -> predictions of any kind
    probe_rows: list[dict] | None = None
    note: str | None = None
    starting: list[list[dict]] | None = None
    attacks: list[dict] = field(default_factory=list)  # the attacks' baseline rows (``evaluation/attacks``)


@dataclass(frozen=True)
class Operation:
    """Operation ``operation`` of a unit: how long it ran, how it stopped, whether its model's
    answers collapsed; a weight unlearning's losses, a suffix search's suffix and questions asked,
    the retrain oracle's model. ``""``: does not apply."""

    scenario: str
    method: str
    update: str
    operation: int
    steps: int
    first_loss: float | str = ""
    last_loss: float | str = ""
    diverged_at: int | str = ""
    top_answer: str = ""
    top_share: float = 0.0
    collapsed: int = 0
    stop: str = ""
    sees: str = ""
    rule: str = ""
    stopped_at: int = 0
    reason: str = ""
    suffix: str = ""
    queries: int | str = ""
    model: str = ""  # the fingerprint of a model made for the operation (the retrain oracle's)

    @classmethod
    def of(cls, unit: Unit, k: int, **values) -> Operation:
        return cls(*unit, operation=k, **values)

    @property
    def row(self) -> dict:
        return asdict(self)


OPERATION_COLUMNS = tuple(f.name for f in fields(Operation))
TIMING_COLUMNS = ("scenario", "method", "update", "operation", "seconds")


@dataclass
class Result:
    """One evaluation's rows for the run's tables (step 0 of a unit, or an operation and what
    followed it), as they are written and as ``resume/`` keeps them."""

    summary: list[dict]
    predictions: list[dict]
    operation: dict | None = None  # ``Operation.row``
    trajectory: list[dict] = field(default_factory=list)
    trajectory_predictions: list[dict] = field(default_factory=list)  # the checkpoints' items
    attacks: list[dict] = field(default_factory=list)
    search: list[dict] = field(default_factory=list)
    seconds: float | None = None  # the operation's wall time (timings.csv)

    @classmethod
    def from_json(cls, obj: dict) -> Result:
        return cls(**{f.name: obj[f.name] for f in fields(cls) if f.name in obj})

    def to_json(self) -> dict:
        return asdict(self)
