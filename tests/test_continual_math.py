"""The continual-unlearning math (RMU, saliency masks, GRU projection, O-LoRA penalty) against
values computed by hand on 2-3 element tensors."""

from __future__ import annotations

import pytest
import torch

from pulse_unlearn.methods import losses


def t(x):
    return torch.tensor(x, dtype=torch.float32)


# --- RMU -------------------------------------------------------------------------------------

# one sequence, two tokens, d = 2; control c*u = (1, 0)
H_F = t([[[1.0, 0.0], [3.0, 4.0]]])  # token 0: h - c = (0, 0) -> 0; token 1: (2, 4) -> (4 + 16) / 2 = 10
H_R = t([[[1.0, 1.0]]])  # minus the reference (0, 1): (1, 0) -> 1 / 2 = 0.5
H_REF = t([[[0.0, 1.0]]])
C = t([1.0, 0.0])


def test_representation_mse_is_per_token_squared_distance_over_d():
    assert losses.representation_mse(H_F, C).item() == pytest.approx((0 + 10) / 2)
    torch_mse = torch.nn.functional.mse_loss(H_F, C.expand_as(H_F)).item()
    assert losses.representation_mse(H_F, C).item() == pytest.approx(torch_mse)
    assert losses.representation_mse(H_F, C, torch.tensor([[False, True]])).item() == pytest.approx(10.0)
    assert losses.representation_mse(H_F, C, torch.tensor([[True, False]])).item() == 0.0


def rmu_loss(h_f, h_r, h_ref, c, alpha, forget_mask=None, retain_mask=None):
    """RMU's loss at one layer as the ``rmu`` method composes it (its forget and retain terms)."""
    return losses.representation_mse(h_f, c, forget_mask) + alpha * losses.representation_mse(
        h_r, h_ref.detach(), retain_mask)


def test_rmu_loss_by_hand():
    # all tokens: 5 + 2 * 0.5 = 6; only the second forget token: 10 + 2 * 0.5 = 11
    assert rmu_loss(H_F, H_R, H_REF, C, alpha=2.0).item() == pytest.approx(6.0)
    assert rmu_loss(H_F, H_R, H_REF, C, 2.0, forget_mask=torch.tensor([[False, True]]),
                           retain_mask=torch.tensor([[True]])).item() == pytest.approx(11.0)
    assert rmu_loss(H_F, H_R, H_REF, C, alpha=0.0).item() == pytest.approx(5.0)


def test_rmu_loss_gradient_reaches_only_the_trained_hidden_states():
    h_f, h_r, h_ref = H_F.clone().requires_grad_(), H_R.clone().requires_grad_(), H_REF.clone().requires_grad_()
    rmu_loss(h_f, h_r, h_ref, C, alpha=2.0).backward()
    # d/dh of mean over 2 tokens of (1/2)||h - c||^2 = (h - c) / 2; token 1: (2, 4) / 2
    assert h_f.grad[0, 1].tolist() == pytest.approx([1.0, 2.0])
    # retain: 2 * (1/1 token) * (2/2) * (h - ref) = (2, 0)
    assert h_r.grad[0, 0].tolist() == pytest.approx([2.0, 0.0])
    assert h_ref.grad is None


def test_rmu_control_is_a_seeded_nonnegative_vector_of_norm_scale():
    c = losses.rmu_control(5, 6.5, seed=3)
    assert c.shape == (5,)
    assert c.norm().item() == pytest.approx(6.5)
    assert (c >= 0).all()
    assert torch.equal(c, losses.rmu_control(5, 6.5, seed=3))
    assert not torch.equal(c, losses.rmu_control(5, 6.5, seed=4))
    assert torch.allclose(losses.rmu_control(5, 2.0, seed=3), c * 2.0 / 6.5)


# --- saliency --------------------------------------------------------------------------------

def test_accumulate_sq_grads_is_the_mean_over_batches():
    # batch 1: g = (1, 2) -> (1, 4); batch 2: g = (3, 0) -> (9, 0); mean (5, 2)
    m = losses.accumulate_sq_grads(None, [t([1.0, 2.0]), None], 0)
    assert m[0].tolist() == [1.0, 4.0]
    assert m[1] is None  # no gradient yet
    m = losses.accumulate_sq_grads(m, [t([3.0, 0.0]), t([2.0])], 1)
    assert m[0].tolist() == [5.0, 2.0]
    assert m[1].tolist() == [2.0]  # (0 + 4) / 2: the missing first gradient counts as zero
    m = losses.accumulate_sq_grads(m, [None, t([1.0])], 2)
    assert m[0].tolist() == pytest.approx([10 / 3, 4 / 3])  # (1 + 9 + 0) / 3, (4 + 0 + 0) / 3
    assert m[1].tolist() == pytest.approx([5 / 3])  # (0 + 4 + 1) / 3


def test_saliency_and_mask_by_hand():
    # s = (4 / (2 + 0.5), 1 / (0 + 0.5)) = (1.6, 2.0)
    s = losses.saliency([t([4.0, 1.0])], [t([2.0, 0.0])], eps=0.5)
    assert s[0].tolist() == pytest.approx([1.6, 2.0])
    assert losses.saliency_mask(s)[0].tolist() == [True, True]
    assert losses.saliency_mask(s, threshold=1.8)[0].tolist() == [False, True]
    assert losses.saliency_mask(s, threshold=2.0)[0].tolist() == [False, True]  # >=
    assert losses.saliency_mask(s, threshold=2.5)[0].tolist() == [False, False]


