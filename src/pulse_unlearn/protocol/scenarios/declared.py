"""What the findings and the report know of a scenario: only what it declares. A run folder from
a scenario that is not installed here reads as a one-shot scenario of its own."""

from __future__ import annotations

from .base import SCENARIOS, Scenario


def declared(name: str) -> type[Scenario]:
    return SCENARIOS.get(name) or Scenario


def is_sequential(name: str) -> bool:
    return declared(name).sequential


def one_shot_of(name: str) -> str | None:
    """The one-shot scenario a sequential scenario's operations are compared with."""
    return declared(name).one_shot


def of_concepts(name: str) -> bool:
    return declared(name).subjects == "concepts"


def marker(name: str) -> str:
    return declared(name).marker


def with_knowledge(knowledge: str) -> str | None:
    """The one-shot scenario that forgets knowledge of that acquisition (``fine-tuned``,
    ``pre-trained``): the paper's finding 1 compares the two."""
    return next((n for n in SCENARIOS if SCENARIOS[n].knowledge == knowledge and not SCENARIOS[n].sequential), None)
