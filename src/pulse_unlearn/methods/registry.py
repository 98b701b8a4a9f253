"""Unlearning methods: one small class each, defining only its loss.

A method sees a ``Step``: the paired forget and retain batches (answer-only labels), the
model's forward pass, ``reference`` (the same model with its unlearning adapter disabled,
i.e. the model as it was at the start of this operation; no copy is made) and ``hidden`` (the
language model's hidden states, for losses on representations such as RMU's).
Class attributes tell the runner what to prepare: a retain batch, a replay batch (general
data held out of evaluation, ``data.replay``), and whether forget answers are replaced (IDK).
A method's parameters are a nested ``Params`` model (types and ranges), which
``method_params`` in a config is checked against when the config is loaded; they read as
attributes (``self.beta``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import Field

from ..core.names import unknown_name
from ..core.params import Parametrized, StrictParams
from ..core.registry import Registry
from . import losses

REFUSAL = "I don't know."


@dataclass
class Step:
    forget: dict
    retain: dict | None
    forward: Callable[[dict], torch.Tensor]  # batch (labels removed) -> logits, with grad
    reference: Callable[[dict], torch.Tensor]  # same, adapter disabled, no grad
    # (batch, index, reference) -> the language model's hidden_states[index] (B, T, d): 0 is the
    # embeddings, i the output of decoder layer i-1; reference=True: adapter disabled, no grad
    hidden: Callable[[dict, int, bool], torch.Tensor] | None = None
    replay: dict | None = None  # a batch of general replay data (methods with ``needs_replay``)


def _split(batch: dict) -> tuple[dict, torch.Tensor]:
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return inputs, batch["labels"]


class MethodParams(StrictParams):
    """A method's parameters: each declared with its type (float, int, bool or str) and range."""


