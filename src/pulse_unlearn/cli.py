"""The ``pulse`` command.

Bad input ends in one line on stderr naming the problem, and exit status 2; nothing is
left half-written (outputs are written to a temporary name and renamed).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import PulseError

HELP_STYLE = dict(no_args_is_help=True, rich_markup_mode="markdown")  # docstrings wrap as paragraphs
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, **HELP_STYLE,
                  help="PULSE: evaluate unlearning in LLaVA-style multimodal models.")
world_app = typer.Typer(**HELP_STYLE, help="The embedded synthetic world.")
base_app = typer.Typer(**HELP_STYLE, help="The embedded world's base and fine-tuned models.")
app.add_typer(world_app, name="world")
app.add_typer(base_app, name="base")

PRESET_HELP = "size preset: tiny (tests, seconds) or default (the demo)"


def cache_dir(cache: Optional[Path]) -> Path:
    """Where worlds and models are kept: --cache, else $PULSE_CACHE, else ~/.cache/pulse-unlearn."""
    from .pipeline import cache_folder

    return cache_folder(cache)


def say(msg: str) -> None:
    typer.echo(msg, err=True)


@world_app.command("build")
def world_build(
    preset: str = typer.Option("default", help=PRESET_HELP),
    out: Optional[Path] = typer.Option(None, help="folder to write (default: in the cache, keyed by config)"),
    seed: int = typer.Option(0, help="the world's seed"),
    cache: Optional[Path] = typer.Option(None, help="cache folder"),
) -> None:
    """Write the synthetic world (MLLMU-Bench parquet, MMBench TSV, pre-training corpus)."""
    from .pipeline import ensure_world
    from .world.build import world_config

    cfg = _checked(lambda: world_config(preset, seed=seed))
    path = ensure_world(cfg, cache_dir(cache), out=out, log=say)
    typer.echo(str(path))


@base_app.command("build")
def base_build(
    preset: str = typer.Option("default", help=PRESET_HELP),
    finetuned: bool = typer.Option(True, help="also fine-tune on the fictitious people"),
    cache: Optional[Path] = typer.Option(None, help="cache folder"),
) -> None:
    """Pre-train the base model (and fine-tune it) on the embedded world; cached."""
    from .pipeline import ensure_models

    _checked(lambda: world_config_checked(preset))
    paths = ensure_models(preset, cache_dir(cache), finetuned=finetuned, log=say)
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")


@app.command()
def demo(
    preset: str = typer.Option("default", help=PRESET_HELP),
    out: Optional[Path] = typer.Option(None, help="run folder (default: runs/demo, or runs/demo-tiny)"),
    cache: Optional[Path] = typer.Option(None, help="cache folder"),
    world_seed: int = typer.Option(0, help="the embedded world's seed (its people, images and models)"),
    attacks: bool = typer.Option(False, "--attacks", help="also run the recovery attacks of configs/attacks/demo.yaml "
                                 "(relearn, 4-bit quantization, blurred images, paraphrases, neighbours, consistency)"),
) -> None:
    """The whole PULSE protocol on the embedded world: three scenarios x {ga, ga_klr, npo}, plus the
    projector + LLM ablation; prints the main table and the paper's findings next to ours (at the
    run's budget and, with trajectories, at matched forgetting)."""
    from .config import shipped_configs
    from .config.shipped import demo_attacks
    from .protocol.catalog import load_config
    from .pipeline import run_experiment
    from .progress import RunLog
    from .report.build import build_report, findings_text
    from .report.findings import Summary, main_table

    if preset not in ("default", "tiny"):
        raise PulseError(f"unknown demo preset {preset!r}; choose default or tiny")
    overrides = [f"model.world_seed={world_seed}"] if world_seed else []
    if attacks:
        overrides.append(f"attacks={json.dumps(demo_attacks())}")
    cfg = load_config(shipped_configs()["demo" if preset == "default" else "demo_tiny"], overrides)
    folder = out or Path("runs") / cfg.name
    store = run_experiment(cfg, folder, cache_dir(cache), log=RunLog(folder, say))
    summary = Summary(store.summary)
    typer.echo(f"\nPULSE on the embedded world ({cfg.scoring} scoring; accuracy %, start -> end)\n")
    typer.echo(main_table(summary))
    typer.echo("\nThe paper's findings, and ours\n")
    typer.echo(findings_text(folder))
    files = ", ".join(name for name in ("summary.csv", "predictions.csv", "operations.csv", "timings.csv",
                                        "findings.csv", "sensitivity.csv", "trajectory.csv",
                                        "trajectory_predictions.csv", "matched.csv", "attacks.csv", "probe.csv",
                                        "sets.json", "config.yaml", "environment.json", "run.log")
                      if (folder / name).exists())
    typer.echo(f"\nresults: {folder}/ ({files})")
    typer.echo(f"report: {build_report(folder)}")


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": False})
def run_cmd(
    config: Path = typer.Argument(..., help="the experiment's YAML file, or a shipped config's name (pulse configs)"),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides, e.g. unlearn.lr=1e-4 method=npo"),
    out: Optional[Path] = typer.Option(None, help="run folder (default: runs/<name>)"),
    cache: Optional[Path] = typer.Option(None, help="cache folder for the embedded world and its models"),
    check: bool = typer.Option(False, "--check", help="only validate the config and list its units; write nothing"),
) -> None:
    """Run a PULSE experiment: scenarios x methods x update strategies."""
    from .api import resolve_config, run

    if check:
        cfg = resolve_config(config, overrides or [])
        return _print_units(cfg, out or Path("runs") / cfg.name)
    result = run(config, overrides or [], out, cache_dir(cache))
    typer.echo(f"results: {result.folder}/summary.csv (report: pulse report {result.folder})")


