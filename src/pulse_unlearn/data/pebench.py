"""Read a PEBench-style folder: people and events shown together in images (arXiv 2503.12545).

PEBench's own release is not read here: its layout is not confirmed from its files. This is the
layout pulse-unlearn reads (and the embedded world writes, ``world/build.py: write_pebench``):

    PEBench/
      concepts.csv      concept (person | event), id, name: one row per person and per event
      images/           the images the questions and facts name (any format PIL reads)
      questions.jsonl   one multiple-choice question per line:
                        qid, image ("" for text-only), person, event (ids; "" where none),
                        concept (which of the two it asks about), question, A, B[, C, D], answer,
                        category
      facts.jsonl       one training fact per line: image, person, event, concept, question, answer

A question or fact with an image names both concepts of that image (its person and its event);
a text-only one names only the concept it is about. Every problem is reported as one line naming
the file and line.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import PulseError
from ..records import CONCEPTS, LETTERS, Example, Question
QUESTION_FIELDS = ("qid", "image", "person", "event", "concept", "question", "A", "B", "answer")
FACT_FIELDS = ("image", "person", "event", "concept", "question", "answer")


def concept_key(concept: str, cid: str) -> str:
    """The name a person or an event goes by in a run: ``person:007``, ``event:E02``."""
    return f"{concept}:{cid}"


@dataclass(frozen=True)
class ConceptFact:
    """One training fact: the concept it teaches, the example, and its image file ("" text-only)."""

    about: str
    example: Example
    image: str


@dataclass
class ConceptData:
    """A PEBench-style folder, read: names and questions by concept key, the training facts, and
    what each image shows (``shows``: image file -> (person key, event key))."""

    names: dict[str, str]
    questions: list[Question]
    facts: list[ConceptFact]
    shows: dict[str, tuple[str, str]]
    question_image: dict[str, str] = field(default_factory=dict)  # qid -> image file ("" text-only)
    files: list[Path] = field(default_factory=list)
    by_bytes: dict[bytes, tuple[str, str]] = field(default_factory=dict)  # image bytes -> (person, event)
    about: dict[str, list[Question]] = field(default_factory=dict)  # concept key -> its questions

    def __post_init__(self):
        for q in self.questions:
            self.about.setdefault(q.subject, []).append(q)

    def keys(self, concept: str) -> list[str]:
        return sorted(k for k in self.names if k.startswith(f"{concept}:"))

    def shown_with(self, image: bytes | None) -> tuple[str, ...]:
        """The concepts an image shows (its person and its event); none for a text-only item."""
        return self.by_bytes.get(image, ()) if image is not None else ()

    def facts_with(self, people: set[str]) -> list[Example]:
        """The facts a model learning ``people`` (person keys) is trained on: those about them,
        those of the images they are in, and every event's by name, in file order."""
        return [f.example for f in self.facts
                if f.about in people or (self.shows[f.image][0] in people if f.image else f.about.startswith("event:"))]


