"""One unlearning operation: attach a fresh LoRA adapter, run the method, merge (or stack).

Which parameters move is the *update strategy*:
- ``llm``: LoRA on the language model's linear layers;
- ``projector_llm``: the same plus the multimodal projector's linear layers.
The vision tower and the output head never move. The layers are found in the model's module
tree (``models/lora.py: lora_targets``), so LLaVA, LLaVA-NeXT and Qwen2-VL-style names all work. The
reference model for KL/NPO is this very model with the adapter disabled, i.e. the model at
the start of the operation. After the operation the adapter is merged into the weights, so a
following operation (sequential unlearning) starts from the result and gets a fresh adapter
whose disabled state is that result. Under several processes the model is wrapped in DDP
(each process takes every N-th batch) or sharded by FSDP2 (every process takes every batch; the
reference pass then runs through the sharded model too), see ``distributed``.

Per-request adapters (``unlearn.adapters``): ``merge`` as above; ``stack`` keeps each earlier
operation's adapter unmerged, active and frozen beside the new one (``stacked``: their state
dicts, in order), the model never changing under them; the reference is then the model with the
earlier adapters and without the new one, and what is returned for evaluation is a merged copy
(the caller's model is handed back unchanged by ``unload``); ``orthogonal`` is ``stack`` plus
O-LoRA's penalty against the earlier adapters' A matrices, added to the forget term.

Continual-unlearning options (``gradients.py``): a method's saliency mask is computed on the
plain model before training; ``unlearn.projection: gru`` adds a retain-NLL backward pass per
step and projects the forget gradient. Under FSDP, whose gradients are shards, neither these
nor stacked adapters are available (``unsupported_under_fsdp``).

Stopping: the budget is ``unlearn.epochs`` epochs over the forget set (``max_epochs`` under
``stop: target``; steps = epochs x batches). With a ``monitor``, the model is evaluated at step 0,
every ``eval_every`` steps and at the end, and the operation stops early when the monitor says
so (``evaluation/stopping.py``: the rule is the caller's). Forget and retain batches are paired
one to one, the retain batches cycling. A non-finite loss stops the operation and is
reported, never hidden.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import torch

from .. import distributed
from ..config.schema import UnlearnConfig
from ..data.batches import Encoder, balanced_batch_indices, batch_indices, collate
from ..models.lora import attach_lora, lora_targets
from ..progress import bar
from ..records import Example
from . import losses
from .gradients import GradientEdit, a_matrices, orthogonality, saliency_masks
from .registry import Method, Step

# monitor(model, step, examples) -> stop?  Called at checkpoints, the model in eval mode.
Monitor = Callable[[object, int, int], bool]


@dataclass
class OperationLog:
    losses: list[float] = field(default_factory=list)
    diverged_at: int | None = None  # step whose loss was NaN/inf, if any
    checkpoints: list[int] = field(default_factory=list)  # steps the monitor saw
    stopped_early: bool = False  # the monitor asked to stop before the budget was spent
    examples: int = 0  # forget examples trained on (this process's batches)
    tokens: int = 0  # token positions of the forget and retain batches (padding included)
    seconds: float = 0.0  # wall time of the training loop (each step's loss.item() waits for the device)
    monitor_seconds: float = 0.0  # wall time of the checkpoints' evaluations (not in ``seconds``)

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None


def unsupported_under_fsdp(method: Method, cfg: UnlearnConfig) -> str | None:
    """What of this operation FSDP cannot run (its gradients and A matrices are shards), or None."""
    used = [what for what, on in (("a saliency mask", method.saliency() is not None),
                                  ("unlearn.projection: gru", cfg.projection != "none"),
                                  (f"unlearn.adapters: {cfg.adapters}", cfg.adapters != "merge")) if on]
    return f"method {method.name}: {', '.join(used)} needs whole gradients; launch with DDP" if used else None


def unlearn(model, encoder: Encoder, method: Method, forget: Sequence[Example], retain: Sequence[Example],
            update: str, cfg: UnlearnConfig, desc: str = "unlearning", on_adapter=None, monitor: Monitor | None = None,
            stacked: Sequence[dict] = (), replay: Sequence[Example] = (), forget_groups: Sequence[str] = ()):
    """Run one operation on ``model`` (a plain transformers model); returns (merged model, log).
    ``on_adapter(peft_model)``, when given, sees the trained adapter before it is merged (the
    runner saves it, so that a resumed run re-applies it instead of training again).
    ``monitor``, when given, sees the model at each checkpoint (``cfg.eval_every``) and may stop it.
    ``stacked``: the unit's earlier adapters (peft state dicts) under ``adapters: stack|orthogonal``.
    ``replay``: general data for methods with ``needs_replay`` (batches drawn from a stream of
    their own, seed + 2, so that the forget and retain batches are the same with or without it).
    ``forget_groups``: a label per forget example (its concept's kind); with ``cfg.balance:
    concepts`` and two or more labels, every forget batch holds each in equal shares."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    project = cfg.projection != "none"
    f_enc, r_enc, p_enc = _encode(encoder, method, forget, retain, replay, retain_too=project)
    peft_model = attach_lora(model, cfg.lora, lora_targets(model, update, method.lora_layers()))
    earlier = _stack(peft_model, stacked) if cfg.adapters != "merge" else []
    if cfg.gradient_checkpointing:
        peft_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in peft_model.parameters() if p.requires_grad]
    device = next(peft_model.parameters()).device
    pad = encoder.tokenizer.pad_token_id
    # before wrapping: every process computes the mask alike on the plain model
    mask = _saliency_mask(method, peft_model, params, f_enc, r_enc, cfg, pad, device)
    # Several processes: DDP or FSDP2 (accelerate) around the model.
    training = distributed.wrap_for_training(peft_model, torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0))
    edit = GradientEdit(params, cfg.projection, cfg.gru_gamma, mask) if project or mask else None
    penalty = orthogonality(peft_model, [a_matrices(s) for s in stacked]) \
        if cfg.adapters == "orthogonal" and stacked else None
    epochs = cfg.budget_epochs
    balanced = cfg.balance == "concepts" and len(set(forget_groups)) > 1
    epoch = (partial(balanced_batch_indices, f_enc, forget_groups) if balanced else partial(batch_indices, f_enc))
    order = distributed.my_batches([b for _ in range(epochs) for b in epoch(cfg.batch_size, gen)])
    batches = _batch_pairs(f_enc, r_enc, order, cfg.batch_size, gen, pad, device,
                           p_enc, torch.Generator().manual_seed(cfg.seed + 2))
    every = cfg.every_steps(max(1, len(order) // epochs)) if monitor is not None else None

    def checkpoint(step: int, examples: int) -> bool:
        stop = monitor(_evaluation_model(peft_model), step, examples)
        peft_model.train()
        return stop

    forget_term = method.forget_loss if penalty is None else partial(_penalised, method, penalty, cfg.orthogonal_weight)
    log = _train(method, training, peft_model, batches, len(order), cfg.max_grad_norm, desc,
                 checkpoint if every else None, every, forget_term=forget_term, edit=edit,
                 without_new=partial(_without_new_adapter, peft_model, bool(earlier)))
    peft_model.eval()
    if cfg.gradient_checkpointing:
        peft_model.gradient_checkpointing_disable()
    peft_model = training.finish()  # FSDP: gathered into a plain model on every process
    with contextlib.suppress(AttributeError):
        peft_model.base_model.model.eval()
    if on_adapter is not None:
        on_adapter(peft_model)
    if cfg.adapters != "merge":
        merged = copy.deepcopy(peft_model).merge_and_unload()  # every adapter, earlier ones included
        peft_model.unload()  # the caller's model, as it came in
        return merged, log
    return peft_model.merge_and_unload(), log


def _stack(peft_model, states: Sequence[dict]) -> list[str]:
    """The unit's earlier adapters beside the new one (``default``): loaded in order under names of
    their own, all active, the earlier ones frozen. Returns their names."""
    from peft import set_peft_model_state_dict

    names = [f"earlier{i}" for i in range(1, len(states) + 1)]
    with torch.random.fork_rng():  # peft draws each added adapter before it is overwritten: the
        for name, state in zip(names, states, strict=True):  # training's random stream stays merge's
            peft_model.add_adapter(name, copy.deepcopy(peft_model.peft_config["default"]))
            loaded = set_peft_model_state_dict(peft_model, state, adapter_name=name)
            if loaded.unexpected_keys:
                raise RuntimeError(f"a stacked adapter does not fit the model: {loaded.unexpected_keys[0]}")
    if names:
        peft_model.base_model.set_adapter(["default", *names])
        for key, p in peft_model.named_parameters():
            if any(f".{name}." in key for name in names):
                p.requires_grad_(False)
    return names


@contextlib.contextmanager
def _without_new_adapter(peft_model, stacked: bool):
    """The model as it was at the start of the operation: without adapters (merge), or with the
    earlier adapters only (stack: the new adapter's scaling is 0 for the duration)."""
    if not stacked:
        with peft_model.disable_adapter():
            yield
        return
    from peft.tuners.lora import LoraLayer

    layers = [m for m in peft_model.modules() if isinstance(m, LoraLayer) and "default" in m.scaling]
    scales = [m.scaling["default"] for m in layers]
    for m in layers:
        m.scaling["default"] = 0.0
    try:
        yield
    finally:
        for m, scale in zip(layers, scales, strict=True):
            m.scaling["default"] = scale


def _saliency_mask(method: Method, peft_model, params, f_enc, r_enc, cfg: UnlearnConfig, pad, device):
    """The method's saliency mask over ``params`` (None if it has none), from its first ``batches``
    batch pairs of a draw of its own (seed + 1: the training order stays the same)."""
    if method.saliency() is None:
        return None
    threshold, n = method.saliency()
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    pairs = ((f, r) for f, r, _ in _batch_pairs(f_enc, r_enc, batch_indices(f_enc, cfg.batch_size, gen)[:n],
                                                cfg.batch_size, gen, pad, device))
    mask, _ = saliency_masks(params, pairs, lambda b: _nll(peft_model, b), threshold)
    return mask


def _penalised(method: Method, penalty, weight: float, step: Step) -> torch.Tensor:
    """The forget term plus O-LoRA's weighted orthogonality penalty."""
    return method.forget_loss(step) + weight * penalty()


MERGED_COPY_BYTES = 1 << 30


def _evaluation_model(peft_model):
    """The model a checkpoint evaluates: a merged copy when it is small (≤ 1 GiB, one process),
    so that it runs as fast as the merged model does at the end of the operation and with the
    same weights; else the adapter model itself (on a GPU the adapter's extra matmuls are cheap,
    and a 7B copy would not fit). Either way the training weights are not touched."""
    size = sum(p.numel() * p.element_size() for p in peft_model.parameters())
    if distributed.world_size() > 1 or size > MERGED_COPY_BYTES:
        return peft_model
    return copy.deepcopy(peft_model).merge_and_unload()


def _nll(model, batch: dict) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return losses.nll(model(**inputs).logits, batch["labels"])


def _encode(encoder: Encoder, method: Method, forget: Sequence[Example], retain: Sequence[Example],
            replay: Sequence[Example] = (), retain_too: bool = False):
    """The forget set (with the method's own answer, if it has one) and, when the method (or
    ``retain_too``: the projection) uses it, the retain set, and the replay set when the method
    uses one, encoded."""
    if method.forget_answer is not None:
        forget = [Example(ex.prompt, method.forget_answer, ex.image, ex.source) for ex in forget]
    f_enc = encoder.encode(forget)
    wanted = method.needs_retain or retain_too
    r_enc = encoder.encode(retain) if wanted else None
    if wanted and not len(r_enc):
        raise ValueError(f"method {method.name} needs retain data")
    if method.needs_replay and not replay:
        raise ValueError(f"method {method.name} needs replay data (data.replay)")
    return f_enc, r_enc, encoder.encode(replay) if method.needs_replay else None


def _batch_pairs(f_enc, r_enc, order, batch_size: int, gen: torch.Generator, pad: int, device,
                 p_enc=None, replay_gen: torch.Generator | None = None):
    """Each forget batch of ``order`` with the next retain batch and the next replay batch (None
    without a retain or replay set), on ``device``. Lazy: the retain batches are drawn from
    ``gen`` one step at a time, after the forget order, as the loop asks for them; the replay
    batches from ``replay_gen``."""
    retain_stream = _cycle(r_enc, batch_size, gen) if r_enc is not None else None
    replay_stream = _cycle(p_enc, batch_size, replay_gen) if p_enc is not None else None

    def to_device(batch):
        return {k: v.to(device) for k, v in batch.items()}

    for idx in order:
        forget = to_device(collate(f_enc, idx, pad))
        retain = to_device(collate(r_enc, next(retain_stream), pad)) if retain_stream else None
        replay = to_device(collate(p_enc, next(replay_stream), pad)) if replay_stream else None
        yield forget, retain, replay


def _train(method: Method, training, peft_model, batches, steps: int, max_grad_norm: float, desc: str,
           checkpoint: Callable[[int, int], bool] | None = None, every: int | None = None,
           forget_term=None, edit: GradientEdit | None = None, without_new=None) -> OperationLog:
    """The training loop: one optimizer step per (forget, retain, replay) batch triple, the forget
    term's backward pass before the retain term's and the replay term's (with GRU, a retain-NLL
    pass after the forget term's that only sets the direction); stops at the first NaN/inf loss,
    or when ``checkpoint(step, examples)`` (called at step 0, every ``every`` steps and after the
    last) returns True."""
    opt = training.optimizer
    passes = _Passes(training, peft_model, without_new or (lambda: peft_model.disable_adapter()))
    forget_term = forget_term or method.forget_loss

    log = OperationLog()

    def at_checkpoint() -> bool:
        t = time.perf_counter()
        log.checkpoints.append(len(log.losses) - (log.diverged_at is not None))
        stop = checkpoint(log.checkpoints[-1], log.examples)
        log.monitor_seconds += time.perf_counter() - t
        return stop

    peft_model.train()
    t0 = time.perf_counter()
    if checkpoint is not None and at_checkpoint():
        log.stopped_early = steps > 0
        batches = ()
    with bar(steps, desc) as pbar:
        for forget, retain, replay in batches:
            step = Step(forget=forget, retain=retain, forward=passes.forward, reference=passes.reference,
                        hidden=passes.hidden, replay=replay)
            log.tokens += sum(b["input_ids"].numel() for b in (forget, retain, replay) if b is not None)
            opt.zero_grad(set_to_none=True)
            loss = _gradients(method, step, forget_term, training.backward, edit, passes.retain_nll)
            log.losses.append(loss)
            if not math.isfinite(loss):
                log.diverged_at = len(log.losses) - 1
                break
            training.clip(max_grad_norm)
            opt.step()
            log.examples += len(forget["input_ids"])
            pbar.update(1)
            done = len(log.losses)
            if checkpoint is not None and done < steps and done % every == 0 and at_checkpoint():
                log.stopped_early = True
                break
    if checkpoint is not None and not log.stopped_early and log.checkpoints[-1] != len(log.losses) - (
            log.diverged_at is not None):
        at_checkpoint()
    log.seconds = time.perf_counter() - t0 - log.monitor_seconds
    return log


class _Passes:
    """The forward passes a step's losses use: with grad through the (wrapped) model; and the
    reference, the model at the start of the operation (``without_new``), with no grad."""

    def __init__(self, training, peft_model, without_new):
        self.training, self.peft_model, self.without_new = training, peft_model, without_new

    def forward(self, batch):
        return self.training.model(**batch).logits

    def reference(self, batch):  # FSDP2 shards peft_model in place: this pass gathers its weights as the other does
        with torch.no_grad(), self.without_new():
            return self.peft_model(**batch).logits

    def hidden(self, batch, index, from_reference=False):
        if from_reference:
            with torch.no_grad(), self.without_new():
                return self.peft_model(**batch, output_hidden_states=True).hidden_states[index]
        return self.training.model(**batch, output_hidden_states=True).hidden_states[index]

    def retain_nll(self, step):
        return _nll(self.training.model, step.retain)


def _gradients(method: Method, step: Step, forget_term, backward, edit: GradientEdit | None, retain_nll) -> float:
    """One step's backward passes, the loss they add up to (NaN/inf stops them): the forget term;
    with GRU the retain NLL, which only sets the direction; the method's retain and replay terms;
    the edits."""
    loss = _backward(forget_term, step, backward)
    if math.isfinite(loss) and edit is not None and edit.project:
        edit.forget_done()
        direction = _backward(retain_nll, step, backward)
        edit.retain_direction_done()
        loss = loss if math.isfinite(direction) else direction
    if math.isfinite(loss) and method.needs_retain:
        loss += _backward(method.retain_loss, step, backward)
    if math.isfinite(loss) and method.needs_replay:
        loss += _backward(method.replay_loss, step, backward)
    if math.isfinite(loss) and edit is not None:
        edit.finish()
    return loss


def _backward(term, step: Step, backward=None) -> float:
    """Back-propagate one loss term (unless it is NaN/inf, on any process) and return its value;
    one term's activations are freed before the next term's forward pass."""
    value = term(step)
    out = value.item()
    if distributed.any_true(not math.isfinite(out)):
        return out if not math.isfinite(out) else math.nan
    (backward or torch.Tensor.backward)(value)
    return out


def _cycle(enc, batch_size: int, gen: torch.Generator):
    while True:
        yield from batch_indices(enc, batch_size, gen)