def _print_units(cfg, folder: Path) -> None:
    """What ``pulse run`` would run: the units in order, and where it would write."""
    from .protocol.catalog import units as units_of

    units = units_of(cfg)
    typer.echo(f"config {cfg.name}: valid; {len(units)} unit(s) (scenario, method, update), run folder {folder}")
    for scenario, method, update in units:
        typer.echo(f"  {scenario:<11} {method:<10} {update}")


@app.command("configs")
def configs_cmd() -> None:
    """The configs shipped with pulse-unlearn, each with what it is for; `pulse run NAME` runs one."""
    from .config import first_comment, shipped_configs

    for name, path in shipped_configs().items():
        typer.echo(f"{name:<15} {first_comment(path)}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="a run folder (holding summary.csv)"),
    out: Optional[Path] = typer.Option(None, help="folder to write (default: RUN_DIR/report)"),
) -> None:
    """Tables (Markdown, LaTeX), plots (PNG, SVG) and a self-contained report.html from a run's
    summary.csv; prints the path of report.html."""
    from .report.build import build_report

    typer.echo(str(build_report(run_dir, out)))


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="run folders, e.g. the same config with other seeds"),
    out: Path = typer.Option(Path("runs") / "compare", help="folder to write"),
) -> None:
    """The report's tables and plots across runs: a unit (scenario, method, update) present in
    several runs that differ only in their seeds (run, world) is shown as mean ± std, and every
    finding's comparison is pooled over them (worlds, then people resampled; findings.csv), with
    how many per-run verdicts agree; prints the path of report.html."""
    from .report.build import build_compare

    typer.echo(str(build_compare(run_dirs, out, log=typer.echo)))


@app.command()
def doctor(
    model: Optional[Path] = typer.Option(None, help="a model folder to check (llava-hf layout)"),
    data: Optional[Path] = typer.Option(None, help="a data folder to check: MLLMU-Bench (or a folder holding "
                                        "MLLMU-Bench/ and MMBench/), an MMBench TSV, or a hub dataset id"),
    trust_remote_code: bool = typer.Option(False, help="allow a model's own code (as model.trust_remote_code)"),
    cache: Optional[Path] = typer.Option(None, help="cache folder"),
) -> None:
    """Versions, device, cache locations and sizes; with --model/--data, checks that a model folder
    (config, safetensors, processor, image token) and a data folder (parquet columns, questions,
    images) are usable before a long run."""
    from .doctor import doctor as run_doctor

    run_doctor(model, data, cache_dir(cache), trust_remote_code, typer.echo)
    if model is not None or data is not None:
        typer.echo("all checks passed")


def world_config_checked(preset: str):
    from .models.world_models import models_config
    from .world.build import world_config

    return world_config(preset), models_config(preset)


def _checked(make):
    """Turn a config validation error into a PulseError with one readable line."""
    from pydantic import ValidationError

    try:
        return make()
    except ValidationError as e:
        err = e.errors()[0]
        raise PulseError(f"config: {'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from None
    except ValueError as e:
        raise PulseError(str(e)) from None


def _quiet_libraries() -> None:
    """Our own progress bars and log lines say what happens; silence the libraries' chatter."""
    import warnings

    import logging

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    # peft imports torchao where it is installed (the quantize extra): its CUDA-kernel notices and
    # torch's deprecation notes about its enums are not ours to show
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    try:
        app(args=argv, standalone_mode=False)
    except PulseError as e:
        print(f"pulse: error: {e}", file=sys.stderr)
        return 2
    except (typer.Exit, SystemExit) as e:
        return int(getattr(e, "exit_code", getattr(e, "code", 0)) or 0)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            return 2
        if isinstance(e, click.exceptions.Abort):
            return 130
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
