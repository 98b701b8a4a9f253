"""Loss helpers: pure functions of logits and answer-only labels (-100 = not scored).

Logits at position t predict the token at t+1, so labels are shifted left by one here (and in
``logprobs.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..data.batches import IGNORE
from ..logprobs import answer_nll, sequence_logprobs  # noqa: F401  (loss helpers too)


def nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood over all answer tokens of the batch (token-weighted)."""
    return F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=IGNORE)


def gradient_ascent(forget_nll: torch.Tensor) -> torch.Tensor:
    """GA: L = -NLL(forget). Minimising it raises the forget answers' loss without bound."""
    return -forget_nll


def kl_on_answers(ref_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(p_ref || p_theta) per answer token, averaged over the batch's answer tokens.

    Direction: the reference (the model before unlearning) is the first argument, as in
    open-unlearning's retain term: sum_v p_ref(v) (log p_ref(v) - log p_theta(v)). Prompt,
    image and padding positions are excluded (MLLMU-Bench's KL includes them).
    """
    mask = labels[:, 1:] != IGNORE
    ref_logp = torch.log_softmax(ref_logits[:, :-1].float(), -1)[mask]
    logp = torch.log_softmax(logits[:, :-1].float(), -1)[mask]
    return (ref_logp.exp() * (ref_logp - logp)).sum(-1).mean()


def npo(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO forget term, per sequence then averaged:
    (2/beta) * log(1 + (pi_theta(y|x) / pi_ref(y|x))^beta) = -(2/beta) * log sigmoid(-beta * (logp - ref_logp)),
    with ``logp``/``ref_logp`` the summed answer-token log-probabilities of each sequence."""
    return (-2.0 / beta * F.logsigmoid(-beta * (logp - ref_logp))).mean()


def simnpo(logp: torch.Tensor, n_tokens: torch.Tensor, beta: float, delta: float = 0.0) -> torch.Tensor:
    """SimNPO (no reference): -(2/beta) * log sigmoid(beta * (avg NLL - delta)), avg NLL = -logp / |y|,
    per sequence then averaged."""
    avg_nll = -logp / n_tokens.clamp(min=1)
    return (-2.0 / beta * F.logsigmoid(beta * (avg_nll - delta))).mean()
