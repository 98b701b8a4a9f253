"""Recovery attacks and residual-knowledge checks: is forgotten knowledge removed, or hidden?

An attack is a registered component with declared parameters (``Attack.Params``: types and
ranges, checked when the config is loaded) and declared scored splits. It runs on the model
after an operation (the last of every unit; every one with ``attacks_every_operation``) and on
the scenario's starting model, its baseline. An attack changes the *inputs* (``InputAttack``:
each item of a split rewritten; the changed items are encoded once and scored on every model)
or the *model* (``quantize``, ``relearn``: a changed copy, or an adapter removed afterwards; the
unit's model is left as it was), or reads the model's predictions (``consistency``) or losses
(``mia``) directly. An attack that reads an
input of its own (``paraphrase``, ``neighbours``: a file) checks it against the run's data when the
run starts, before anything is written, and the file joins the data's fingerprint (``Attack.inputs``).

Each attack gives ``Outcome``s (a setting, e.g. ``bits=4``, a split and predictions, or ready
metric rows), which become ``attacks.csv``'s rows per modality (``attack_rows``):

- ``value``: the attacked model's accuracy (or the attack's metric);
- ``unlearned``: the same model without the attack, on the same people and modality;
- ``start``: the starting model under the same attack (its plain-quantisation or plain-
  transform loss is thereby separated from what the attack brings back);
- ``recovery = (value - unlearned) / (start - unlearned)``: 0 = nothing came back, 1 = back to
  where the starting model is under the same attack; empty unless start exceeds unlearned by
  more than ``MIN_GAP`` (nothing was forgotten, so nothing can be recovered);
- ``ci_low`` .. ``ci_high`` the value's bootstrap interval, ``recovery_ci_low`` ..
  ``recovery_ci_high`` the recovery's: the same people drawn for the attacked, the unlearned and
  the starting model (``recovery_interval``).
"""

from .base import (ATTACKS, COLUMNS, MIN_GAP, ROW_KEY, WEIGHTS_FIXED, Attack, AttackContext, AttackParams, Distinct,
                   InputAttack, Outcome, attack_inputs, attacked, baseline_rows, make_attack, outcome_rows, public,
                   recovery, recovery_interval, with_recovery)
from . import consistency, images, mia, neighbours, paraphrase, quantize, relearn  # noqa: F401,E402  (the built-in attacks register themselves)

__all__ = ["ATTACKS", "Attack", "AttackContext", "AttackParams", "COLUMNS", "Distinct", "InputAttack", "MIN_GAP",
           "Outcome", "ROW_KEY", "WEIGHTS_FIXED", "attack_inputs", "attacked", "baseline_rows", "make_attack",
           "outcome_rows", "public", "recovery", "recovery_interval", "with_recovery"]
