"""Read MLLMU-Bench parquet folders (real or the synthetic world's) into records.

A subset is a folder of ``train-*.parquet`` shards (the hub layout: ``Full_Set/``,
``Retain_Set/``, ``Test_Set/``, ``forget_5/`` ... ``retain_95/``, ``ft_Data/``), read in name
order and joined row by row; every shard must hold the subset's columns. ``ft_Data`` holds
the fine-tuning QA pairs in ``metadata`` (a JSON list); the other subsets do not, so facts
are joined to people by ``ID``. Every problem is one ``PulseError`` line naming the file.

Retain_Set holds celebrities; every other subset names Full_Set's fictitious people. The two
number their people independently, so a loaded person carries its population and its questions
name it by its subject key (``records.subject_key``); ``load_facts`` and ``load_test_images``
keep the file's own IDs (all fictitious).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..errors import PulseError
from ..records import LETTERS, Example, OpenQuestion, Person, Population, Question, subject_key

PROFILE_COLUMNS = ("ID", "biography", "Classification_Task")
MODALITY_KEYS = (("multimodal", "Image_Textual_Questions"), ("text", "Pure_Text_Questions"))
OPEN_TASKS = (("cloze", "Mask_Task"), ("generation", "Generation_Task"))


def population_of(subset: str) -> Population:
    """Whom a subset's IDs name: Retain_Set's celebrities, or (every other subset) Full_Set's
    fictitious people."""
    return "celebrity" if subset == "Retain_Set" else "fictitious"


def shards(root: Path, subset: str) -> list[Path]:
    """A subset's parquet shards in name order: ``train-*.parquet``, else any ``*.parquet``."""
    folder = Path(root) / subset
    if not folder.is_dir():
        raise PulseError(f"{folder}: no such MLLMU-Bench subset folder")
    found = sorted(folder.glob("train-*.parquet")) or sorted(folder.glob("*.parquet"))
    if not found:
        raise PulseError(f"{folder}: no train-*.parquet shards for MLLMU-Bench subset {subset!r}")
    return found


def _read_shard(path: Path, columns=None):
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, columns=columns)
    except Exception as e:  # pyarrow raises several types for broken files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise PulseError(f"{path}: cannot read parquet ({msg})") from None


def read_rows(root: Path, subset: str, required=(), columns=None) -> list[dict]:
    """Every row of every shard, in order, as dicts; each shard must hold ``required``."""
    rows: list[dict] = []
    for path in shards(root, subset):
        table = _read_shard(path, columns)
        _require(table, required, str(path))
        rows += table.to_pylist()
    if not rows:
        raise PulseError(f"{Path(root) / subset}: subset {subset!r} is empty")
    return rows


def read_subset(root: Path, subset: str):
    """All shards of one subset as one pyarrow table (column types unified across shards)."""
    import pyarrow as pa

    tables = [_read_shard(p) for p in shards(root, subset)]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise PulseError(f"{Path(root) / subset}: shards do not share one schema ({str(e).splitlines()[0]})") from None


