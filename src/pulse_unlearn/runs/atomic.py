"""Files and folders written so that a reader (or a run resumed after kill -9) finds each whole
or not at all: the content goes under a temporary name beside the target, reaches the disk,
then one rename puts it in place.

- ``atomic_write(path, data)``: one file, ``str`` (written as UTF-8) or ``bytes``.
- ``with atomic_folder(target) as tmp:``: a folder filled in ``tmp``; it replaces ``target``
  when the block ends without an exception and is removed when one is raised.

Both get the modes an ordinary write would (the umask's), not the owner-only modes of the
temporary files they start as: results and caches are for reading.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (text as UTF-8, newlines untranslated)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())  # the bytes reach the disk before the name does
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_folder(target: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` to fill; on success it takes ``target``'s place (an
    existing folder there is moved aside first, then deleted), on an exception it is removed and
    ``target`` is left as it was."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    aside = None
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if target.exists():  # rename() cannot replace a non-empty folder: move it aside whole
            aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old."))
            os.replace(target, aside / target.name)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if aside is not None and not target.exists():
            os.replace(aside / target.name, target)
            aside.rmdir()
        raise
    if aside is not None:
        shutil.rmtree(aside)
