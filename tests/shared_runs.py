"""The tiny runs several test files assert on, each run once per session (fixtures in conftest.py):
a run is the suite's costly part (a minute each on two cores), so every test file that can read the
same run does, instead of starting its own.

- ``WATCHED``: sequential unlearning watched along its trajectory and stopped by a target on the
  training facts, with the cheap attacks after every operation (tests/test_trajectory_run.py,
  tests/test_attacks.py); run whole, and run again killed in the middle of its last operation and
  resumed (both files compare the files byte for byte).
- ``ATTACKED``: the model attacks after each unit's last operation (the default), on a model
  fine-tuned on 6 of the tiny world's 10 fictitious people, so ``mia`` has 4 never-trained people
  of the same population to compare with (tests/test_attacks_quantize.py, _relearn.py, _mia.py);
  3 forget people, one per sequential request.
"""

from __future__ import annotations

from processes import rows

WATCHED = """name: watched
model: {source: world, preset: tiny}
splits: {finetune_people: 10, forget: 4, requests: 2, probe_threshold: 0.4, pretrained_forget: 3, pretrained_retain: 3}
grid:
  - {scenarios: [sequential], methods: [ga_klr], updates: [llm]}
unlearn: {lr: 3.0e-3, batch_size: 8, eval_every: 2, lora: {rank: 8, alpha: 16},
          stop: target, max_epochs: 2, target: {sees: training, rule: kept, kept: 0.5, modality: both}}
trajectory: {splits: [forget, retain, general], subset: 8}
scoring: likelihood
log_with: [tensorboard]
attacks:
  - {name: consistency}
  - {name: image_transforms, transforms: [blur], severities: [2]}
  - {name: mia}  # does not apply: all 10 fictitious people are fine-tuned on (said once in run.log)
attacks_every_operation: true
"""

ATTACKED = """name: attacked
model: {source: world, preset: tiny}
splits: {finetune_people: 6, forget: 3, requests: 3, probe_threshold: 0.4, pretrained_forget: 3, pretrained_retain: 3}
grid:
  - {scenarios: [sequential], methods: [ga], updates: [llm]}
unlearn: {lr: 3.0e-3, batch_size: 8, lora: {rank: 8, alpha: 16}}
scoring: likelihood
attacks:
  - {name: quantize, bits: [4]}
  - {name: relearn, steps: 5}
  - {name: relearn_retain, steps: 5, share: 0.5}
  - {name: mia, max_items: 40, scenarios: [finetuned]}
"""


def op2_under_way(path) -> bool:
    """trajectory.csv shows a checkpoint of operation 2 past its step 0 (so it has no record yet)."""
    try:
        return any(r["operation"] == "2" and r["step"] != "0" for r in rows(path))
    except OSError:
        return False