def _require(table, columns, where: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise PulseError(f"{where}: missing column(s) {', '.join(missing)}")


def _image_bytes(cell, where: str, root: Path | None = None) -> bytes:
    """A cell's image bytes; a cell with only a ``path`` (the datasets Image layout) is read from
    that file, which must lie inside the data root. Bytes that are not an image are refused."""
    import io

    from PIL import Image, UnidentifiedImageError

    data = cell.get("bytes") if isinstance(cell, dict) else cell
    if not data and isinstance(cell, dict) and cell.get("path") and root is not None:
        base = Path(root).resolve()
        path = (base / cell["path"]).resolve()
        if not path.is_relative_to(base):
            raise PulseError(f"{where}: image path {cell['path']!r} escapes the data root {base}")
        if not path.is_file():
            raise PulseError(f"{where}: image file {path} not found")
        data = path.read_bytes()
    if not data:
        raise PulseError(f"{where}: image has no bytes")
    try:
        Image.open(io.BytesIO(data))  # reads the header only
    except (UnidentifiedImageError, OSError, TypeError):
        raise PulseError(f"{where}: image bytes are not a readable image") from None
    return data


def _modality(kind) -> str:
    return "text" if str(kind or "").replace(" ", "_").lower() == "pure_text" else "multimodal"


def _questions(pid: str, subject: str, task: dict, image: bytes, where: str) -> tuple[Question, ...]:
    out = []
    for modality, key in MODALITY_KEYS:
        for i, item in enumerate(task.get(key) or []):
            options = {k: v for k, v in (item.get("Options") or {}).items() if k in LETTERS and v not in (None, "")}
            answer = str(item.get("Correct_Answer", "")).strip()
            if answer not in options:  # some releases store the option text, not the letter
                answer = next((k for k, v in options.items() if v == answer), answer)
            if answer not in options:
                raise PulseError(f"{where}: person {pid} {key}[{i}]: "
                                 f"Correct_Answer {answer!r} is not among the options")
            out.append(Question(qid=f"{subject}/{modality}/{i}", subject=subject, modality=modality,
                                question=item["Question"], options=options, answer=answer,
                                image=image if modality == "multimodal" else None))
    return tuple(out)


def _open_questions(pid: str, subject: str, row: dict, image: bytes, where: str) -> tuple[OpenQuestion, ...]:
    """Mask_Task (cloze) and Generation_Task items; ``Type`` says the modality."""
    out = []
    for task, column in OPEN_TASKS:
        for i, item in enumerate(row.get(column) or []):
            question, truth = item.get("Question"), item.get("Ground_Truth")
            if not question or truth in (None, ""):
                raise PulseError(f"{where}: person {pid} {column}[{i}]: needs Question and Ground_Truth")
            modality = _modality(item.get("Type"))
            out.append(OpenQuestion(qid=f"{subject}/{task}/{i}", subject=subject, modality=modality, task=task,
                                    question=str(question), answer=str(truth),
                                    image=image if modality == "multimodal" else None))
    return tuple(out)


def _generation_facts(row: dict, image: bytes) -> tuple[Example, ...]:
    """Open QA about the person (Generation_Task, and the free ``question``/``answer`` pair):
    the unlearning data for people without ft_Data."""
    facts = [Example(item["Question"], item["Ground_Truth"], image if _modality(item.get("Type")) == "multimodal"
                     else None, "generation") for item in row.get("Generation_Task") or []]
    if row.get("question") and row.get("answer"):
        facts.append(Example(row["question"], row["answer"], None, "qa"))
    return tuple(facts)


def load_people(root: Path, subset: str) -> list[Person]:
    """One Person per row (over all shards), with its multiple-choice questions split by
    modality and its cloze/generation items; its population is the subset's (``population_of``)."""
    out, population = [], population_of(subset)
    for path in shards(root, subset):
        table = _read_shard(path)
        where = str(path)
        _require(table, PROFILE_COLUMNS, where)
        image_column = "image" if "image" in table.column_names else "images"
        _require(table, (image_column,), where)
        for row in table.to_pylist():
            pid = str(row["ID"])
            subject = subject_key(population, pid)
            try:
                if image_column == "images":
                    images = [_image_bytes(c, f"{where}: person {pid}", root) for c in row["images"] or []]
                    if not images:
                        raise PulseError(f"{where}: person {pid} has no images")
                    image, tests = images[0], tuple(images)
                else:
                    image, tests = _image_bytes(row["image"], f"{where}: person {pid}", root), ()
                out.append(Person(id=pid, population=population, name="", image=image,
                                  biography=row["biography"] or "",
                                  questions=_questions(pid, subject, row["Classification_Task"] or {}, image, where),
                                  test_images=tests, facts=_generation_facts(row, image),
                                  open_questions=_open_questions(pid, subject, row, image, where)))
            except (KeyError, TypeError, AttributeError, ValueError) as e:  # a field of the wrong shape
                raise PulseError(f"{where}: person {pid}: malformed row ({type(e).__name__}: {e})") from None
    if not out:
        raise PulseError(f"{Path(root) / subset}: subset {subset!r} is empty")
    seen: set[str] = set()
    for p in out:
        if p.id in seen:
            raise PulseError(f"{Path(root) / subset}: duplicate ID {p.id!r}")
        seen.add(p.id)
    return out


def load_test_images(root: Path) -> dict[str, tuple[bytes, ...]]:
    """Test_Set's image lists (transformed and pose images of each fictitious person) by ID."""
    out: dict[str, tuple[bytes, ...]] = {}
    for path in shards(root, "Test_Set"):
        table = _read_shard(path, None)
        _require(table, ("ID", "images"), str(path))
        for pid, cells in zip(table.column("ID").to_pylist(), table.column("images").to_pylist()):
            images = tuple(_image_bytes(c, f"{path}: person {pid}", root) for c in cells or [])
            if not images:
                raise PulseError(f"{path}: person {pid} has no images")
            out[str(pid)] = images
    return out


def load_facts(root: Path) -> dict[str, list[Example]]:
    """ft_Data's QA pairs per person ID. A pair is shown with the person's image unless its
    (optional) ``Type`` says ``Pure_Text``."""
    facts: dict[str, list[Example]] = {}
    for path in shards(root, "ft_Data"):
        table = _read_shard(path)
        where = str(path)
        _require(table, ("ID", "image", "metadata"), where)
        for row in table.to_pylist():
            pid = str(row["ID"])
            try:
                pairs = json.loads(row["metadata"]) if isinstance(row["metadata"], str) else row["metadata"]
            except json.JSONDecodeError as e:
                raise PulseError(f"{where}: person {pid}: metadata is not JSON ({e})") from None
            if not isinstance(pairs, list) or not all(isinstance(p, dict) and "Question" in p and "Answer" in p
                                                      for p in pairs):
                raise PulseError(f"{where}: person {pid}: metadata must be a list of {{Question, Answer}} pairs")
            image = _image_bytes(row["image"], f"{where}: person {pid}", root)
            facts.setdefault(pid, []).extend(
                Example(p["Question"], str(p["Answer"]), None if _modality(p.get("Type")) == "text" else image, "ft")
                for p in pairs)
    return facts


def subset_ids(root: Path, subset: str) -> list[str]:
    """The IDs of a subset, read from the ID column only (cheap)."""
    return [str(x) for path in shards(root, subset) for x in _read_shard(path, ["ID"]).column("ID").to_pylist()]


def check_layout(root: Path, full_ids, ft_ids=None) -> list[str]:
    """Check the benchmark's own splits against Full_Set: ``forget_N`` holds N% of Full_Set's
    people and ``retain_(100-N)`` the rest, disjoint; Test_Set and ft_Data people are Full_Set
    people. Raises a PulseError on the first problem; returns the subsets checked."""
    root, full = Path(root), set(full_ids)
    checked = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        m = re.fullmatch(r"forget_(\d+)", folder.name)
        if not m:
            continue
        pct = int(m.group(1))
        forget = subset_ids(root, folder.name)
        want = round(len(full) * pct / 100)
        if len(forget) != want:
            raise PulseError(f"{folder}: {len(forget)} people, expected {pct}% of Full_Set's {len(full)} = {want}")
        if not set(forget) <= full:
            raise PulseError(f"{folder}: ID {sorted(set(forget) - full)[0]!r} is not in Full_Set")
        retain_dir = root / f"retain_{100 - pct}"
        if retain_dir.is_dir():
            retain = subset_ids(root, retain_dir.name)
            if set(forget) & set(retain):
                raise PulseError(f"{retain_dir}: shares ID {sorted(set(forget) & set(retain))[0]!r} with {folder.name}")
            if set(forget) | set(retain) != full or len(retain) != len(full) - want:
                raise PulseError(f"{retain_dir}: {len(retain)} people; with {folder.name} it must make up Full_Set "
                                 f"({len(full) - want} people)")
            checked.append(retain_dir.name)
        checked.append(folder.name)
    for subset, ids in (("Test_Set", None), ("ft_Data", ft_ids)):
        if not (root / subset).is_dir():
            continue
        ids = subset_ids(root, subset) if ids is None else list(ids)
        stray = sorted(set(ids) - full)
        if stray and subset == "Test_Set":
            raise PulseError(f"{root / subset}: ID {stray[0]!r} is not in Full_Set")
        checked.append(subset)
    return checked
