"""The continual-unlearning methods and options wired into an operation: RMU and MMUnlearner-style
saliency as methods, GRU's projection and O-LoRA's orthogonal adapters as ``unlearn`` options.
Each piece against a hand computation on tiny tensors, then on the tiny world's model."""

from __future__ import annotations

import copy

import pytest
import torch

from loss_terms import joint_loss

from pulse_unlearn.methods import losses
from pulse_unlearn.methods.gradients import GradientEdit, a_matrices, orthogonality, saliency_masks
from pulse_unlearn.models.lora import adapter_state
from pulse_unlearn.methods.registry import Step, make_method

I = -100


def test_predicting_positions_are_the_ones_before_answer_tokens():
    labels = torch.tensor([[I, I, 5, 6], [I, 7, I, I]])
    assert losses.predicting_positions(labels).tolist() == [[False, True, True, False], [True, False, False, False]]


def test_retain_ema_by_hand():
    r1 = losses.retain_ema(None, [torch.tensor([1.0, 2.0]), None], 0.8)
    assert r1[0].tolist() == pytest.approx([0.8, 1.6]) and r1[1] is None
    r2 = losses.retain_ema(r1, [torch.tensor([0.0, -1.0]), torch.tensor([3.0])], 0.8)
    assert r2[0].tolist() == pytest.approx([0.2 * 0.8, 0.8 * -1 + 0.2 * 1.6])  # 0.8 g_2 + 0.2 r_1
    assert r2[1].tolist() == pytest.approx([2.4])


# --- RMU ------------------------------------------------------------------------------------

FORGET = {"input_ids": torch.zeros(1, 3, dtype=torch.long), "labels": torch.tensor([[I, I, 1]])}  # predicts at 1
RETAIN = {"input_ids": torch.ones(1, 3, dtype=torch.long), "labels": torch.tensor([[I, 1, 1]])}  # at 0 and 1
H_F = torch.tensor([[[9.0, 9.0], [1.0, 2.0], [9.0, 9.0]]])
H_R = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
H_REF = torch.tensor([[[0.0, 0.0], [0.0, 3.0], [7.0, 7.0]]])


def _hidden_step(expected_index):
    def hidden(batch, index, reference=False):
        assert index == expected_index and "labels" not in batch
        if batch["input_ids"][0, 0] == 0:
            return H_F
        return H_REF if reference else H_R

    return Step(forget=FORGET, retain=RETAIN, forward=None, reference=None, hidden=hidden)


def test_rmu_loss_by_hand():
    method = make_method("rmu", layer=1, steering=3.0, alpha=2.0, seed=5)
    c = losses.rmu_control(2, 3.0, 5)
    forget = ((1 - c[0]) ** 2 + (2 - c[1]) ** 2).item() / 2  # the one predicting position, (1/d)||h - cu||^2
    retain = ((1 + 0) / 2 + (0 + 4) / 2) / 2  # positions 0 and 1: (1/d)||h_r - h_ref||^2, averaged
    assert joint_loss(method, _hidden_step(expected_index=2)).item() == pytest.approx(forget + 2.0 * retain, rel=1e-6)


def test_rmu_adapts_the_steered_layer_and_those_below():
    assert make_method("rmu", layer=3).lora_layers() == (1, 2, 3)
    assert make_method("rmu", layer=1, update_layers=3).lora_layers() == (0, 1)
    assert make_method("rmu", layer=2, update_layers=1).lora_layers() == (2,)
    assert make_method("rmu", layer=3).check(4) is None
    assert "must be below the model's 4 decoder layers" in make_method("rmu", layer=4).check(4)
    assert make_method("ga").lora_layers() is None


def test_mmunlearner_is_grad_diff_on_salient_weights():
    from test_losses import _step

    s = _step()
    assert joint_loss(make_method("mmunlearner", alpha=0.5), s).item() == pytest.approx(
        joint_loss(make_method("grad_diff", gamma=1.0, alpha=0.5), s).item())
    assert make_method("mmunlearner", threshold=2.0, batches=3).saliency() == (2.0, 3)
    assert make_method("grad_diff").saliency() is None


def test_fsdp_refuses_what_needs_whole_gradients():
    from pulse_unlearn.config import UnlearnConfig
    from pulse_unlearn.methods.unlearn import unsupported_under_fsdp

    assert unsupported_under_fsdp(make_method("npo"), UnlearnConfig()) is None
    said = unsupported_under_fsdp(make_method("mmunlearner"), UnlearnConfig(projection="gru"))
    assert "a saliency mask, unlearn.projection: gru needs whole gradients; launch with DDP" in said
    assert "orthogonal" in unsupported_under_fsdp(make_method("ga"), UnlearnConfig(adapters="orthogonal"))


# --- gradient edits: GRU, saliency mask --------------------------------------------------------

def _after_backward(p, grad):
    """What a backward pass does: add to .grad."""
    if p.grad is None:
        p.grad = torch.zeros_like(p)
    p.grad.add_(torch.tensor(grad))


