"""The quantize attack: quantized weights within the scheme's step of the originals (bounds
derived per library and checked against scales computed by hand), the original untouched, the
label naming what ran, and quantize rows in attacks.csv of a tiny run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from processes import rows

from pulse_unlearn.errors import PulseError
from pulse_unlearn.evaluation.attacks import AttackContext, make_attack
from pulse_unlearn.models import quantize as q

EPS = 1e-6


@pytest.fixture(scope="module")
def model(tiny_models):
    from transformers import LlavaForConditionalGeneration

    return LlavaForConditionalGeneration.from_pretrained(tiny_models["finetuned"]).eval()


def runs(library):
    why = q.unavailable(library, "cpu")
    if why:
        pytest.skip(f"{library} does not run on this CPU: {why}")


def test_the_layers_are_those_transformers_converts(model):
    names = q.quantized_modules(model)
    linears = [n for n, m in model.named_modules() if type(m) is torch.nn.Linear]
    assert set(linears) - set(names) == {"lm_head"}  # the output embeddings keep their precision
    assert any("vision_tower" in n for n in names) and any("multi_modal_projector" in n for n in names)
    assert any("language_model" in n for n in names)


def _nf4_bound(w: torch.Tensor, module) -> torch.Tensor:
    """NF4 rounds w / absmax (one absmax per block of 64 consecutive weights) to the nearest of 16
    levels: the error is at most half the gap between the two levels around it, times absmax."""
    state = module.weight.quant_state
    flat = w.float().flatten()
    absmax = flat.reshape(-1, q.BLOCK).abs().amax(1)
    assert torch.allclose(state.absmax.float(), absmax, rtol=1e-6)  # the scales, by hand
    levels = state.code.float().sort().values
    assert len(levels) == 16 and levels[0] == -1 and levels[-1] == 1
    x = (flat.reshape(-1, q.BLOCK) / absmax[:, None]).flatten().clamp(-1, 1)
    hi_i = torch.searchsorted(levels, x).clamp(1, 15)
    gap = levels[hi_i] - levels[hi_i - 1]
    return (gap / 2 * absmax.repeat_interleave(q.BLOCK)).reshape(w.shape)


def _int8_rows_bound(w: torch.Tensor, module) -> torch.Tensor:
    """LLM.int8: w in float16, then round(w_fp16 x 127 / absmax_row): half a step of absmax_row / 127,
    plus the float16 rounding (|w| x 2^-11)."""
    w16 = w.half().float()
    scb = module.weight.SCB if module.weight.SCB is not None else module.state.SCB
    assert torch.allclose(scb.float(), w16.abs().amax(1))  # the scales, by hand
    return (w16.abs().amax(1) / 127 / 2)[:, None] + w.abs() * 2.0 ** -11


def _torchao_bound(w: torch.Tensor, module, bits: int) -> torch.Tensor:
    """Symmetric integers in [-2^(b-1), 2^(b-1) - 1] with s = absmax / ((2^b - 1) / 2) per group (4
    bits: 64 input features; 8 bits: the row): half a step s / 2."""
    group = min(q.BLOCK, w.shape[1]) if bits == 4 else w.shape[1]
    absmax = w.float().reshape(w.shape[0], -1, group).abs().amax(2)
    scale = absmax / ((2 ** bits - 1) / 2)
    assert torch.allclose(module.weight.scale.float().reshape(scale.shape), scale, rtol=1e-5)  # by hand
    return (scale / 2).repeat_interleave(group, dim=1)


def _bound(library, bits, w, module):
    if library == "torchao":
        return _torchao_bound(w, module, bits)
    return _nf4_bound(w, module) if bits == 4 else _int8_rows_bound(w, module)


@pytest.mark.parametrize("library", q.LIBRARIES)
def test_quantized_weights_are_within_half_a_step_and_the_original_is_unchanged(model, library):
    runs(library)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    worst = {}
    for bits in (4, 8):
        clone, label = q.quantized_copy(model, bits, library)
        assert label == f"{library} {q.SCHEMES[library, bits]}"
        scheme = "int8" if bits == 8 else "nf4" if library == "bitsandbytes" else "int4"
        assert scheme in label
        worst[bits] = 0.0
        for name in q.quantized_modules(model):
            w, module = model.get_submodule(name).weight.detach(), clone.get_submodule(name)
            assert type(module) is not torch.nn.Linear or library == "torchao"
            err = (q.dequantized(module) - w.float()).abs()
            bound = _bound(library, bits, w, module)
            assert (err <= bound + EPS).all(), (name, (err - bound).max().item())
            assert err.max() > 0  # something was rounded
            worst[bits] = max(worst[bits], (err / w.abs().max()).max().item())
        ids = torch.randint(5, 100, (2, 10))
        with torch.no_grad():
            logits, plain = clone(input_ids=ids).logits, model(input_ids=ids).logits
        assert torch.isfinite(logits).all() and not torch.equal(logits, plain)
        assert clone.lm_head.weight.data_ptr() != model.lm_head.weight.data_ptr()
        del clone
    assert worst[8] < worst[4] / 4  # 8 bits: a step 16-fold finer
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())
    assert all(type(m) is not torch.nn.Linear or m.weight.dtype == torch.float32 for m in model.modules())


def test_nf4_by_hand_decodes_whole_blocks_as_bitsandbytes_does():
    """The probe's reference decoding (two codes a byte, high nibble first, level x block absmax)
    agrees with bitsandbytes on rows of whole blocks; it is within NF4's half gap of the weights."""
    pytest.importorskip("bitsandbytes")
    torch.manual_seed(0)
    lin = torch.nn.Linear(q.BLOCK, 2 * q.BLOCK)
    module = q._bnb_linear(lin, 4, torch.device("cpu"))
    by_hand = q._nf4_by_hand(module.weight)
    assert torch.equal(by_hand, q.dequantized(module))
    assert ((by_hand - lin.weight.detach()).abs() <= _nf4_bound(lin.weight.detach(), module) + EPS).all()


