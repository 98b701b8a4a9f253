"""Can the tiny LLaVA learn the general benchmark's skills? Train on the skill items alone.

Trains a fresh world model (the default architecture, or a variant given by --model) from
scratch on the pre-training corpus's general-skill items only, then prints the general
benchmark's accuracy per category (likelihood scoring). Used to find what keeps the base
model's general benchmark low (benchmarks/README.md: the patch grid).

    python benchmarks/skills_probe.py --steps 300 --image-only --model '{"patch_size": 4}'
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path

from pulse_unlearn.data.batches import Encoder
from pulse_unlearn.data.mmbench import load_mmbench
from pulse_unlearn.evaluation.scorers import score
from pulse_unlearn.models.tiny import TinyModelConfig, build_model, build_processor, train_tokenizer
from pulse_unlearn.models.train import TrainConfig, train
from pulse_unlearn.models.world_models import _world_texts, read_corpus
from pulse_unlearn.pipeline import ensure_world
from pulse_unlearn.world.build import world_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--model", default="{}", help="TinyModelConfig fields as JSON")
    ap.add_argument("--image-only", action="store_true", help="train on the image skill items only")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "pulse-skills-probe")
    args = ap.parse_args()

    world = ensure_world(world_config("default"), args.cache, log=lambda *_: None)
    mcfg = TinyModelConfig(**json.loads(args.model))
    tokenizer = train_tokenizer(_world_texts(world, "USER: <image>\nA B C D ASSISTANT: A</s>"), mcfg.vocab_size)
    processor = build_processor(tokenizer, mcfg)
    model = build_model(tokenizer, mcfg, seed=0)
    items = [ex for ex in read_corpus(world) if ex.source.startswith("skill")
             and (ex.image is not None or not args.image_only)]
    t0 = time.time()
    losses = train(model, Encoder(processor), items, TrainConfig(steps=args.steps, lr=args.lr), desc="skills")
    print(f"{len(items)} skill items, {args.steps} steps in {time.time() - t0:.0f} s, "
          f"final loss {sum(losses[-20:]) / 20:.3f}")

    questions = load_mmbench(world / "MMBench" / "mmbench_dev_en.tsv")
    preds = score(model, Encoder(processor), questions, "likelihood")
    by = collections.defaultdict(list)
    for q, p in zip(questions, preds):
        by[q.category].append(p.correct)
        by["(multimodal)" if q.image is not None else "(text)"].append(p.correct)
    for name, hits in sorted(by.items()):
        print(f"{name:<14} {sum(hits) / len(hits):6.1%}  n={len(hits)}")


if __name__ == "__main__":
    main()