class Method(Parametrized):
    kind: ClassVar[str] = "method"
    name: ClassVar[str]
    needs_retain: ClassVar[bool] = False
    needs_replay: ClassVar[bool] = False
    forget_answer: ClassVar[str | None] = None  # replaces every forget answer when set
    Params: ClassVar[type[MethodParams]] = MethodParams  # a method with parameters declares its own

    def lora_layers(self) -> tuple[int, ...] | None:
        """The language model's decoder layers (0-based) the adapter is put on; None: all of them."""
        return None

    def saliency(self) -> tuple[float, int] | None:
        """(threshold, batches) when only salient adapter entries may move (``gradients.py``), else None."""
        return None

    def check(self, decoder_layers: int) -> str | None:
        """Why the parameters do not fit a model with this many decoder layers, or None."""
        return None

    def forget_loss(self, step: Step) -> torch.Tensor:
        """The term on the forget batch."""
        raise NotImplementedError

    def retain_loss(self, step: Step) -> torch.Tensor | None:
        """The term on the retain batch (methods with ``needs_retain``), else None."""
        return None

    def replay_loss(self, step: Step) -> torch.Tensor | None:
        """The term on the replay batch (methods with ``needs_replay``), else None."""
        return None

    # helpers shared by the losses below
    @staticmethod
    def nll_of(step: Step, batch: dict) -> torch.Tensor:
        inputs, labels = _split(batch)
        return losses.nll(step.forward(inputs), labels)

    @staticmethod
    def hidden_of(step: Step, batch: dict, index: int, reference: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden_states[index] of ``batch`` and the positions that predict its answer tokens."""
        inputs, labels = _split(batch)
        return step.hidden(inputs, index, reference), losses.predicting_positions(labels)

    @staticmethod
    def kl_of(step: Step, batch: dict) -> torch.Tensor:
        """KL(p_ref || p_theta) over ``batch``'s answer tokens."""
        inputs, labels = _split(batch)
        return losses.kl_on_answers(step.reference(inputs), step.forward(inputs), labels)

    @staticmethod
    def seq_logp(step: Step, batch: dict, reference: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, labels = _split(batch)
        logits = step.reference(inputs) if reference else step.forward(inputs)
        return losses.sequence_logprobs(logits, labels)


# Built-ins below; other packages add theirs through the entry-point group ``pulse_unlearn.methods``.
METHODS: Registry[type[Method]] = Registry("method", "pulse_unlearn.methods")


def register(cls: type[Method]) -> type[Method]:
    return METHODS.register(cls)


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``."""
    if name not in METHODS:
        raise ValueError(unknown_name("method", name, sorted(METHODS)))
    return METHODS[name]


def make_method(name: str, **params) -> Method:
    """An instance of the method ``name`` with ``params`` (checked against its ``Params``)."""
    return get_method(name)(**params)


@register
class GA(Method):
    """Gradient ascent: L = -NLL(forget)."""

    name = "ga"

    def forget_loss(self, step):
        return losses.gradient_ascent(self.nll_of(step, step.forget))


@register
class GradDiff(Method):
    """Gradient difference: L = -gamma * NLL(forget) + alpha * NLL(retain)."""

    name = "grad_diff"
    needs_retain = True

    class Params(MethodParams):
        gamma: float = Field(1.0, ge=0)  # weight of the ascent on forget
        alpha: float = Field(1.0, ge=0)  # weight of the retain NLL

    def forget_loss(self, step):
        return self.gamma * losses.gradient_ascent(self.nll_of(step, step.forget))

    def retain_loss(self, step):
        return self.alpha * self.nll_of(step, step.retain)


@register
class GAKLR(Method):
    """GA + KL on retain: L = -NLL(forget) + alpha * KL(p_ref || p_theta) over retain answer tokens."""

    name = "ga_klr"
    needs_retain = True

    class Params(MethodParams):
        alpha: float = Field(1.0, ge=0)  # weight of the retain KL

    def forget_loss(self, step):
        return losses.gradient_ascent(self.nll_of(step, step.forget))

    def retain_loss(self, step):
        return self.alpha * self.kl_of(step, step.retain)


@register
class NPO(Method):
    """NPO: L = mean over forget sequences of -(2/beta) log sigmoid(-beta (log pi_theta(y|x) - log pi_ref(y|x)))."""

    name = "npo"

    class Params(MethodParams):
        beta: float = Field(0.1, gt=0)  # inverse temperature of the preference loss

    def forget_loss(self, step):
        logp, _ = self.seq_logp(step, step.forget)
        ref_logp, _ = self.seq_logp(step, step.forget, reference=True)
        return losses.npo(logp, ref_logp, self.beta)


@register
class NPORT(NPO):
    """NPO + retain NLL: L = NPO(forget) + alpha * NLL(retain)."""

    name = "npo_rt"
    needs_retain = True

    class Params(NPO.Params):
        alpha: float = Field(1.0, ge=0)  # weight of the retain NLL

    def retain_loss(self, step):
        return self.alpha * self.nll_of(step, step.retain)


@register
class SimNPO(Method):
    """SimNPO (reference-free): L = -(2/beta) log sigmoid(beta (avg NLL(forget) - delta)) + alpha * NLL(retain)."""

    name = "simnpo"
    needs_retain = True

    class Params(MethodParams):
        beta: float = Field(2.5, gt=0)  # inverse temperature
        delta: float = 0.0  # margin on the length-normalised NLL
        alpha: float = Field(1.0, ge=0)  # weight of the retain NLL

    def forget_loss(self, step):
        logp, n = self.seq_logp(step, step.forget)
        return losses.simnpo(logp, n, self.beta, self.delta)

    def retain_loss(self, step):
        return self.alpha * self.nll_of(step, step.retain)


@register
class IDK(Method):
    """Refusal tuning: L = NLL(forget questions -> "I don't know.") + alpha * NLL(retain)."""

    name = "idk"
    needs_retain = True
    forget_answer = REFUSAL

    class Params(MethodParams):
        alpha: float = Field(1.0, ge=0)  # weight of the retain NLL

    def forget_loss(self, step):
        return self.nll_of(step, step.forget)

    def retain_loss(self, step):
        return self.alpha * self.nll_of(step, step.retain)


@register
class RMU(Method):
    """RMU (representation misdirection, Li et al. 2024): at the output of decoder layer ``layer``
    (0-based), over the positions that predict answer tokens,
    L = mean (1/d)||h_f - c u||^2 + alpha * mean (1/d)||h_r - h_ref||^2,
    u a seeded random unit vector (``seed``), c = ``steering``, h_ref the starting model's. The
    adapter sits on ``layer`` and the ``update_layers - 1`` layers below it (WMDP updates l-2..l);
    layers above get no gradient from a loss at ``layer``. The defaults suit the embedded world's
    model (hidden 128, entries of order 1); WMDP's for 7B models: steering 6.5, alpha 1200."""

    name = "rmu"
    needs_retain = True

    class Params(MethodParams):
        layer: int = Field(1, ge=0)  # 0-based decoder layer whose output is steered
        update_layers: int = Field(3, ge=1)  # the adapter's layers: layer and those just below it
        steering: float = Field(20.0, gt=0)  # c = ||c u||
        alpha: float = Field(100.0, ge=0)  # weight of the retain term
        seed: int = Field(0, ge=0, le=2**32 - 1)  # draws u

    def lora_layers(self):
        return tuple(range(max(0, self.layer - self.update_layers + 1), self.layer + 1))

    def check(self, decoder_layers):
        if self.layer >= decoder_layers:
            return (f"method_params.rmu.layer: must be below the model's {decoder_layers} decoder layers "
                    f"(counted from 0; got {self.layer})")
        return None

    def forget_loss(self, step):
        hidden, mask = self.hidden_of(step, step.forget, self.layer + 1)
        control = losses.rmu_control(hidden.shape[-1], self.steering, self.seed).to(hidden.device)
        return losses.representation_mse(hidden, control.expand_as(hidden), mask)

    def retain_loss(self, step):
        hidden, mask = self.hidden_of(step, step.retain, self.layer + 1)
        ref, _ = self.hidden_of(step, step.retain, self.layer + 1, reference=True)
        return self.alpha * losses.representation_mse(hidden, ref.detach(), mask)


@register
class MMUnlearner(GradDiff):
    """MMUnlearner-style saliency (arXiv 2502.11051): L = -NLL(forget) + alpha * NLL(retain), but only
    the adapter entries whose saliency s = E[g_f^2] / E[g_r^2] >= ``threshold`` move; the
    expectations over ``batches`` (forget, retain) batch pairs of NLL gradients at the start of the
    operation (``gradients.py``). The retain set holds the retain people's multimodal and
    text-only facts, the preserve set that paper uses. A fresh LoRA adapter has B = 0, so every A
    gradient is 0 there: the mask selects among the B entries, and A stays as drawn."""

    name = "mmunlearner"

    class Params(MethodParams):
        alpha: float = Field(1.0, ge=0)  # weight of the retain NLL
        threshold: float = Field(1.0, gt=0)  # s >= threshold moves
        batches: int = Field(4, ge=1)  # batch pairs the saliency is averaged over

    gamma = 1.0  # GradDiff's ascent weight

    def saliency(self):
        return self.threshold, self.batches


class Anchored(Method):
    """Two anchors for a forget term of a subclass:
    alpha * R[retain] + rho * KL(p_ref || p_theta)[replay], over answer tokens, ``replay`` general
    items held out of evaluation (``data.replay``), p_ref the model at the start of the operation.
    R is NLL (``retain: nll``: trains the retain answers further, which lets the forget term go
    further too) or KL(p_ref || p_theta) (``retain: kl``: holds the retain distribution where it
    was). The replay KL keeps general skills that no person's facts exercise."""

    needs_retain = True
    needs_replay = True

    def retain_loss(self, step):
        term = self.nll_of(step, step.retain) if self.retain == "nll" else self.kl_of(step, step.retain)
        return self.alpha * term

    def replay_loss(self, step):
        return self.rho * self.kl_of(step, step.replay)


class AnchorParams(MethodParams):
    alpha: float = Field(1.0, ge=0)  # weight of the retain term
    retain: Literal["nll", "kl"] = "nll"  # the retain term: NLL or KL to the starting model
    rho: float = Field(1.0, ge=0)  # weight of the replay KL


@register
class SimNPOReplay(Anchored, SimNPO):
    """pulse-unlearn's method for sequential requests: SimNPO's forget term, anchored twice,
    L = -(2/beta) mean log sigmoid(beta (avg NLL(forget) - delta))
        + alpha * NLL(retain) + rho * KL(p_ref || p_theta)[replay].
    The forget term is length-normalised and saturates once a request's answers are unlikely, so
    one request's gradient does not outweigh the anchors (NPO's sums log-ratios over an answer's
    tokens; on the world a request under NPO or GA takes the pending requests and the retain
    people with it). Run it with ``unlearn.adapters: orthogonal`` (each request in a subspace of
    its own): README, "A method for sequential requests"."""

    name = "simnpo_replay"

    class Params(AnchorParams, SimNPO.Params):
        pass


@register
class NPOReplay(Anchored, NPO):
    """The same anchors on NPO's forget term (the forget-term ablation of ``simnpo_replay``):
    L = NPO_beta(forget) + alpha * R[retain] + rho * KL(p_ref || p_theta)[replay]."""

    name = "npo_replay"

    class Params(AnchorParams, NPO.Params):
        pass
