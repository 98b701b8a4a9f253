"""Quality and speed of the embedded world's models (the figures issue #2 asks for).

Builds the world and the base and fine-tuned models (timed, cached), then prints
multiple-choice accuracy under both scorings: the base model on celebrities split by how
often they appear in pre-training, on the general benchmark and on the fictitious people
(should be chance), and the fine-tuned model on its fictitious people (and, in a world with
events, on the PEBench-style questions about people in event images and about the events).

``--selectivity`` runs the demo's sequential scenario (GA+KL and NPO, LoRA on the LLM) on each
world seed named and prints whether forgetting is selective (issue #31's figures): after
operation 1, the share of their above-chance accuracy that the people of requests 2-5 keep
(people resampled, start and end paired), request 1 against its stop target, and each
operation's steps; the rows go to ``--selectivity-out`` (a CSV) for the README's table.

    python benchmarks/world_quality.py [--preset default] [--cache DIR]
    python benchmarks/world_quality.py --selectivity 0 1 [--run-set unlearn.lr=5e-4 ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pulse_unlearn.data.batches import Encoder
from pulse_unlearn.data.mllmu import load_people
from pulse_unlearn.data.mmbench import load_mmbench
from pulse_unlearn.data.pebench import load_pebench
from pulse_unlearn.evaluation.scorers import SCORINGS, accuracy, score
from pulse_unlearn.models.load import load_model
from pulse_unlearn.models.world_models import build_base, build_finetuned, finetune_examples, models_config
from pulse_unlearn.pipeline import ensure_world
from pulse_unlearn.world.build import PEBENCH, world_config


RECORDED: list[dict] = []  # likelihood-scored lines with their intervals, for --quality-out
RESAMPLES = 2000


def record(model: str, group: str, preds) -> None:
    """Accuracy per modality (and all) with its 95% interval, people (a benchmark: items) resampled."""
    from pulse_unlearn.stats import Sample, interval

    for modality in ("multimodal", "text", "all"):
        sel = [p for p in preds if modality in ("all", p.modality)]
        if not sel:
            continue
        low, high = interval(Sample([float(p.correct) for p in sel], [p.subject for p in sel]), RESAMPLES, 0)
        RECORDED.append({"model": model, "group": group, "modality": modality, "statistic": "accuracy",
                         "n": len(sel), "value": round(sum(p.correct for p in sel) / len(sel), 4),
                         "ci_low": round(low, 4), "ci_high": round(high, 4)})


def record_gap(model: str, group: str, original, reworded) -> None:
    """Reworded minus original accuracy per modality, paired by person (both sides resampled together)."""
    from pulse_unlearn.stats import Sample, paired, percentile_interval

    for modality in ("multimodal", "text"):
        sides = [[p for p in preds if p.modality == modality] for preds in (original, reworded)]
        got = paired([Sample([float(p.correct) for p in side], [p.subject for p in side]) for side in sides],
                     lambda a, b: b - a, RESAMPLES, 0)
        low, high = percentile_interval(got.resampled, 0.95)
        RECORDED.append({"model": model, "group": group, "modality": modality, "statistic": "reworded - original",
                         "n": len(sides[1]), "value": round(got.estimate, 4), "ci_low": round(low, 4),
                         "ci_high": round(high, 4)})


def line(label: str, model, encoder, questions, recorded: tuple[str, str] | None = None) -> dict:
    """Prints both scorings' accuracy per modality; returns each scoring's predictions.
    ``recorded``: (model, group) under which the likelihood line goes to ``RECORDED``."""
    cells, preds = [], {}
    for scoring in SCORINGS:
        preds[scoring] = score(model, encoder, questions, scoring)
        acc = accuracy(preds[scoring])
        cells.append(f"{scoring}: mm {acc.get('multimodal', (0, float('nan')))[1]:6.1%} "
                     f"text {acc.get('text', (0, float('nan')))[1]:6.1%}")
    print(f"{label:<34} n={len(questions):<5} " + " | ".join(cells))
    if recorded:
        record(*recorded, preds["likelihood"])
    return preds


def reworded(world: Path, questions) -> list:
    """The questions in the world's rewordings (``paraphrases.jsonl``, the paraphrase attack's file)."""
    from dataclasses import replace

    from pulse_unlearn.evaluation.attacks.paraphrase import read_rewordings
    from pulse_unlearn.world.rewordings import FILE_NAME

    everyone = load_people(world / "MLLMU-Bench", "Full_Set") + load_people(world / "MLLMU-Bench", "Retain_Set")
    have = read_rewordings(world / "MLLMU-Bench" / FILE_NAME, [q.qid for p in everyone for q in p.questions])
    return [replace(q, question=have[q.qid]) for q in questions if q.qid in have]


def by_category(questions, preds, model: str | None = None) -> None:
    """Accuracy per general-benchmark category (which skills the model has); recorded for ``model``."""
    hits: dict[str, list] = {}
    for q, p in zip(questions, preds):
        hits.setdefault(q.category, []).append(p)
    print(" " * 35 + "  ".join(f"{c} {sum(x.correct for x in h) / len(h):.0%}" for c, h in hits.items()))
    if model:
        for category, ps in hits.items():
            record(model, f"general: {category}", ps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--cache", default=None, help="cache folder, laid out as pulse's (default: a fresh temporary one)")
    ap.add_argument("--base-only", action="store_true", help="stop after the base model")
    ap.add_argument("--skip-base-eval", action="store_true", help="do not evaluate the base model")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override the models config, e.g. pretrain.lr=2e-3 finetune.steps=600")
    ap.add_argument("--world-set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override the world config, e.g. n_benchmark_train=6000")
    ap.add_argument("--selectivity", nargs="+", type=int, default=None, metavar="WORLD_SEED",
                    help="run the demo's sequential scenario on these world seeds and print its selectivity")
    ap.add_argument("--run-set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="overrides of the demo config for --selectivity, e.g. unlearn.lr=5e-4")
    ap.add_argument("--selectivity-of", nargs="+", type=Path, default=None, metavar="RUN",
                    help="read the selectivity of finished run folders (a sequential scenario with ga_klr or npo) "
                         "instead of running; --levers names what they changed")
    ap.add_argument("--levers", default=None, help="the levers column for --selectivity-of (default: as shipped)")
    ap.add_argument("--quality-out", type=Path, default=None,
                    help="CSV the likelihood-scored figures (with intervals) are appended to, with the levers")
    ap.add_argument("--world-seed", type=int, default=None, help="the world's seed (default: the preset's)")
    ap.add_argument("--selectivity-out", type=Path, default=None,
                    help="CSV the selectivity rows are appended to, each with its levers")
    args = ap.parse_args()
    if args.selectivity is not None or args.selectivity_of is not None:
        selectivity_report(args)
        return
    cache = Path(args.cache or tempfile.mkdtemp(prefix="pulse-quality-"))
    wcfg, mcfg = configs(args, seed=args.world_seed)

    t0 = time.time()
    world = ensure_world(wcfg, cache, log=lambda *_: None)
    t_world = time.time() - t0
    t0 = time.time()
    base_dir = build_base(world, wcfg.training_fingerprint(), mcfg, cache / "models")
    t_base = time.time() - t0
    print(f"world build {t_world:.1f} s, base pre-training {t_base:.1f} s (world + base {t_world + t_base:.1f} s; "
          "target 300 s)", flush=True)

    meta = json.loads((world / "world.json").read_text())
    mentions = {pid: v["mentions"] for pid, v in meta["celebrities"].items()}
    celebs = load_people(world / "MLLMU-Bench", "Retain_Set")
    fictitious = load_people(world / "MLLMU-Bench", "Full_Set")
    ft_people = set(finetune_examples(world, mcfg)[0])
    bench = load_mmbench(world / "MMBench" / "mmbench_dev_en.tsv")

    if not args.skip_base_eval:
        model, processor = load_model(base_dir)
        evaluate_base(model, Encoder(processor), world, celebs, mentions, bench,
                      [p for p in fictitious if p.id in ft_people])
    if args.base_only:
        return
    t_finetune = ft_eval(world, wcfg, mcfg, cache, fictitious, ft_people, celebs, bench)
    if args.quality_out is not None:
        write_quality(args, wcfg, {"world + base": t_world + t_base, "fine-tuning": t_finetune})


def write_quality(args, wcfg, seconds: dict) -> None:
    """Append the recorded lines to ``--quality-out`` (one row per model, group and modality, with
    the world seed and the levers) and write its meta file beside it (date, commit, machine)."""
    import datetime

    import pandas as pd
    from findings import machine

    levers = " ".join([*args.world_set, *args.set]) or "as shipped"
    table = pd.DataFrame(RECORDED)
    table.insert(0, "world_seed", wcfg.seed)
    table.insert(0, "levers", levers)
    out = args.quality_out
    table.to_csv(out, mode="a", header=not out.exists(), index=False)
    meta = out.with_name(out.stem + "-meta.json")
    old = json.loads(meta.read_text()) if meta.exists() else {}
    old[f"{levers} / world {wcfg.seed}"] = {"date": datetime.date.today().isoformat(), "machine": machine(),
                                           "seconds": {k: round(v) for k, v in seconds.items()},
                                           "resamples": RESAMPLES}
    meta.write_text(json.dumps(old, indent=1, sort_keys=True) + "\n")


def configs(args, seed: int | None):
    """The world and models configs of ``--preset`` (at world seed ``seed``, if given) with the
    ``--world-set`` and ``--set`` overrides."""
    from pulse_unlearn.config import apply_overrides

    extra = {} if seed is None else {"seed": seed}
    wcfg, mcfg = world_config(args.preset, **extra), models_config(args.preset, **extra)
    if args.set:
        mcfg = type(mcfg)(**apply_overrides(mcfg.model_dump(), args.set))
        print("models config overrides:", " ".join(args.set))
    if args.world_set:
        wcfg = type(wcfg)(**apply_overrides(wcfg.model_dump(), args.world_set))
        print("world config overrides:", " ".join(args.world_set))
    return wcfg, mcfg


def evaluate_base(model, enc, world, celebs, mentions, bench, fictitious) -> None:
    cut = sorted(mentions.values())
    lo, hi = cut[len(cut) // 3], cut[2 * len(cut) // 3]
    tiers = {f"well-known (mentions >= {hi})": lambda m: m >= hi,
             f"middle ({lo} < mentions < {hi})": lambda m: lo < m < hi,
             f"rarely seen (mentions <= {lo})": lambda m: m <= lo}
    print(f"\nbase model ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters)")
    for label, keep in tiers.items():
        line("celebrities, " + label, model, enc, [q for p in celebs if keep(mentions[p.id]) for q in p.questions])
    known = [q for p in celebs if mentions[p.id] > lo for q in p.questions]
    group = "celebrities above the lower third of mentions"
    original = line(f"celebrities (mentions > {lo})", model, enc, known, ("base", group))
    again = line(f"  reworded (mentions > {lo})", model, enc, reworded(world, known), ("base", f"{group}, reworded"))
    record_gap("base", group, original["likelihood"], again["likelihood"])
    by_category(bench, line("general benchmark", model, enc, bench, ("base", "general"))["likelihood"], "base")
    line("fictitious (never seen)", model, enc, [q for p in fictitious for q in p.questions])


def ft_eval(world, wcfg, mcfg, cache, fictitious, ft_people, celebs, bench) -> float:
    """Fine-tunes (or finds) the model and prints its lines; returns the fine-tuning's seconds."""
    t0 = time.time()
    ft_dir = build_finetuned(world, wcfg.training_fingerprint(), mcfg, cache / "models")
    seconds = time.time() - t0
    print(f"\nfine-tuning {seconds:.1f} s (target 60 s)")
    model, processor = load_model(ft_dir)
    enc = Encoder(processor)
    print("\nfine-tuned model")
    learnt = [q for p in fictitious if p.id in ft_people for q in p.questions]
    group = "fictitious people fine-tuned on"
    original = line("fictitious (fine-tuned on)", model, enc, learnt, ("finetuned", group))
    again = line("  reworded", model, enc, reworded(world, learnt), ("finetuned", f"{group}, reworded"))
    record_gap("finetuned", group, original["likelihood"], again["likelihood"])
    line("celebrities, all", model, enc, [q for p in celebs for q in p.questions])
    by_category(bench, line("general benchmark", model, enc, bench, ("finetuned", "general"))["likelihood"],
                "finetuned")
    if (world / PEBENCH).is_dir():  # a world with events (--world-set n_events=12)
        concepts = load_pebench(world / PEBENCH)
        for concept in ("person", "event"):
            line(f"{concept}s, PEBench-style questions", model, enc,
                 [q for q in concepts.questions if q.subject.startswith(f"{concept}:")])
    return seconds