def test_auto_is_bitsandbytes_where_it_runs_else_torchao(monkeypatch):
    expected = "bitsandbytes" if q.unavailable("bitsandbytes", "cpu") is None else "torchao"
    assert q.resolve("auto", "cpu") == expected
    monkeypatch.setattr(q, "_unavailable", lambda library, device:
                        "RuntimeError: no kernel" if library == "bitsandbytes" else None)
    assert q.resolve("auto", "cpu") == "torchao"
    with pytest.raises(PulseError, match="bitsandbytes cannot run on cpu: RuntimeError: no kernel"):
        q.resolve("bitsandbytes", "cpu")
    monkeypatch.setattr(q, "_unavailable", lambda library, device: "ImportError: missing")
    with pytest.raises(PulseError, match="no quantization library runs on cpu"):
        q.resolve("auto", "cpu")
    with pytest.raises(PulseError, match="bits must be 4 or 8"):
        q.quantized_copy(torch.nn.Linear(4, 4), 3)


def _ctx(scorers):
    cfg = SimpleNamespace(model=SimpleNamespace(device="cpu"))
    return AttackContext(SimpleNamespace(cfg=cfg, scorers=scorers), {})


def test_the_attack_scores_forget_and_retain_on_a_quantized_copy(model, monkeypatch):
    seen = []

    def scorer(split):
        return lambda m: seen.append((split, m)) or [split]

    scorers = {name: scorer(name) for name in ("forget", "retain", "general")}
    attack = make_attack({"name": "quantize", "bits": [8, 4], "library": "torchao"})
    assert attack.does_not_apply(_ctx(scorers)) is None
    out = attack(model, _ctx(scorers))
    assert [(o.setting, o.split, o.preds) for o in out] == [
        ("bits=8 (torchao int8 weights, symmetric, per row)", "forget", ["forget"]),
        ("bits=8 (torchao int8 weights, symmetric, per row)", "retain", ["retain"]),
        ("bits=4 (torchao int4 weights, symmetric, group 64)", "forget", ["forget"]),
        ("bits=4 (torchao int4 weights, symmetric, group 64)", "retain", ["retain"])]
    # torchao keeps the Linear and swaps its weight for a quantized tensor; lm_head is kept as it is
    assert all(m is not model and type(m.lm_head.weight) is torch.nn.Parameter for _, m in seen)
    assert all(type(m.get_submodule("model.multi_modal_projector.linear_1").weight) is not torch.nn.Parameter
               for _, m in seen)
    monkeypatch.setattr(q, "_unavailable", lambda library, device: "ImportError: no module named torchao")
    why = attack.does_not_apply(_ctx(scorers))
    assert why == "quantization library torchao cannot run on cpu: ImportError: no module named torchao"


def test_a_tiny_run_writes_quantize_rows_with_recovery(attacked_run):
    """shared_runs.ATTACKED: quantize with its other attacks, after each unit's last operation."""
    every = rows(attacked_run / "attacks.csv")
    assert {r["attack"] for r in every} == {"quantize", "relearn", "relearn_retain", "mia"}
    att = [r for r in every if r["attack"] == "quantize"]
    library = q.resolve("auto", "cpu")
    assert {r["setting"] for r in att} == {f"bits=4 ({q.label(library, 4)})"}
    assert {(r["scenario"], r["operation"]) for r in att} == {("finetuned", "0"), ("finetuned", "1"),
                                                             ("sequential", "0"), ("sequential", "3")}
    assert {r["split"] for r in att} == {"forget", "retain"}
    for r in att:
        if r["operation"] == "0":
            assert r["start"] == r["value"] and r["recovery"] == ""
            continue
        base = next(b for b in att if b["operation"] == "0" and b["scenario"] == r["scenario"]
                    and (b["split"], b["modality"]) == (r["split"], r["modality"]))
        assert r["start"] == base["value"]
        value, un, start = float(r["value"]), float(r["unlearned"]), float(r["start"])
        if start - un > 1e-6:
            assert float(r["recovery"]) == pytest.approx((value - un) / (start - un), abs=1e-5)
        else:
            assert r["recovery"] == ""
    # the forget split was forgotten somewhere, so some recovery is defined
    assert any(r["recovery"] != "" for r in att if r["split"] == "forget" and r["operation"] != "0")