def test_gru_projects_a_conflicting_forget_gradient_and_keeps_the_retain_term():
    p = torch.zeros(2, requires_grad=True)
    edit = GradientEdit([p], "gru", gamma=1.0)
    _after_backward(p, [1.0, 0.0])  # g_f
    edit.forget_done()
    assert p.grad.tolist() == [0.0, 0.0]
    _after_backward(p, [-1.0, 1.0])  # retain direction: g_f . g_r = -1 < 0
    edit.retain_direction_done()
    assert p.grad.tolist() == [0.0, 0.0]
    _after_backward(p, [0.0, 2.0])  # the method's own retain term
    edit.finish()
    # g_f - (g_f.g_r / |g_r|^2) g_r = [1, 0] + 0.5 [-1, 1] = [0.5, 0.5]; plus the retain term
    assert p.grad.tolist() == pytest.approx([0.5, 2.5])

    p.grad = torch.tensor([1.0, 0.0])  # the next step's g_f
    edit.forget_done()
    _after_backward(p, [1.0, 1.0])  # no conflict with r = 1.0 * [1, 1] (gamma 1: the newest only)
    edit.retain_direction_done()
    edit.finish()
    assert p.grad.tolist() == pytest.approx([1.0, 0.0])


def test_saliency_mask_zeroes_gradients_and_adamw_leaves_those_entries_alone():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    opt = torch.optim.AdamW([p], lr=0.1, weight_decay=0.0)
    edit = GradientEdit([p], mask=[torch.tensor([True, False, True])])
    for _ in range(3):
        opt.zero_grad()
        (p * torch.tensor([1.0, -2.0, 0.5])).sum().backward()
        edit.finish()
        assert p.grad[1].item() == 0.0
        opt.step()
    assert p[1].item() == 2.0 and p[0].item() != 1.0 and p[2].item() != 3.0


def test_saliency_masks_by_hand():
    w = torch.zeros(3, requires_grad=True)
    pairs = [({"x": torch.tensor([1.0, 0.0, 2.0])}, {"x": torch.tensor([1.0, 1.0, 1.0])}),
             ({"x": torch.tensor([3.0, 0.0, 0.0])}, {"x": torch.tensor([1.0, 3.0, 0.0])})]
    nll = lambda batch: (w * batch["x"]).sum()  # gradient = x
    # E[g_f^2] = [5, 0, 2], E[g_r^2] = [1, 5, 0.5]: s = [5, 0, 4]
    masks, n = saliency_masks([w], pairs, nll, threshold=1.0)
    assert masks[0].tolist() == [True, False, True] and n == 2 and w.grad is None
    masks, n = saliency_masks([w], pairs, nll, threshold=4.5)
    assert masks[0].tolist() == [True, False, False] and n == 1


# --- orthogonal adapters -------------------------------------------------------------------------

class _Two(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.x, self.y = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)

    def forward(self, v):
        return self.y(self.x(v).sum() * v)


def _peft(seed):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    return get_peft_model(_Two(), LoraConfig(r=2, lora_alpha=2, target_modules=["x", "y"]))


def test_orthogonality_penalty_by_hand_and_the_saved_a_matrices(tmp_path):
    from safetensors.torch import load_file

    current = _peft(0)
    a = a_matrices(adapter_state(current))
    assert set(a) == {"x", "y"} and a["x"].shape == (2, 3)
    assert torch.equal(a["x"], current.base_model.model.x.lora_A["default"].weight)
    old_x = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    expected = (old_x @ a["x"].T).pow(2).sum().item()  # y: no earlier adapter there
    assert orthogonality(current, [{"x": old_x}])().item() == pytest.approx(expected, rel=1e-6)
    two = orthogonality(current, [{"x": old_x}, {"x": old_x, "y": a["y"]}])().item()
    assert two == pytest.approx(2 * expected + (a["y"] @ a["y"].T).pow(2).sum().item(), rel=1e-6)
    current.save_pretrained(tmp_path / "adapter", safe_serialization=True)
    saved = a_matrices(load_file(str(tmp_path / "adapter" / "adapter_model.safetensors")))
    assert set(saved) == {"x", "y"} and all(torch.equal(saved[k], a[k]) for k in a)


# --- on the tiny world's model -------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tiny_models):
    from pulse_unlearn.data.batches import Encoder
    from pulse_unlearn.data.sources import load_sources
    from pulse_unlearn.models.load import load_model

    w = tiny_models["world"]
    src = load_sources(w / "MLLMU-Bench", w / "MMBench" / "mmbench_dev_en.tsv", 8, 0)
    people = sorted(src.fictitious)
    model, processor = load_model(tiny_models["finetuned"], dtype="float32", device="cpu")
    return model, Encoder(processor), src.facts_of(people[:1]), src.facts_of(people[1:3])