SELECTIVE_METHODS = ("ga_klr", "npo")
PENDING_KEPT = 0.6  # issue #31: the pending people keep at least this share of their above-chance accuracy


def selectivity_report(args) -> None:
    import pandas as pd

    import pulse_unlearn
    from pulse_unlearn.pipeline import cache_folder

    rows = []
    if args.selectivity_of:
        for folder in args.selectivity_of:
            run = pulse_unlearn.load_run(folder)
            rows += [{"world_seed": run.config["model"]["world_seed"], **r} for r in selectivity(run)]
        levers = args.levers or "as shipped"
    else:
        cache = cache_folder(Path(args.cache) if args.cache else None)
        root = Path(tempfile.mkdtemp(prefix="pulse-selectivity-"))
        for seed in args.selectivity:
            t0 = time.time()
            run = pulse_unlearn.run("demo", ["scenario=sequential", f"method=[{','.join(SELECTIVE_METHODS)}]",
                                             f"model.world_seed={seed}", *models_of(args, seed, cache),
                                             *args.run_set], out=root / f"world{seed}", cache=cache,
                                    log=lambda *_: None)
            rows += [{"world_seed": seed, **r} for r in selectivity(run)]
            print(f"world seed {seed}: {time.time() - t0:.0f} s ({root / f'world{seed}'})", flush=True)
        levers = " ".join([*args.world_set, *args.set, *args.run_set]) or "as shipped"
    table = pd.DataFrame(rows)
    print(f"levers: {levers}")
    print(table.to_string(index=False))
    if args.selectivity_out is not None:
        table.insert(0, "levers", levers)
        table.to_csv(args.selectivity_out, mode="a", header=not args.selectivity_out.exists(), index=False)