def load_pebench(folder: Path) -> ConceptData:
    folder = Path(folder)
    if not folder.is_dir():
        raise PulseError(f"{folder}: PEBench-style folder not found")
    names = _concepts(folder / "concepts.csv")
    images: dict[str, bytes] = {}
    shows: dict[str, tuple[str, str]] = {}
    questions, question_image, seen = [], {}, set()
    path = folder / "questions.jsonl"
    for n, row in _jsonl(path, QUESTION_FIELDS):
        where = f"{path}:{n}"
        about, image = _concepts_of(row, names, where, folder, images, shows)
        options = {k: str(row[k]) for k in LETTERS if row.get(k) not in (None, "")}
        if row["answer"] not in options:
            raise PulseError(f"{where}: answer {row['answer']!r} is not among the options {list(options)}")
        if row["qid"] in seen:
            raise PulseError(f"{where}: qid {row['qid']!r} appears twice")
        seen.add(row["qid"])
        qid = f"{about}/{row['qid']}"  # a qid begins with its subject's key, as a person's do
        questions.append(Question(qid=qid, subject=about,
                                  modality="multimodal" if image is not None else "text",
                                  question=str(row["question"]), options=options, answer=row["answer"],
                                  image=image, category=str(row.get("category", ""))))
        question_image[qid] = row["image"]
    facts = []
    path = folder / "facts.jsonl"
    for n, row in _jsonl(path, FACT_FIELDS):
        about, image = _concepts_of(row, names, f"{path}:{n}", folder, images, shows)
        example = Example(str(row["question"]), str(row["answer"]), image, f"pebench_{row['concept']}")
        facts.append(ConceptFact(about, example, row["image"] or ""))
    if not questions:
        raise PulseError(f"{folder / 'questions.jsonl'}: no questions")
    files = [folder / "concepts.csv", folder / "questions.jsonl", folder / "facts.jsonl"]
    files += sorted(folder / name for name in images)
    by_bytes: dict[bytes, tuple[str, str]] = {}
    for name, data in images.items():
        if by_bytes.setdefault(data, shows[name]) != shows[name]:
            raise PulseError(f"{folder / name}: the same image as another one that shows other concepts")
    return ConceptData(names, questions, facts, shows, question_image, files, by_bytes)


def _concepts(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise PulseError(f"{path}: not found (concept, id, name per person and event)")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows or any(c not in rows[0] for c in ("concept", "id", "name")):
        raise PulseError(f"{path}: needs the columns concept, id, name and one row or more")
    names: dict[str, str] = {}
    for n, row in enumerate(rows, start=2):
        if row["concept"] not in CONCEPTS:
            raise PulseError(f"{path}:{n}: concept {row['concept']!r} is not one of {', '.join(CONCEPTS)}")
        key = concept_key(row["concept"], row["id"])
        if key in names:
            raise PulseError(f"{path}:{n}: {row['concept']} {row['id']!r} appears twice")
        names[key] = row["name"]
    return names


def _jsonl(path: Path, required: tuple[str, ...]):
    if not path.is_file():
        raise PulseError(f"{path}: not found")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise PulseError(f"{path}:{n}: not JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise PulseError(f"{path}:{n}: not a JSON object")
            missing = [k for k in required if k not in row]
            if missing:
                raise PulseError(f"{path}:{n}: missing field(s) {', '.join(missing)}")
            yield n, row


def _concepts_of(row: dict, names: dict[str, str], where: str, folder: Path, images: dict[str, bytes],
                 shows: dict[str, tuple[str, str]]) -> tuple[str, bytes | None]:
    """The concept key the row is about and its image's bytes (None: text-only), checked: the
    ids are known, an image names both its concepts, and always the same two."""
    concept = row["concept"]
    if concept not in CONCEPTS:
        raise PulseError(f"{where}: concept {concept!r} is not one of {', '.join(CONCEPTS)}")
    keys = {c: concept_key(c, str(row[c])) for c in CONCEPTS if row[c] not in (None, "")}
    for c, key in keys.items():
        if key not in names:
            raise PulseError(f"{where}: {c} {row[c]!r} is not in concepts.csv")
    if concept not in keys:
        raise PulseError(f"{where}: asks about the {concept} but names none")
    file = row["image"] or ""
    if not file:
        return keys[concept], None
    if len(keys) != 2:
        raise PulseError(f"{where}: an image row names its person and its event")
    pair = (keys["person"], keys["event"])
    if shows.setdefault(file, pair) != pair:
        raise PulseError(f"{where}: image {file} shows {shows[file][0]} and {shows[file][1]} elsewhere, not "
                         f"{pair[0]} and {pair[1]}")
    if file not in images:
        path = folder / file
        if not path.is_file():
            raise PulseError(f"{where}: image {file} not found")
        data = path.read_bytes()
        try:
            Image.open(io.BytesIO(data))  # reads the header only
        except (UnidentifiedImageError, OSError):
            raise PulseError(f"{where}: image {file} is not a readable image") from None
        images[file] = data
    return keys[concept], images[file]
