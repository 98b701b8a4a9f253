"""runs/atomic.py: a file or folder is there whole or not at all, and nothing temporary stays."""

import os

import pytest

from pulse_unlearn.runs import atomic
from pulse_unlearn.runs.atomic import atomic_folder, atomic_write


class Boom(Exception):
    pass


def test_text_is_utf8_with_newlines_untranslated(tmp_path):
    path = tmp_path / "deep" / "er" / "tables.md"
    atomic_write(path, "a ± b\r\nc\n")
    assert path.read_bytes() == "a ± b\r\nc\n".encode("utf-8")
    assert os.listdir(path.parent) == ["tables.md"]


def test_bytes_replace_an_existing_file(tmp_path):
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    atomic_write(path, b"\x89PNG\x00\xff")
    assert path.read_bytes() == b"\x89PNG\x00\xff"
    assert os.listdir(tmp_path) == ["plot.png"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "summary.csv"
    path.write_text("old\n")

    def fail(fd):
        raise Boom

    monkeypatch.setattr(atomic.os, "fsync", fail)
    with pytest.raises(Boom):
        atomic_write(path, "new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["summary.csv"]


def test_modes_follow_the_umask_not_the_temporary_files(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "f", "x")
        with atomic_folder(tmp_path / "d") as tmp:
            (tmp / "g").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o750


def test_folder_appears_whole_on_success(tmp_path):
    target = tmp_path / "models" / "base-1"
    with atomic_folder(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        (tmp / "model.safetensors").write_bytes(b"w")
        assert not target.exists()  # nothing under the real name until the block ends
    assert sorted(os.listdir(target)) == ["model.safetensors"]
    assert os.listdir(target.parent) == ["base-1"]


def test_folder_replaces_an_existing_one(tmp_path):
    target = tmp_path / "world"
    target.mkdir()
    (target / "stale.json").write_text("{}")
    (target / "sub").mkdir()
    (target / "sub" / "x").write_text("x")
    with atomic_folder(target) as tmp:
        (tmp / "world.json").write_text("new")
    assert sorted(os.listdir(target)) == ["world.json"]
    assert (target / "world.json").read_text() == "new"
    assert os.listdir(tmp_path) == ["world"]  # the old folder moved aside is gone too


def test_a_failure_inside_leaves_the_target_unchanged_and_no_temporary(tmp_path):
    target = tmp_path / "op-1.adapter"
    target.mkdir()
    (target / "adapter.safetensors").write_bytes(b"old")
    with pytest.raises(Boom), atomic_folder(target) as tmp:
        (tmp / "adapter.safetensors").write_bytes(b"half")
        raise Boom
    assert os.listdir(target) == ["adapter.safetensors"]
    assert (target / "adapter.safetensors").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["op-1.adapter"]


def test_a_failure_with_no_target_leaves_nothing(tmp_path):
    with pytest.raises(Boom), atomic_folder(tmp_path / "new") as tmp:
        (tmp / "part").write_text("x")
        raise Boom
    assert os.listdir(tmp_path) == []


def test_a_failed_swap_puts_the_old_folder_back(tmp_path, monkeypatch):
    target = tmp_path / "world"
    target.mkdir()
    (target / "world.json").write_text("old")
    real_replace = os.replace

    def replace(src, dst):
        if str(src).startswith(str(tmp_path / ".world.")) and ".old." not in str(src):
            raise Boom  # the new folder's rename into place fails, after the old one moved aside
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(Boom), atomic_folder(target) as tmp:
        (tmp / "world.json").write_text("new")
    assert (target / "world.json").read_text() == "old"
    assert os.listdir(tmp_path) == ["world"]


def test_the_run_store_keeps_its_import():
    from pulse_unlearn.runs.store import atomic_write as from_store

    assert from_store is atomic_write