def models_of(args, seed: int, cache: Path) -> list[str]:
    """Run overrides that point the demo at world models built with ``--set``/``--world-set``
    (none without them: the run builds or finds its own)."""
    if not (args.set or args.world_set):
        return []
    wcfg, mcfg = configs(args, seed)
    world = ensure_world(wcfg, cache, log=lambda *_: None)
    base = build_base(world, wcfg.training_fingerprint(), mcfg, cache / "models")
    finetuned = build_finetuned(world, wcfg.training_fingerprint(), mcfg, cache / "models")
    return ["model.source=path", f"model.base={base}", f"model.finetuned={finetuned}",
            f"data.mllmu={world / 'MLLMU-Bench'}", f"data.mmbench={world / 'MMBench' / 'mmbench_dev_en.tsv'}"]


def selectivity(run) -> list[dict]:
    """Per method and modality: the pending people's kept share after operation 1 with its paired
    interval, request 1's accuracy then with its interval, and the steps of operations 1-5."""
    from pulse_unlearn.protocol.verdicts import kept
    from pulse_unlearn.stats.bootstrap import interval, paired, percentile_interval

    ci = run.config["intervals"]
    requests = run.sets["sequential"]["forget_requests"]
    pending = {pid for request in requests[1:] for pid in request}
    preds = run.predictions
    preds = preds[(preds.scenario == "sequential") & (preds.split == "forget")]
    ops = run.operations[run.operations.scenario == "sequential"]
    out = []
    for method in [m for m in SELECTIVE_METHODS if m in set(ops.method)]:
        steps = ops[ops.method == method].sort_values("operation").steps.astype(int).tolist()
        for modality in ("multimodal", "text"):
            cell = preds[(preds.method == method) & (preds.modality == modality)]
            start, after = _sample(cell, 0, pending), _sample(cell, 1, pending)
            share = paired([start, after], kept, ci["resamples"], ci["seed"])
            low, high = percentile_interval(share.resampled, ci["level"])
            request1 = _sample(cell, 1, set(requests[0]))
            r_low, r_high = interval(request1, ci["resamples"], ci["seed"], ci["level"])
            out.append({"method": method, "modality": modality, "pending_start": start.mean(),
                        "pending_after_op1": after.mean(), "pending_kept": share.estimate, "kept_ci_low": low,
                        "kept_ci_high": high, "request1_after_op1": request1.mean(), "request1_ci_low": r_low,
                        "request1_ci_high": r_high, "steps": " ".join(map(str, steps)),
                        "selective": share.estimate >= PENDING_KEPT and min(steps[1:], default=0) > 0})
    return out


def _sample(predictions, step: int, people: set[str]):
    """The items of ``people`` at ``step``, each person a cluster."""
    from pulse_unlearn.stats.bootstrap import Sample

    rows = predictions[(predictions.step == step) & predictions.subject.isin(people)]
    return Sample(rows.correct.astype(float).tolist(), rows.subject.tolist())


if __name__ == "__main__":
    main()