# --- GRU projection ----------------------------------------------------------------------------

def test_project_conflict_by_hand():
    # g_f . g_r = -1, ||g_r||^2 = 2: g' = (1, 0) - (-1/2)(-1, 1) = (0.5, 0.5), and g' . g_r = 0
    g_r = t([-1.0, 1.0])
    g = losses.project_conflict(t([1.0, 0.0]), g_r)
    assert g.tolist() == pytest.approx([0.5, 0.5])
    assert (g * g_r).sum().item() == pytest.approx(0.0)


def test_project_conflict_leaves_agreeing_orthogonal_and_zero_retain_alone():
    assert losses.project_conflict(t([1.0, 2.0]), t([1.0, 0.0])).tolist() == [1.0, 2.0]  # dot 1 > 0
    assert losses.project_conflict(t([1.0, 0.0]), t([0.0, 5.0])).tolist() == [1.0, 0.0]  # dot 0
    assert losses.project_conflict(t([1.0, -2.0]), t([0.0, 0.0])).tolist() == [1.0, -2.0]  # g_r = 0


def test_project_conflict_makes_any_conflicting_pair_orthogonal():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        g_f, g_r = torch.randn(7, generator=gen), torch.randn(7, generator=gen)
        g = losses.project_conflict(g_f, g_r)
        if (g_f @ g_r) < 0:
            assert (g @ g_r).item() == pytest.approx(0.0, abs=1e-5)
        else:
            assert torch.equal(g, g_f)


def test_project_grads_uses_one_dot_product_over_all_parameters():
    # over all: dot = -1 + 0 = -1, ||g_r||^2 = 1 + 1 = 2, coef -1/2:
    # p0: 1 - 0.5 = 0.5; p1: (0, 3) + 0.5 (1, 0) = (0.5, 3). Per tensor it would be (0,), (0, 3).
    out = losses.project_grads([t([1.0]), t([0.0, 3.0])], [t([-1.0]), t([1.0, 0.0])])
    assert out[0].tolist() == pytest.approx([0.5])
    assert out[1].tolist() == pytest.approx([0.5, 3.0])
    # p0 conflicts alone (-1) but the total (-1 + 2 = 1) does not: nothing changes
    out = losses.project_grads([t([1.0]), t([2.0])], [t([-1.0]), t([1.0])])
    assert [x.tolist() for x in out] == [[1.0], [2.0]]


def test_project_grads_counts_missing_gradients_as_zero():
    # p1 has no forget grad: dot = -1, ||g_r||^2 = 1 + 4 = 5, coef -1/5
    # p0: 1 - 0.2 = 0.8; p1: 0 + 0.2 * 2 = 0.4; p2 (no retain grad) unchanged; p3 (none) None
    out = losses.project_grads([t([1.0]), None, t([7.0]), None], [t([-1.0]), t([2.0]), None, None])
    assert out[0].tolist() == pytest.approx([0.8])
    assert out[1].tolist() == pytest.approx([0.4])
    assert out[2].tolist() == [7.0]
    assert out[3] is None


# --- O-LoRA penalty --------------------------------------------------------------------------

A = t([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0]])  # (r = 2, in = 3), A A^T = [[5, 2], [2, 2]]


def test_orthogonality_penalty_by_hand():
    assert losses.orthogonality_penalty(A, [A]).item() == pytest.approx(25 + 4 + 4 + 4)
    assert losses.orthogonality_penalty(A, [A], squared=False).item() == pytest.approx(5 + 2 + 2 + 2)
    # rows spanning e1 vs e2, e3: orthogonal input subspaces
    assert losses.orthogonality_penalty(t([[1.0, 0.0, 0.0]]), [t([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])]).item() == 0.0
    # two earlier adapters add up: e1 . A rows = (1, 0) -> 1; e3 . A rows = (0, 1) -> 1; A_t = e1 + e3
    # old A = A: O = A (e1 + e3)^T = (1, 1) -> 2; old e3: O = 1 -> 1; total 3
    assert losses.orthogonality_penalty(t([[1.0, 0.0, 1.0]]), [A, t([[0.0, 0.0, 1.0]])]).item() == pytest.approx(3.0)
    assert losses.orthogonality_penalty(A, []).item() == 0.0


def test_orthogonality_penalty_measures_row_spaces_and_trains_only_the_new_A():
    # same row space, different rank: old (1, 3) rows e1; new (2, 3) rows e1, 2 e1 -> O = (1, 2), sum sq 5
    new = t([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]]).requires_grad_()
    old = t([[1.0, 0.0, 0.0]]).requires_grad_()
    loss = losses.orthogonality_penalty(new, [old])
    assert loss.item() == pytest.approx(5.0)
    loss.backward()
    # d/dA_t sum (A_i A_t^T)^2 = 2 O^T A_i: rows 2 * 1 * e1, 2 * 2 * e1
    assert torch.allclose(new.grad, t([[2.0, 0.0, 0.0], [4.0, 0.0, 0.0]]))
    assert old.grad is None
