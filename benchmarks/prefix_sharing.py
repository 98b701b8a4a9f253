"""Does prefix sharing change what the evaluation answers? Compared per dtype and scoring.

Scores the same questions (the general benchmark, every celebrity's and the fine-tuned
people's questions) on the world's base and fine-tuned models with ``share_prefix`` on and
off, and prints how many predictions agree, both accuracies and the largest difference of
any option's score. As a yardstick for rounding, the plain passes are run again with another
batch size (other padding, other kernel shapes): what changes there is not sharing's doing.

    python benchmarks/prefix_sharing.py [--cache DIR] [--dtypes bfloat16,float32]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pulse_unlearn.data.batches import Encoder
from pulse_unlearn.data.mllmu import load_people
from pulse_unlearn.data.mmbench import load_mmbench
from pulse_unlearn.evaluation.scorers import Scorer
from pulse_unlearn.models.load import load_model
from pulse_unlearn.models.world_models import build_base, build_finetuned, finetune_examples, models_config
from pulse_unlearn.pipeline import ensure_world
from pulse_unlearn.world.build import world_config


def compare(label: str, a, b) -> None:
    same = sum(x.predicted == y.predicted for x, y in zip(a, b))
    gap = max(abs(x.scores[k] - y.scores[k]) for x, y in zip(a, b) for k in x.scores)
    acc = [sum(p.correct for p in r) / len(r) for r in (a, b)]
    print(f"  {label:<34} same prediction {same}/{len(a)}  accuracy {acc[0]:.2%} vs {acc[1]:.2%}  "
          f"largest score difference {gap:.2e}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "pulse-prefix-sharing")
    ap.add_argument("--dtypes", default="bfloat16,float32")
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    wcfg, mcfg = world_config("default"), models_config("default")
    world = ensure_world(wcfg, args.cache, log=lambda *_: None)
    quiet = dict(log=lambda *_: None)
    base_dir = build_base(world, wcfg.training_fingerprint(), mcfg, args.cache / "models", **quiet)
    ft_dir = build_finetuned(world, wcfg.training_fingerprint(), mcfg, args.cache / "models", **quiet)
    ft_people = set(finetune_examples(world, mcfg)[0])
    questions = load_mmbench(world / "MMBench" / "mmbench_dev_en.tsv")
    questions += [q for p in load_people(world / "MLLMU-Bench", "Retain_Set") for q in p.questions]
    questions += [q for p in load_people(world / "MLLMU-Bench", "Full_Set") if p.id in ft_people for q in p.questions]

    for name, path in (("base", base_dir), ("fine-tuned", ft_dir)):
        for dtype in args.dtypes.split(","):
            model, processor = load_model(path, dtype=dtype, device="cpu")
            enc = Encoder(processor)
            for scoring in ("likelihood", "logits"):
                print(f"{name}, {dtype}, {scoring} scoring, {len(questions)} questions")
                run = {(bs, share): Scorer(enc, questions, scoring, bs, share)(model)
                       for bs, share in ((args.batch_size, False), (args.batch_size, True),
                                         (args.batch_size // 4, False))}
                plain = run[(args.batch_size, False)]
                compare("shared prefix vs plain", run[(args.batch_size, True)], plain)
                compare(f"plain, batch {args.batch_size // 4} vs {args.batch_size}",
                        run[(args.batch_size // 4, False)], plain)


if __name__ == "__main__":
    main()
