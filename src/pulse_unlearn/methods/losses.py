"""Loss helpers: pure functions of logits and answer-only labels (-100 = not scored), and the
math of the continual-unlearning methods (RMU, saliency masks, gradient projection, O-LoRA's
orthogonality penalty) on plain tensors; ``unlearn.py`` and ``gradients.py`` wire them in.

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


# --- RMU: representation misdirection (Li et al. 2024, WMDP) ---------------------------------

def representation_mse(hidden: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over the selected tokens of (1/d) ||h_t - target_t||^2, hidden (B, T, d), target
    broadcastable to it, mask (B, T) bool (None: every token). Without a mask this equals
    ``F.mse_loss(hidden, target)``, the form WMDP's released RMU code uses for both terms (the
    paper writes the per-token squared L2 norm; the code's mean also divides by d)."""
    sq = (hidden.float() - target.float()).pow(2).mean(-1)
    if mask is None:
        return sq.mean()
    m = mask.to(sq.dtype)
    return (sq * m).sum() / m.sum().clamp(min=1)


def predicting_positions(labels: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: the positions whose next token is an answer token (labels[:, t+1] scored), i.e.
    the hidden states the answer is read from: the last prompt token and every answer token but
    the last. The same positions the NLL above scores."""
    mask = torch.zeros_like(labels, dtype=torch.bool)
    mask[:, :-1] = labels[:, 1:] != IGNORE
    return mask


def rmu_control(dim: int, scale: float, seed: int) -> torch.Tensor:
    """RMU's target c*u: u has i.i.d. uniform [0, 1) entries (seeded), normalised to unit L2 norm,
    c = ``scale`` (WMDP's steering coefficient); so ||c*u|| = c and every entry is >= 0."""
    u = torch.rand(dim, generator=torch.Generator().manual_seed(seed))
    return scale * u / u.norm()


# --- Saliency mask (MMUnlearner, arXiv 2502.11051) -------------------------------------------

def accumulate_sq_grads(mean: list[torch.Tensor | None] | None, grads: list[torch.Tensor | None],
                        count: int) -> list[torch.Tensor | None]:
    """Running mean of squared gradients over batches: m_{n+1} = m_n + (g^2 - m_n) / (n + 1), with
    ``count`` = n batches already in ``mean`` (None when n = 0). A None grad or mean entry counts
    as zero (None stays None while a parameter has had no gradient). Each g is one batch's mean
    gradient, so this is E_batches[g^2], a diagonal-Fisher-like importance per weight."""
    mean = mean if mean is not None else [None] * len(grads)
    out = []
    for m, g in zip(mean, grads, strict=True):
        if g is None:
            out.append(None if m is None else m * (count / (count + 1)))
            continue
        sq = g.detach().float().pow(2)
        out.append(sq / (count + 1) if m is None else m + (sq - m) / (count + 1))
    return out


def saliency(forget_sq_grads: list[torch.Tensor], retain_sq_grads: list[torch.Tensor],
             eps: float = 1e-8) -> list[torch.Tensor]:
    """Per parameter entry s = E[g_f^2] / (E[g_r^2] + eps): large where the forget data lean on a
    weight that the retain data do not."""
    return [f / (r + eps) for f, r in zip(forget_sq_grads, retain_sq_grads, strict=True)]


def saliency_mask(s: list[torch.Tensor], threshold: float = 1.0) -> list[torch.Tensor]:
    """The weights that may move: s >= threshold (bool, per entry)."""
    return [x >= threshold for x in s]


# --- Gradient projection (GRU, arXiv 2503.09117) ---------------------------------------------

def _conflict_coef(dot: torch.Tensor, retain_sq_norm: torch.Tensor) -> torch.Tensor:
    """dot / ||g_r||^2 when the gradients conflict (dot < 0), else 0 (also when g_r = 0)."""
    return torch.where(dot < 0, dot / retain_sq_norm.clamp(min=torch.finfo(dot.dtype).tiny), torch.zeros_like(dot))


def project_conflict(g_f: torch.Tensor, g_r: torch.Tensor) -> torch.Tensor:
    """g' = g_f - (g_f . g_r / ||g_r||^2) g_r if g_f . g_r < 0, else g_f: a conflicting forget
    gradient loses its component against the retain gradient (then g' . g_r = 0). Both are
    gradients of losses being minimised, so dot < 0 means a step along -g_f raises L_retain."""
    coef = _conflict_coef((g_f.float() * g_r.float()).sum(), g_r.float().pow(2).sum())
    return (g_f.float() - coef * g_r.float()).to(g_f.dtype)


def retain_ema(previous: list[torch.Tensor | None] | None, grads: list[torch.Tensor | None],
               gamma: float) -> list[torch.Tensor | None]:
    """The retain direction GRU projects against, smoothed over steps as GRU's released trainer
    does: r_t = gamma * g_r,t + (1 - gamma) * r_{t-1}, r_0 = 0 (so r_1 = gamma * g_r,1; gamma
    weights the newest gradient). A None entry counts as zero."""
    previous = previous if previous is not None else [None] * len(grads)
    out = []
    for prev, g in zip(previous, grads, strict=True):
        new = None if g is None else gamma * g.detach().float()
        if prev is not None:
            new = (1 - gamma) * prev if new is None else new + (1 - gamma) * prev
        out.append(new)
    return out


def project_grads(forget_grads: list[torch.Tensor | None],
                  retain_grads: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
    """``project_conflict`` over the concatenation of all parameters' gradients (one dot product
    and one ||g_r||^2 over every parameter, not per tensor), returned per parameter. A None
    gradient counts as zero (None back where both are None)."""
    pairs = list(zip(forget_grads, retain_grads, strict=True))
    dot = sum(((f.float() * r.float()).sum() for f, r in pairs if f is not None and r is not None),
              torch.zeros(()))
    sq = sum((r.float().pow(2).sum() for _, r in pairs if r is not None), torch.zeros(()))
    coef = _conflict_coef(dot, sq)
    out = []
    for f, r in pairs:
        if r is None:
            out.append(f)
        else:
            base = f.float() if f is not None else torch.zeros_like(r, dtype=torch.float32)
            out.append((base - coef.to(r.device) * r.float()).to((f if f is not None else r).dtype))
    return out


# --- O-LoRA orthogonality penalty (arXiv 2310.14152; continual unlearning: O3, arXiv 2407.10223) ---

def orthogonality_penalty(current_A: torch.Tensor, previous_As: list[torch.Tensor],
                          squared: bool = True) -> torch.Tensor:
    """L_orth = sum_i sum_{j,k} O_i[j,k]^2, O_i = A_i A_t^T (r_i x r_t), with A as peft stores
    lora_A: (r, in_features), whose rows span the input subspace the adapter reads; O_i holds the
    dot products of old rows with new rows, 0 iff the row spaces are orthogonal. The paper writes
    A in (in, r) layout, O = A_i^T A_t, the same entries. ``squared=False``: sum of |O| entries,
    what O-LoRA's released trainer computes. Old A's are constants (detached)."""
    total = torch.zeros((), device=current_A.device)
    for prev in previous_As:
        o = prev.detach().float() @ current_A.float().T
        total = total + (o.pow(2) if squared else o.abs()).sum()
    return total