def _unlearn(world, method, stacked=(), model=None, **options):
    """One operation on (a copy of) the tiny world's model: (merged model, log, the adapter's
    parameters by name, its state dict as peft saves it)."""
    from pulse_unlearn.config import LoraRecipe, UnlearnConfig
    from pulse_unlearn.methods.unlearn import unlearn

    base, encoder, forget, retain = world
    cfg = UnlearnConfig(lr=1e-2, epochs=1, batch_size=4, lora=LoraRecipe(rank=4, alpha=8), **options)
    seen, state = {}, {}

    def keep(peft):
        seen.update({k: v.detach().clone() for k, v in peft.named_parameters() if "lora_" in k})
        state.update(adapter_state(peft))

    merged, log = unlearn(copy.deepcopy(base) if model is None else model, encoder, method, forget, retain, "llm",
                          cfg, stacked=stacked, on_adapter=keep)
    return merged, log, seen, state


def _zero_b(state):
    return {k: torch.zeros_like(v) if ".lora_B." in k else v for k, v in state.items()}


def test_orthogonal_adapters_add_the_penalty_to_the_first_loss(world):
    """Step 0's adapter is the seeded draw whatever the mode, and an earlier adapter whose B is 0
    changes no output: stacking it leaves the first loss as it was, and ``orthogonal`` adds
    exactly the weighted penalty of the draw against it."""
    _, plain, _, _ = _unlearn(world, make_method("ga"))
    draw = adapter_state(_first_draw(world))
    gen = torch.Generator().manual_seed(1)
    earlier = _zero_b({k: torch.randn(v.shape, generator=gen) for k, v in draw.items()})
    by_hand = sum((earlier[k] @ v.T).pow(2).sum().item() for k, v in draw.items() if ".lora_A." in k)
    _, stacked, _, _ = _unlearn(world, make_method("ga"), stacked=[earlier], adapters="stack")
    _, orth, _, _ = _unlearn(world, make_method("ga"), stacked=[earlier], adapters="orthogonal", orthogonal_weight=0.25)
    assert stacked.losses[0] == pytest.approx(plain.losses[0], rel=1e-6)
    assert orth.losses[0] - stacked.losses[0] == pytest.approx(0.25 * by_hand, rel=1e-4)
    assert len(orth.losses) == len(plain.losses) and orth.losses[1:] != stacked.losses[1:]


def test_a_stacked_adapter_acts_as_if_merged_and_stays_frozen(world):
    """Operation 2 on the starting model with operation 1's adapter stacked follows operation 2 on
    the model with it merged, loss for loss (float rounding apart); the stacked adapter does not
    move; the caller's model comes back unchanged; the merged result holds both adapters."""
    base = world[0]
    m1, _, _, first = _unlearn(world, make_method("npo"))
    before = {k: v.clone() for k, v in base.state_dict().items()}
    start = copy.deepcopy(base)
    m2_merge, log_merge, _, _ = _unlearn(world, make_method("npo"), model=copy.deepcopy(m1))
    m2_stack, log_stack, seen, _ = _unlearn(world, make_method("npo"), model=start, stacked=[first], adapters="stack")
    assert log_stack.losses == pytest.approx(log_merge.losses, rel=1e-4, abs=1e-6)
    frozen = {k.replace(".earlier1", ""): v for k, v in seen.items() if ".earlier1." in k}
    assert frozen and all(torch.equal(v, first[k]) for k, v in frozen.items())
    assert all(torch.equal(v, before[k]) for k, v in start.state_dict().items())  # unload() gave it back
    a, b = m2_merge.state_dict(), m2_stack.state_dict()
    assert all(torch.allclose(a[k], b[k], rtol=1e-3, atol=1e-4) for k in a)  # deltas ~0.1


def test_saliency_mask_moves_only_salient_b_entries(world):
    """B starts at 0, so every A gradient is 0 when the saliency is measured: A stays as drawn,
    and the B entries outside the mask stay 0."""
    _, _, masked, _ = _unlearn(world, make_method("mmunlearner"))
    _, _, plain, _ = _unlearn(world, make_method("grad_diff"))
    a_keys = [k for k in masked if ".lora_A." in k]
    b = torch.cat([masked[k].flatten() for k in masked if ".lora_B." in k])
    drawn = dict(_first_draw(world).named_parameters())
    assert all(torch.equal(masked[k], drawn[k]) for k in a_keys)
    assert 0 < int((b != 0).sum()) < b.numel()
    assert any(not torch.equal(plain[k], masked[k]) for k in a_keys)  # without the mask A moves


def _first_draw(world):
    """The adapter unlearn() attaches at step 0 (it seeds torch with unlearn.seed = 0 first)."""
    from pulse_unlearn.config import LoraRecipe
    from pulse_unlearn.models.lora import attach_lora, lora_targets

    torch.manual_seed(0)
    return attach_lora(copy.deepcopy(world[0]), LoraRecipe(rank=4, alpha=8), lora_targets(world[0], "llm"))


def test_rmu_trains_only_its_layers_and_gru_runs(world):
    from pulse_unlearn.models.lora import _layer_index

    _, log, seen, _ = _unlearn(world, make_method("rmu", layer=1, update_layers=2), projection="gru")
    layers = {_layer_index(k.split(".lora_")[0]) for k in seen}
    assert layers == {0, 1} and all(torch.isfinite(torch.tensor(log.losses)))
    assert any(v.abs().sum() > 0 for k, v in seen.items() if ".lora_B." in k)
