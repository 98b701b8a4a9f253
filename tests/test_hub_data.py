"""Data by hub id: ``data.mllmu=OWNER/NAME`` / ``data.mmbench=OWNER/NAME`` read through the hub cache.

No test reaches the hub (``HF_HUB_OFFLINE=1``): a dataset absent from the cache is one error
line; one present in a hub cache built here, in the layout ``huggingface_hub`` reads
(``datasets--OWNER--NAME/refs/main`` naming ``snapshots/<commit>/``), is found and read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import constants
from real_data import write_mllmu, write_mmbench

from pulse_unlearn.errors import PulseError
from pulse_unlearn.pipeline import hub_dataset, mmbench_tsv, run_experiment

COMMIT = "0123456789abcdef0123456789abcdef01234567"
TINY = Path(__file__).resolve().parents[1] / "src" / "pulse_unlearn" / "configs" / "demo_tiny.yaml"


def hub_snapshot_folder(hub: Path, repo_id: str) -> Path:
    """An empty snapshot of dataset ``repo_id`` in the hub cache ``hub``, its main branch at COMMIT."""
    repo = hub / ("datasets--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    return snapshot


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A hub cache with MLLMU-Bench one level down in its snapshot (as the hub copy may hold it)
    and an MMBench dataset of two TSVs; the hub library reads it, offline."""
    cache = tmp_path / "hub"
    write_mllmu(hub_snapshot_folder(cache, "MLLMMU/MLLMU-Bench") / "MLLMU-Bench")
    mmbench = hub_snapshot_folder(cache, "someone/MMBench")
    write_mmbench(mmbench / "mmbench_dev_en.tsv")
    write_mmbench(mmbench / "mmbench_dev_cn.tsv", n=4)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def pulse(*args, hub_cache: Path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache), "PULSE_QUIET": "1", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "pulse_unlearn.cli", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("key, hint", [("data.mllmu", "data.mllmu=/path/to/MLLMU-Bench"),
                                       ("data.mmbench", "data.mmbench=/path/to/mmbench_dev_en.tsv")])
def test_an_uncached_hub_id_offline_is_one_line_exit_2(tmp_path, key, hint):
    out = tmp_path / "run"
    r = pulse("run", str(TINY), f"{key}=nobody/no-such-data", "--out", str(out), "--cache", str(tmp_path / "c"),
              hub_cache=tmp_path / "empty-hub")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert f"{key}=nobody/no-such-data" in lines[0] and "'nobody/no-such-data'" in lines[0]
    assert "HF_HUB_OFFLINE=1" in lines[0] and hint in lines[0]
    assert not out.exists() and not (tmp_path / "c").exists()  # nothing written, not even the world


def test_a_cached_hub_dataset_is_found_offline_and_read(hub):
    from pulse_unlearn.data.sources import load_sources

    snapshot = hub / "datasets--MLLMMU--MLLMU-Bench" / "snapshots" / COMMIT
    mllmu = hub_dataset(Path("MLLMMU/MLLMU-Bench"), "data.mllmu")  # the schema's type for data.mllmu
    mmbench = hub_dataset(Path("someone/MMBench"), "data.mmbench")
    assert mllmu == snapshot / "MLLMU-Bench"
    assert mmbench.name == "mmbench_dev_en.tsv"  # of two TSVs, the dev-en one
    src = load_sources(mllmu, mmbench, None, 0)
    assert len(src.fictitious) == 20 and len(src.celebrities) == 8 and len(src.general) == 12


def test_a_run_reads_the_hub_snapshot(hub, cache, tmp_path, monkeypatch):
    """``run_experiment`` resolves ``cfg.data.*`` and hands the protocol the snapshot's files."""
    from pulse_unlearn.protocol.catalog import load_config
    from pulse_unlearn.protocol import runner as protocol

    seen = {}
    monkeypatch.setattr(protocol, "run", lambda cfg, out, models, mllmu, mmbench, **kw: seen.update(
        mllmu=mllmu, mmbench=mmbench, config=cfg.data.mllmu))
    cfg = load_config(TINY, ["data.mllmu=MLLMMU/MLLMU-Bench", "data.mmbench=someone/MMBench"])
    run_experiment(cfg, tmp_path / "run", cache, log=lambda *_: None)
    assert seen["mllmu"] == hub / "datasets--MLLMMU--MLLMU-Bench" / "snapshots" / COMMIT / "MLLMU-Bench"
    assert seen["mmbench"].name == "mmbench_dev_en.tsv"
    assert str(seen["config"]) == "MLLMMU/MLLMU-Bench"  # the run's config keeps the id as given


def test_a_local_path_wins_over_a_hub_id(hub, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "MLLMMU" / "MLLMU-Bench").mkdir(parents=True)
    assert hub_dataset(Path("MLLMMU/MLLMU-Bench"), "data.mllmu") == Path("MLLMMU/MLLMU-Bench")
    assert hub_dataset(Path("no/such/folder"), "data.mllmu") == Path("no/such/folder")  # not owner/name
    assert hub_dataset(None, "data.mllmu") is None


def test_a_snapshot_without_mllmu_bench_or_with_unclear_tsvs_is_one_line(hub, tmp_path):
    with pytest.raises(PulseError, match="data.mllmu=someone/MMBench: the hub dataset holds no Full_Set/"):
        hub_dataset(Path("someone/MMBench"), "data.mllmu")
    for name in ("a.tsv", "b.tsv"):
        write_mmbench(tmp_path / "two" / name, n=2)
    with pytest.raises(PulseError, match=r"several TSVs \(a.tsv, b.tsv\); pass the one to use"):
        mmbench_tsv(tmp_path / "two", "data.mmbench=x/y")
    (tmp_path / "none").mkdir()
    with pytest.raises(PulseError, match="data.mmbench=x/y: the hub dataset holds no .tsv file"):
        mmbench_tsv(tmp_path / "none", "data.mmbench=x/y")


def test_doctor_checks_a_cached_hub_dataset(tmp_path):
    hub_cache = tmp_path / "hub"
    write_mllmu(hub_snapshot_folder(hub_cache, "MLLMMU/MLLMU-Bench"), n_full=6, n_celeb=3, shards=1)
    r = pulse("doctor", "--data", "MLLMMU/MLLMU-Bench", "--cache", str(tmp_path / "c"), hub_cache=hub_cache)
    assert r.returncode == 0, r.stderr
    snapshot = hub_cache / "datasets--MLLMMU--MLLMU-Bench" / "snapshots" / COMMIT
    assert f"data {snapshot / 'Full_Set'}: ok: 6 people" in r.stdout and "all checks passed" in r.stdout
