"""Plain data shared by every layer: people, questions, training examples, a run's units.

No torch here. Images travel as PNG bytes so that records are hashable, picklable and
byte-for-byte reproducible; the model's own processor turns them into tensors later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from .core.names import unknown_name

Modality = Literal["multimodal", "text"]
MODALITIES: tuple[Modality, ...] = ("multimodal", "text")
LETTERS = ("A", "B", "C", "D")
# Scores of a generated answer against the ground truth (scoring=mllmu), as MLLMU-Bench reports them.
GENERATION_METRICS = ("rouge1", "rouge2", "rougeL", "bleu")
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."

# MLLMU-Bench's two populations: Full_Set's fictitious people (and the subsets that name them) and
# Retain_Set's celebrities. The two number their people independently, so an ID alone may name both.
Population = Literal["fictitious", "celebrity"]
POPULATIONS: tuple[Population, ...] = ("fictitious", "celebrity")
# The two kinds of concept a PEBench-style image shows (data/pebench.py); keyed ``person:ID``, ``event:ID``.
CONCEPTS = ("person", "event")


def subject_key(population: str, pid: str) -> str:
    """The name a person goes by inside a run: population and original ID, e.g. ``celebrity:0``.

    Full_Set and Retain_Set may both hold an ID ``0``; a key keeps them two people wherever IDs meet
    (sets, questions, predictions, resume records). Every key of one population shares its prefix,
    so sorting keys sorts each population exactly as its original IDs sort, and seeded draws over
    one population pick the same people as over the bare IDs."""
    if population not in POPULATIONS:
        raise ValueError(unknown_name("population", population, POPULATIONS))
    return f"{population}:{pid}"


def split_key(key: str) -> tuple[str, str]:
    """``(population, original ID)`` of a subject key, for the files a user reads. A qid begins with
    its subject's key, so it splits the same way into (population, original qid). A concept's key
    (``person:007``, ``event:E02``) splits into its kind and ID. A subject that is neither (an
    MMBench row index) has population ``""`` and stays as it is."""
    population, sep, rest = key.partition(":")
    return (population, rest) if sep and population in POPULATIONS + CONCEPTS else ("", key)


def mc_prompt(question: str, options: dict[str, str]) -> str:
    """The multiple-choice wording (LLaVA's MMBench style) used in training drills and evaluation."""
    lines = [question] + [f"{letter}. {text}" for letter, text in options.items()]
    return "\n".join(lines + [MC_INSTRUCTION])


@dataclass(frozen=True)
class Question:
    """One multiple-choice question.

    ``image`` is set exactly when ``modality == "multimodal"``; ``options`` maps the letters
    (2 to 4 of A-D, in order) to option texts and ``answer`` is one of those letters.
    ``subject`` is the person's key (``subject_key``; or the benchmark row's index) the question is
    about; a person's qids begin with that key.
    """

    qid: str
    subject: str
    modality: Modality
    question: str
    options: dict[str, str]
    answer: str
    image: bytes | None = None
    category: str = ""

    def __post_init__(self) -> None:
        if self.answer not in self.options:
            raise ValueError(f"question {self.qid}: answer {self.answer!r} is not among options {list(self.options)}")
        if (self.image is not None) != (self.modality == "multimodal"):
            must = "must" if self.modality == "multimodal" else "must not"
            raise ValueError(f"question {self.qid}: a {self.modality} question {must} have an image")


@dataclass(frozen=True)
class OpenQuestion:
    """A free-answer item of MLLMU-Bench: ``task`` is ``cloze`` (Mask_Task: the question holds a
    blank "__" and ``answer`` fills it) or ``generation`` (Generation_Task: ``answer`` is the
    ground-truth sentence). ``image`` is set exactly for multimodal items."""

    qid: str
    subject: str
    modality: Modality
    task: Literal["cloze", "generation"]
    question: str
    answer: str
    image: bytes | None = None


@dataclass(frozen=True)
class Example:
    """One training item: the model sees ``prompt`` (and ``image``) and learns ``answer`` only."""

    prompt: str
    answer: str
    image: bytes | None = None
    source: str = ""


# The retrain oracle's unit: its method and update names (protocol/approaches.py). No method or search
# may be registered under ORACLE.
ORACLE, ORACLE_UPDATE = "retrain", "none"


class Unit(NamedTuple):
    """One cell of a run's grid: a scenario, a method (a weight-unlearning method or a black-box
    search) and an update strategy. Every result row starts with its three fields."""

    scenario: str
    method: str
    update: str

    @property
    def fields(self) -> dict[str, str]:
        return self._asdict()

    def __str__(self) -> str:
        return f"{self.scenario}/{self.method}/{self.update}"

    @property
    def is_oracle(self) -> bool:
        return self.method == ORACLE


@dataclass(frozen=True)
class Person:
    """One profile as MLLMU-Bench holds it: a face, a biography and questions about them.
    ``id`` is the original ID, unique within its ``population`` only; ``key`` is unique in a run."""

    id: str
    population: Population
    name: str  # may be empty: MLLMU-Bench has no name column
    image: bytes
    biography: str
    questions: tuple[Question, ...]
    test_images: tuple[bytes, ...] = ()
    facts: tuple[Example, ...] = ()  # fine-tuning QA pairs (ft_Data ``metadata``)
    open_questions: tuple[OpenQuestion, ...] = ()  # Mask_Task (cloze) and Generation_Task items
    attributes: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        return subject_key(self.population, self.id)

    def questions_of(self, modality: Modality) -> list[Question]:
        return [q for q in self.questions if q.modality == modality]
