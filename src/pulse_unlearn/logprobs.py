"""Answer log-probabilities from logits and answer-only labels: what both the likelihood
scorer and the sequence-level losses (NPO, SimNPO) read. Logits at position t predict the
token at t+1, so labels are shifted left by one here."""

from __future__ import annotations

import torch

from .data.batches import IGNORE


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sequence: the summed log-probability of its answer tokens, and how many there are."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    mask = labels != IGNORE
    logp = torch.log_softmax(logits, dim=-1)
    token_logp = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    return token_logp.sum(-1), mask.sum(-1)
