"""The demo's starting point: the fine-tuned model on the demo's own step-0 splits.

Builds the world, the base and the fine-tuned model of a preset (cached), then scores them
with the runner's evaluator (``evaluation/evaluator.py``) under the demo's config: the
``forget`` split of the finetuned scenario's sets (the people ``pulse demo`` forgets), the
``forget_test`` split (the same people's multimodal questions on Test_Set images), ``retain``
and the general benchmark; the base model on the general benchmark too, so the fine-tuning's
cost on general skills reads off.

    python benchmarks/finetune_start.py [--world-seed 1] [--run-seeds 0 1] [--set finetune.steps=600]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pulse_unlearn.config import apply_overrides, shipped_configs
from pulse_unlearn.protocol.catalog import load_config
from pulse_unlearn.data.batches import Encoder
from pulse_unlearn.data.sources import load_sources
from pulse_unlearn.evaluation.evaluator import Evaluator
from pulse_unlearn.evaluation.scorers import accuracy
from pulse_unlearn.models.load import load_model
from pulse_unlearn.models.world_models import build_base, build_finetuned, models_config
from pulse_unlearn.pipeline import cache_folder, ensure_world
from pulse_unlearn.protocol.scenarios import plan
from pulse_unlearn.world.build import world_config


def cells(preds) -> str:
    acc = accuracy(preds)
    return " ".join(f"{m} {acc[m][1]:6.1%}" for m in ("multimodal", "text", "all") if m in acc)


def build(args) -> tuple[Path, Path, Path]:
    """World, base and fine-tuned model (cached); prints the fine-tuning's seconds."""
    wcfg = world_config(args.preset, seed=args.world_seed)
    mcfg = models_config(args.preset, seed=args.world_seed)
    if args.set:
        mcfg = type(mcfg)(**apply_overrides(mcfg.model_dump(), args.set))
    world = ensure_world(wcfg, args.cache, log=print)
    base = build_base(world, wcfg.training_fingerprint(), mcfg, args.cache / "models")
    ft = build_finetuned(world, wcfg.training_fingerprint(), mcfg, args.cache / "models")
    meta = json.loads((ft / "pulse_model.json").read_text())
    print(f"fine-tuned model {ft.name}: fine-tuned in {meta['seconds']:.1f} s, final loss {meta['final_loss']:.3f}")
    return world, base, ft


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--world-seed", type=int, default=0, help="the world's and its models' seed")
    ap.add_argument("--run-seeds", type=int, nargs="+", default=[0], help="the demo config's seed (its draws)")
    ap.add_argument("--cache", type=Path, default=None, help="cache folder, laid out as pulse's (default: pulse's)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="models config overrides")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    args.cache = cache_folder(args.cache)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.set:
        print("models config overrides:", " ".join(args.set))
    world, base, ft = build(args)
    demo = shipped_configs()["demo" if args.preset == "default" else "demo_tiny"]
    base_model, _ = load_model(base, dtype="float32", device="cpu")
    ft_model, processor = load_model(ft, dtype="float32", device="cpu")
    encoder = Encoder(processor)
    general = {}
    for run_seed in args.run_seeds:
        cfg = load_config(demo, [f"seed={run_seed}"])
        src = load_sources(world / "MLLMU-Bench", world / "MMBench" / "mmbench_dev_en.tsv",
                           cfg.data.mmbench_subset, cfg.seed)
        sets = plan(cfg, src, world / "MLLMU-Bench").sets["finetuned"]
        evaluate = Evaluator(encoder, cfg, src, sets)
        preds = evaluate(ft_model)
        print(f"world seed {args.world_seed}, run seed {run_seed} ({len(sets.forget)} forget people):")
        for split in ("forget", "forget_test", "retain", "general"):
            print(f"  fine-tuned {split:<12} {cells(preds[split])}")
        if not general:
            general = {"base": evaluate.scorers["general"](base_model), "fine-tuned": preds["general"]}
            everyone = preds["forget"] + preds["retain"]
            print(f"  fine-tuned all {len(set(p.subject for p in everyone))} people  {cells(everyone)}")
    base_acc, ft_acc = accuracy(general["base"]), accuracy(general["fine-tuned"])
    print(f"  base general            {cells(general['base'])}")
    print("  general drop (points)   " + " ".join(
        f"{m} {100 * (base_acc[m][1] - ft_acc[m][1]):+5.1f}" for m in ("multimodal", "text", "all")))


if __name__ == "__main__":
    main()
