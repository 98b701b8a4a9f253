"""Read an MMBench TSV (the dev-en layout: index, question, hint, A-D, answer, category, image)."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import sys
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import PulseError
from ..records import LETTERS, Question

REQUIRED = ("index", "question", "A", "B", "answer")


def load_mmbench(path: Path) -> list[Question]:
    """Questions with 2-4 options; a row without an image is a text-only question.

    A non-empty ``hint`` is put before the question, as MMBench's own prompt does.
    """
    path = Path(path)
    if not path.is_file():
        raise PulseError(f"{path}: MMBench TSV not found")
    csv.field_size_limit(sys.maxsize)  # base64 images are long fields
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except (UnicodeDecodeError, csv.Error) as e:
        raise PulseError(f"{path}: not a UTF-8 TSV file ({e})") from None
    if not rows:
        raise PulseError(f"{path}: no questions")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise PulseError(f"{path}: missing column(s) {', '.join(missing)}")
    out = []
    for n, row in enumerate(rows, start=2):
        options = {k: row[k] for k in LETTERS if row.get(k) not in (None, "", "nan")}
        answer = (row["answer"] or "").strip()
        if answer not in options:
            raise PulseError(f"{path}:{n}: answer {answer!r} is not among the options {list(options)}")
        image = None
        if row.get("image"):
            try:
                image = base64.b64decode(row["image"], validate=True)
            except (binascii.Error, ValueError):
                raise PulseError(f"{path}:{n}: image is not valid base64") from None
            try:
                Image.open(io.BytesIO(image))  # reads the header only
            except (UnidentifiedImageError, OSError):
                raise PulseError(f"{path}:{n}: image bytes are not a readable image") from None
        hint = (row.get("hint") or "").strip()
        text = f"{hint}\n{row['question']}" if hint and hint != "nan" else row["question"]
        out.append(Question(qid=f"mmbench/{row['index']}", subject=str(row["index"]),
                            modality="multimodal" if image is not None else "text", question=text,
                            options=options, answer=answer, image=image, category=row.get("category", "")))
    return out
