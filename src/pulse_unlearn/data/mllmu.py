"""Read MLLMU-Bench parquet folders (real or the synthetic world's) into records.

A subset is a folder of ``train-*.parquet`` shards, read in name order. ``ft_Data`` holds
the fine-tuning QA pairs in ``metadata`` (a JSON list); the other subsets do not, so facts
are joined to people by ``ID``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import PulseError
from ..records import LETTERS, Example, Person, Question

PROFILE_COLUMNS = ("ID", "biography", "Classification_Task")
MODALITY_KEYS = (("multimodal", "Image_Textual_Questions"), ("text", "Pure_Text_Questions"))


def read_subset(root: Path, subset: str):
    """All shards of one subset as one pyarrow table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(root) / subset
    shards = sorted(folder.glob("*.parquet"))
    if not shards:
        raise PulseError(f"{folder}: no parquet files for MLLMU-Bench subset {subset!r}")
    try:
        return pa.concat_tables([pq.read_table(s) for s in shards])
    except Exception as e:  # pyarrow raises several types for broken files
        raise PulseError(f"{folder}: cannot read parquet ({e})") from None


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


def _questions(pid: str, task: dict, image: bytes, where: str) -> tuple[Question, ...]:
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
            out.append(Question(qid=f"{pid}/{modality}/{i}", subject=pid, modality=modality, question=item["Question"],
                                options=options, answer=answer, image=image if modality == "multimodal" else None))
    return tuple(out)


def _generation_facts(row: dict, image: bytes) -> tuple[Example, ...]:
    """Open QA about the person (Generation_Task, and the free ``question``/``answer`` pair):
    the unlearning data for people without ft_Data."""
    facts = [Example(item["Question"], item["Ground_Truth"], image if item.get("Type") == "Image_Textual" else None,
                     "generation") for item in row.get("Generation_Task") or []]
    if row.get("question") and row.get("answer"):
        facts.append(Example(row["question"], row["answer"], None, "qa"))
    return tuple(facts)


def load_people(root: Path, subset: str) -> list[Person]:
    """One Person per row, with its multiple-choice questions split by modality."""
    table = read_subset(root, subset)
    where = f"{Path(root) / subset}"
    _require(table, PROFILE_COLUMNS, where)
    image_column = "image" if "image" in table.column_names else "images"
    _require(table, (image_column,), where)
    out = []
    for row in table.to_pylist():
        pid = str(row["ID"])
        try:
            if image_column == "images":
                images = [_image_bytes(c, f"{where}: person {pid}", root) for c in row["images"] or []]
                if not images:
                    raise PulseError(f"{where}: person {pid} has no images")
                image, tests = images[0], tuple(images)
            else:
                image, tests = _image_bytes(row["image"], f"{where}: person {pid}", root), ()
            out.append(Person(id=pid, name="", image=image, biography=row["biography"] or "",
                              questions=_questions(pid, row["Classification_Task"] or {}, image, where),
                              test_images=tests, facts=_generation_facts(row, image)))
        except (KeyError, TypeError, AttributeError, ValueError) as e:  # a field of the wrong shape
            raise PulseError(f"{where}: person {pid}: malformed row ({type(e).__name__}: {e})") from None
    if not out:
        raise PulseError(f"{where}: subset {subset!r} is empty")
    ids = [p.id for p in out]
    if len(set(ids)) != len(ids):
        raise PulseError(f"{where}: duplicate IDs")
    return out


def load_facts(root: Path) -> dict[str, list[Example]]:
    """ft_Data's QA pairs per person ID. A pair is shown with the person's image unless its
    (optional) ``Type`` says ``Pure_Text``."""
    table = read_subset(root, "ft_Data")
    where = f"{Path(root) / 'ft_Data'}"
    _require(table, ("ID", "image", "metadata"), where)
    facts: dict[str, list[Example]] = {}
    for row in table.to_pylist():
        pid = str(row["ID"])
        try:
            pairs = json.loads(row["metadata"]) if isinstance(row["metadata"], str) else row["metadata"]
        except json.JSONDecodeError as e:
            raise PulseError(f"{where}: person {pid}: metadata is not JSON ({e})") from None
        image = _image_bytes(row["image"], f"{where}: person {pid}", root)
        try:
            facts[pid] = [Example(p["Question"], p["Answer"], None if p.get("Type") == "Pure_Text" else image, "ft")
                          for p in pairs]
        except (KeyError, TypeError, AttributeError) as e:
            raise PulseError(f"{where}: person {pid}: metadata pairs need Question and Answer ({e})") from None
    return facts
