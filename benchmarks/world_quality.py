"""Quality and speed of the embedded world's models (the figures issue #2 asks for).

Builds the world and the base and fine-tuned models (timed, cached), then prints
multiple-choice accuracy under both scorings: the base model on celebrities split by how
often they appear in pre-training, on the general benchmark and on the fictitious people
(should be chance), and the fine-tuned model on its fictitious people (and, in a world with
events, on the PEBench-style questions about people in event images and about the events).

    python benchmarks/world_quality.py [--preset default] [--cache DIR]
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


def line(label: str, model, encoder, questions) -> dict:
    """Prints both scorings' accuracy per modality; returns each scoring's predictions."""
    cells, preds = [], {}
    for scoring in SCORINGS:
        preds[scoring] = score(model, encoder, questions, scoring)
        acc = accuracy(preds[scoring])
        cells.append(f"{scoring}: mm {acc.get('multimodal', (0, float('nan')))[1]:6.1%} "
                     f"text {acc.get('text', (0, float('nan')))[1]:6.1%}")
    print(f"{label:<34} n={len(questions):<5} " + " | ".join(cells))
    return preds


def by_category(questions, preds) -> None:
    """Accuracy per general-benchmark category (which skills the model has)."""
    hits: dict[str, list[bool]] = {}
    for q, p in zip(questions, preds):
        hits.setdefault(q.category, []).append(p.correct)
    print(" " * 35 + "  ".join(f"{c} {sum(h) / len(h):.0%}" for c, h in hits.items()))


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
    args = ap.parse_args()
    cache = Path(args.cache or tempfile.mkdtemp(prefix="pulse-quality-"))
    wcfg, mcfg = world_config(args.preset), models_config(args.preset)
    if args.set:
        from pulse_unlearn.config import apply_overrides

        mcfg = type(mcfg)(**apply_overrides(mcfg.model_dump(), args.set))
        print("models config overrides:", " ".join(args.set))
    if args.world_set:
        from pulse_unlearn.config import apply_overrides

        wcfg = type(wcfg)(**apply_overrides(wcfg.model_dump(), args.world_set))
        print("world config overrides:", " ".join(args.world_set))

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
        evaluate_base(model, Encoder(processor), celebs, mentions, bench, [p for p in fictitious if p.id in ft_people])
    if args.base_only:
        return
    ft_eval(world, wcfg, mcfg, cache, fictitious, ft_people, celebs, bench)


def evaluate_base(model, enc, celebs, mentions, bench, fictitious) -> None:
    cut = sorted(mentions.values())
    lo, hi = cut[len(cut) // 3], cut[2 * len(cut) // 3]
    tiers = {f"well-known (mentions >= {hi})": lambda m: m >= hi,
             f"middle ({lo} < mentions < {hi})": lambda m: lo < m < hi,
             f"rarely seen (mentions <= {lo})": lambda m: m <= lo}
    print(f"\nbase model ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters)")
    for label, keep in tiers.items():
        line("celebrities, " + label, model, enc, [q for p in celebs if keep(mentions[p.id]) for q in p.questions])
    by_category(bench, line("general benchmark", model, enc, bench)["likelihood"])
    line("fictitious (never seen)", model, enc, [q for p in fictitious for q in p.questions])


def ft_eval(world, wcfg, mcfg, cache, fictitious, ft_people, celebs, bench) -> None:
    t0 = time.time()
    ft_dir = build_finetuned(world, wcfg.training_fingerprint(), mcfg, cache / "models")
    print(f"\nfine-tuning {time.time() - t0:.1f} s (target 60 s)")
    model, processor = load_model(ft_dir)
    enc = Encoder(processor)
    print("\nfine-tuned model")
    line("fictitious (fine-tuned on)", model, enc, [q for p in fictitious if p.id in ft_people for q in p.questions])
    line("celebrities, all", model, enc, [q for p in celebs for q in p.questions])
    line("general benchmark", model, enc, bench)
    if (world / PEBENCH).is_dir():  # a world with events (--world-set n_events=12)
        concepts = load_pebench(world / PEBENCH)
        for concept in ("person", "event"):
            line(f"{concept}s, PEBench-style questions", model, enc,
                 [q for q in concepts.questions if q.subject.startswith(f"{concept}:")])


if __name__ == "__main__":
    main()
