"""Two seeds, two jobs: the world seed (``model.world_seed``) makes the world, its models and the
people the fine-tuned model learns; the run seed (``seed``) draws the run's sets from them. So runs
of one world that differ in their run seed share their starting models, and a pooled comparison can
tell world-to-world variance from run-to-run variance."""

from __future__ import annotations

from pulse_unlearn.data.sources import load_sources
from pulse_unlearn.protocol import scenarios
from pulse_unlearn.protocol.catalog import units, validate

SPLITS = {"finetune_people": 6, "forget": 4, "requests": 2, "probe_threshold": 0.4, "pretrained_forget": 3,
          "pretrained_retain": 3}


def _plan(world, seed: int, world_seed: int):
    cfg = validate({"name": "s", "seed": seed, "model": {"source": "world", "preset": "tiny", "world_seed": world_seed},
                    "splits": SPLITS, "grid": [{"scenarios": ["finetuned", "sequential"], "methods": ["ga"]}]}, "s")
    src = load_sources(world / "MLLMU-Bench", world / "MMBench" / "mmbench_dev_en.tsv", 8, seed)
    return scenarios.plan(cfg, units(cfg), src, world / "MLLMU-Bench")


def test_the_run_seed_draws_the_sets_and_leaves_the_fine_tuned_people(tiny_world):
    base, other_run, other_world = _plan(tiny_world, 0, 0), _plan(tiny_world, 1, 0), _plan(tiny_world, 0, 1)
    assert len(base.finetune_people) == 6
    assert other_run.finetune_people == base.finetune_people  # the same fine-tuned model
    runs = [(p.sets["finetuned"].forget, p.sets["sequential"].requests) for p in (base, other_run)]
    assert runs[0] != runs[1]  # other forget people or another request order
    assert other_world.finetune_people != base.finetune_people
