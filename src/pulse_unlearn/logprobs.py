"""Answer log-probabilities from logits and answer-only labels: what both the likelihood
scorer and the sequence-level losses (NPO, SimNPO) read, and the answer-only NLL the world's
training loop minimises. Logits at position t predict the
token at t+1, so labels are shifted left by one here."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data.batches import IGNORE


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence: the summed log-probability of its answer tokens, and how many there are."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != IGNORE
    logp = torch.log_softmax(logits, dim=-1)
    token_logp = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    return token_logp.sum(-1), mask.sum(-1)


def answer_nll(answer_logits: torch.Tensor, labels: torch.Tensor, segments: torch.Tensor | None = None) -> torch.Tensor:
    """``nll`` from logits computed at answer-predicting positions only: ``answer_logits`` is
    (answer tokens, vocabulary), in the row-major order of the answer tokens in ``labels``.

    With ``segments`` (same shape as ``labels``: a batch-unique id of the sequence each position
    belongs to; ``data.batches.sequence_ids``), every
    sequence weighs the same: the mean over sequences of each one's mean answer-token NLL. Why:
    token weighting lets a few long answers (biographies, 45 tokens) outweigh many short facts
    (2-3 tokens) in the gradient.
    """
    targets = labels[:, 1:]
    scored = targets != IGNORE
    per_token = F.cross_entropy(answer_logits.float(), targets[scored], reduction="none")
    if segments is None:
        return per_token.mean()
    _, owner, counts = torch.unique(segments[:, 1:][scored], return_inverse=True, return_counts=True)
    return (per_token / counts[owner]).sum() / len(counts)
