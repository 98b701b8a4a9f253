"""Every loss against a value computed by hand on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch

from loss_terms import joint_loss

from pulse_unlearn.methods import losses
from pulse_unlearn.methods.registry import METHODS, Step, make_method

I = losses.IGNORE


def logits_from_probs(rows):
    """Logits whose softmax is exactly the given probability rows."""
    return torch.log(torch.tensor(rows, dtype=torch.float32))


# Two sequences of length 3; vocabulary of 2. Position t predicts token t+1.
P = [[[0.5, 0.5], [0.8, 0.2], [0.25, 0.75]],
     [[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]]]
LABELS = torch.tensor([[I, 0, 1],    # answer tokens 0 then 1: p = 0.5 (pos 0 -> tok 0), 0.2 (pos 1 -> tok 1)
                       [I, I, 1]])   # answer token 1: p = 0.4 (pos 1 -> tok 1)


def test_sequence_logprobs_by_hand():
    total, n = losses.sequence_logprobs(logits_from_probs(P), LABELS)
    assert n.tolist() == [2, 1]
    assert total[0].item() == pytest.approx(math.log(0.5) + math.log(0.2), abs=1e-6)
    assert total[1].item() == pytest.approx(math.log(0.4), abs=1e-6)


def test_nll_is_token_mean():
    expected = -(math.log(0.5) + math.log(0.2) + math.log(0.4)) / 3
    assert losses.nll(logits_from_probs(P), LABELS).item() == pytest.approx(expected, abs=1e-6)
    assert losses.gradient_ascent(torch.tensor(1.25)).item() == -1.25


def test_answer_nll_token_and_sequence_weighting_by_hand():
    """Logits at the three answer-predicting positions only (row-major), as ``head_on_answers`` gives them."""
    answer_logits = logits_from_probs([P[0][0], P[0][1], P[1][1]])
    token_mean = -(math.log(0.5) + math.log(0.2) + math.log(0.4)) / 3
    assert losses.answer_nll(answer_logits, LABELS).item() == pytest.approx(token_mean, abs=1e-6)
    rows = torch.tensor([[1, 1, 1], [2, 2, 2]])  # one sequence per row
    per_sequence = (-(math.log(0.5) + math.log(0.2)) / 2 - math.log(0.4)) / 2
    assert losses.answer_nll(answer_logits, LABELS, rows).item() == pytest.approx(per_sequence, abs=1e-6)
    # Packed: row 0 holds two sequences (positions 0-1 and 2), so each answer token is its own sequence.
    packed = torch.tensor([[1, 1, 2], [3, 3, 3]])
    each = -(math.log(0.5) + math.log(0.2) + math.log(0.4)) / 3
    assert losses.answer_nll(answer_logits, LABELS, packed).item() == pytest.approx(each, abs=1e-6)


def test_kl_on_answer_tokens_only_and_direction():
    ref = [[[0.5, 0.5], [0.5, 0.5], [0.1, 0.9]],
           [[0.1, 0.9], [0.9, 0.1], [0.3, 0.7]]]
    cur = P
    # Answer-predicting positions: seq 0 -> positions 0 and 1; seq 1 -> position 1.
    def kl(p, q):
        return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    expected = (kl(ref[0][0], cur[0][0]) + kl(ref[0][1], cur[0][1]) + kl(ref[1][1], cur[1][1])) / 3
    got = losses.kl_on_answers(logits_from_probs(ref), logits_from_probs(cur), LABELS).item()
    assert got == pytest.approx(expected, abs=1e-6)
    reverse = (kl(cur[0][0], ref[0][0]) + kl(cur[0][1], ref[0][1]) + kl(cur[1][1], ref[1][1])) / 3
    assert got != pytest.approx(reverse, abs=1e-3)  # the direction matters and is KL(ref || theta)


def test_npo_by_hand():
    logp, ref = torch.tensor([-2.0, -1.0]), torch.tensor([-1.0, -1.5])
    beta = 0.5
    expected = sum(2 / beta * math.log(1 + math.exp(beta * (a - b))) for a, b in [(-2.0, -1.0), (-1.0, -1.5)]) / 2
    assert losses.npo(logp, ref, beta).item() == pytest.approx(expected, abs=1e-6)
    # At logp == ref the loss is (2/beta) log 2.
    assert losses.npo(ref, ref, beta).item() == pytest.approx(2 / beta * math.log(2), abs=1e-6)


def test_simnpo_by_hand():
    logp, n = torch.tensor([-3.0, -1.0]), torch.tensor([3, 2])
    beta, delta = 2.0, 0.5
    sig = lambda x: 1 / (1 + math.exp(-x))
    expected = sum(-2 / beta * math.log(sig(beta * (avg - delta))) for avg in (1.0, 0.5)) / 2
    assert losses.simnpo(logp, n, beta, delta).item() == pytest.approx(expected, abs=1e-6)


# --- methods: each composes the pure losses as its docstring says --------------------------

FORGET = {"input_ids": torch.zeros(2, 3, dtype=torch.long), "labels": LABELS}
RETAIN = {"input_ids": torch.ones(2, 3, dtype=torch.long), "labels": torch.tensor([[I, 1, 0], [I, 0, 0]])}
CUR_F, REF_F = logits_from_probs(P), logits_from_probs([[[0.5, 0.5]] * 3, [[0.2, 0.8]] * 3])
CUR_R = logits_from_probs([[[0.3, 0.7], [0.6, 0.4], [0.5, 0.5]], [[0.9, 0.1], [0.7, 0.3], [0.5, 0.5]]])
REF_R = logits_from_probs([[[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], [[0.6, 0.4], [0.6, 0.4], [0.5, 0.5]]])


def _step():
    fwd = lambda b: CUR_F if b["input_ids"][0, 0] == 0 else CUR_R
    ref = lambda b: REF_F if b["input_ids"][0, 0] == 0 else REF_R
    return Step(forget=FORGET, retain=RETAIN, forward=fwd, reference=ref)


def test_methods_compose_their_losses():
    nll_f = losses.nll(CUR_F, FORGET["labels"])
    nll_r = losses.nll(CUR_R, RETAIN["labels"])
    lp, n = losses.sequence_logprobs(CUR_F, FORGET["labels"])
    ref_lp, _ = losses.sequence_logprobs(REF_F, FORGET["labels"])
    kl = losses.kl_on_answers(REF_R, CUR_R, RETAIN["labels"])
    s = _step()
    assert joint_loss(make_method("ga"), s) == pytest.approx(-nll_f.item())
    grad_diff = make_method("grad_diff", gamma=2.0, alpha=0.5)
    assert joint_loss(grad_diff, s).item() == pytest.approx(-2 * nll_f + 0.5 * nll_r)
    assert joint_loss(make_method("ga_klr", alpha=3.0), s).item() == pytest.approx((-nll_f + 3 * kl).item())
    assert joint_loss(make_method("npo", beta=0.2), s).item() == pytest.approx(losses.npo(lp, ref_lp, 0.2).item())
    assert joint_loss(make_method("npo_rt"), s).item() == pytest.approx((losses.npo(lp, ref_lp, 0.1) + nll_r).item())
    assert joint_loss(make_method("simnpo"), s).item() == pytest.approx((losses.simnpo(lp, n, 2.5, 0.0) + nll_r).item())
    assert joint_loss(make_method("idk"), s).item() == pytest.approx((nll_f + nll_r).item())
    assert kl.item() > 0


def test_registry_errors():
    assert {"ga", "ga_klr", "npo", "grad_diff", "npo_rt", "simnpo", "idk"} <= set(METHODS)
    with pytest.raises(ValueError, match="unknown method"):
        make_method("gaa")
    with pytest.raises(ValueError, match="unknown parameter"):
        make_method("npo", betta=1.0)


@pytest.mark.parametrize("name", ["grad_diff", "ga_klr", "npo_rt", "simnpo", "idk"])
def test_term_by_term_backward_gives_the_joint_gradient(name):
    """The runner back-propagates forget and retain terms one after the other (less memory):
    the gradient must equal that of the summed loss."""
    from pulse_unlearn.methods.unlearn import _backward

    torch.manual_seed(0)
    w = torch.randn(2, 2, requires_grad=True)
    base_f, base_r = CUR_F.clone(), CUR_R.clone()

    def step():
        fwd = lambda b: (base_f if b["input_ids"][0, 0] == 0 else base_r) @ w
        ref = lambda b: (REF_F if b["input_ids"][0, 0] == 0 else REF_R).detach()
        return Step(forget=FORGET, retain=RETAIN, forward=fwd, reference=ref)

    method = make_method(name)
    joint_loss(method, step()).backward()
    joint, w.grad = w.grad.clone(), None
    total = _backward(method.forget_loss, step()) + _backward(method.retain_loss, step())
    assert torch.allclose(w.grad, joint, atol=1e-6)
    assert total == pytest.approx(joint_loss(method, step()).item(), abs=1e-6)
