"""A quantized copy of a model, by a quantization library transformers users already use.

``quantized_copy(model, bits, library)`` gives (copy, label); the label names the library and
scheme that ran, e.g. ``bitsandbytes nf4, block 64``. Two libraries, one interface:

- ``bitsandbytes`` (what ``BitsAndBytesConfig`` loads): 4 bits = NF4, one absmax per block of
  64 consecutive weights, w_q = absmax x code[i] with code the 16 NF4 levels in [-1, 1] and i the
  nearest level to w / absmax; 8 bits = LLM.int8's weights, per output row,
  w_q = round(w_fp16 x 127 / absmax_row) x absmax_row / 127 (outlier input features are then
  multiplied in 16 bits against these same int8 weights, threshold 6). Its CPU backend runs here,
  kept on its reference 4-bit path: on CPUs with AVX-512 BF16 bitsandbytes would repack the weights
  at the first forward pass for a fast kernel that needs every layer's output features to be a
  multiple of 32 (the tiny models' are not) and rounds differently, so results would depend on the CPU.
- ``torchao`` (``TorchAoConfig``), where bitsandbytes does not run: symmetric integer weights,
  w_q = clamp(round(w / s), -2^(b-1), 2^(b-1) - 1) x s with s = absmax / ((2^b - 1) / 2): 4 bits
  per group of 64 input features (NF4's block size; a shorter row is one group), 8 bits per
  output row (LLM.int8's).

Round to nearest either way, so |w_q - w| <= step / 2 per element: s / 2 for the integer
schemes (the clamped end, absmax / s = 2^(b-1) - 1/2, is also off by s / 2), half the gap
between the two NF4 levels around w / absmax, times absmax, for NF4.

Which layers: those transformers' quantizers convert by default, every ``nn.Linear`` but the
output embeddings (``lm_head``), weights tied to others, the last module and the model's
``_keep_in_fp32_modules``. So the language model, the projector and the vision tower are
quantized, as in a model loaded with ``BitsAndBytesConfig(load_in_4bit=True)``; embeddings,
norms and ``lm_head`` keep their precision.

The original is not changed. The copy is a deep copy except for the quantized Linear weights,
which it reads from the original while quantizing: it costs the unquantized part (embeddings,
``lm_head``, norms: about 4% of LLaVA-1.5-7B) plus the quantized weights (bits/16 of them in
16-bit, plus the scales), not a second full model.
"""

from __future__ import annotations

import copy
import logging
from contextlib import contextmanager
from functools import cache

import torch
from torch import nn

from ..errors import PulseError

LIBRARIES = ("bitsandbytes", "torchao")
BLOCK = 64  # bitsandbytes' NF4 block; torchao's int4 group (the same, so the two 4-bit schemes compare)
LLM_INT8_THRESHOLD = 6.0  # BitsAndBytesConfig's default
SCHEMES = {("bitsandbytes", 4): f"nf4, block {BLOCK}",
           ("bitsandbytes", 8): f"int8 per row (LLM.int8, threshold {LLM_INT8_THRESHOLD:g})",
           ("torchao", 4): f"int4 weights, symmetric, group {BLOCK}",
           ("torchao", 8): "int8 weights, symmetric, per row"}


def quantized_modules(model) -> list[str]:
    """Names of the Linear layers transformers' quantizers convert by default (see the module doc)."""
    from transformers.quantizers.base import get_keys_to_not_convert
    from transformers.quantizers.quantizers_utils import should_convert_module

    skip = list(get_keys_to_not_convert(model)) + list(getattr(model, "_keep_in_fp32_modules", None) or [])
    return [name for name, module in model.named_modules()
            if type(module) is nn.Linear and should_convert_module(name, skip)]


def _bnb_linear(linear: nn.Linear, bits: int, device: torch.device):
    """``linear`` as bitsandbytes builds it from ``BitsAndBytesConfig`` (``load_in_4bit`` with
    ``bnb_4bit_quant_type="nf4"`` and the model's dtype for compute, or ``load_in_8bit``)."""
    import bitsandbytes as bnb
    from transformers import BitsAndBytesConfig

    w, bias = linear.weight.detach(), linear.bias is not None
    if bits == 4:
        cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=w.dtype)
        new = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias, cfg.bnb_4bit_compute_dtype,
                                compress_statistics=cfg.bnb_4bit_use_double_quant,
                                quant_type=cfg.bnb_4bit_quant_type, quant_storage=cfg.bnb_4bit_quant_storage,
                                device="meta")
        new.weight = bnb.nn.Params4bit(w, requires_grad=False, blocksize=BLOCK,
                                       compress_statistics=cfg.bnb_4bit_use_double_quant,
                                       quant_type=cfg.bnb_4bit_quant_type,
                                       quant_storage=cfg.bnb_4bit_quant_storage, module=new)
        new.support_avx512bf16_for_cpu = False  # the reference path on every CPU (module doc)
    else:
        cfg = BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=LLM_INT8_THRESHOLD)
        new = bnb.nn.Linear8bitLt(linear.in_features, linear.out_features, bias,
                                  has_fp16_weights=cfg.llm_int8_has_fp16_weight,
                                  threshold=cfg.llm_int8_threshold, device="meta")
        # Int8Params quantizes when moved from the CPU to a device, as transformers loads it
        new.weight = bnb.nn.Int8Params(w.to("cpu"), requires_grad=False, has_fp16_weights=cfg.llm_int8_has_fp16_weight)
    if bias:  # a copy: bitsandbytes casts the bias's data in place in its forward
        new.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
    return new.to(device)


def _torchao_linear(linear: nn.Linear, bits: int, device: torch.device):
    """``linear`` with torchao's weight-only integer weights (``IntxWeightOnlyConfig``)."""
    from torchao.quantization import IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup

    group = BLOCK if linear.in_features >= BLOCK else linear.in_features
    if bits == 4 and linear.in_features % group:
        raise PulseError(f"torchao int4: {linear.in_features} input features are not a multiple of the "
                         f"group size {BLOCK}")
    new = nn.Linear(linear.in_features, linear.out_features, linear.bias is not None, device="meta",
                    dtype=linear.weight.dtype)
    new.weight = nn.Parameter(linear.weight.detach(), requires_grad=False)  # replaced by quantize_
    if linear.bias is not None:
        new.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
    granularity = PerGroup(group) if bits == 4 else PerAxis(0)
    quantize_(new, IntxWeightOnlyConfig(weight_dtype=torch.int4 if bits == 4 else torch.int8,
                                        granularity=granularity), device=device)
    return new


BUILDERS = {"bitsandbytes": _bnb_linear, "torchao": _torchao_linear}


@contextmanager
def quiet():
    """The libraries' expected notices held back: torchao's optional CUDA kernels a CPU build
    lacks, LLM.int8's cast of float32 inputs to float16 (logged at every 8-bit matmul)."""
    logs = [logging.getLogger(name) for name in LIBRARIES]
    levels = [log.level for log in logs]
    for log in logs:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(logs, levels):
            log.setLevel(level)


def _import(library: str) -> None:
    with quiet():
        if library == "torchao":
            import torchao  # noqa: F401
        else:
            import bitsandbytes  # noqa: F401


@cache
def _unavailable(library: str, device: str) -> str | None:
    with torch.no_grad(), quiet():
        try:
            _import(library)
            for bits in (4, 8):
                lin = nn.Linear(BLOCK, BLOCK).to(device)
                q = BUILDERS[library](lin, bits, torch.device(device))
                if not torch.isfinite(q(torch.randn(2, BLOCK, device=device))).all():
                    return f"its {bits}-bit layer gave non-finite outputs on {device}"
            if library == "bitsandbytes":  # rows shorter than a block: seen decoded wrongly on an AVX-512 CPU
                short = BUILDERS[library](nn.Linear(BLOCK // 2, BLOCK).to(device), 4, torch.device(device))
                if not torch.equal(dequantized(short), _nf4_by_hand(short.weight)):
                    return (f"its 4-bit weights of rows of {BLOCK // 2} decode differently from NF4's definition "
                            f"on {device}")
        except Exception as e:  # an import error, or no kernel for this device: the reason is reported
            first = (str(e).strip().splitlines() or [""])[0]
            return f"{type(e).__name__}: {first}"[:300]
    return None


def unavailable(library: str, device: torch.device | str) -> str | None:
    """Why ``library`` cannot quantize on ``device`` (None: it can). Probed once per device: import,
    then a 4-bit and an 8-bit layer quantized there and run forward."""
    if library not in LIBRARIES:
        raise PulseError(f"unknown quantization library {library!r}; choose auto or one of {', '.join(LIBRARIES)}")
    return _unavailable(library, str(torch.device(device)))


def resolve(library: str, device: torch.device | str) -> str:
    """The library that runs: ``auto`` is bitsandbytes where it runs, else torchao."""
    if library != "auto":
        why = unavailable(library, device)
        if why:
            raise PulseError(f"quantization library {library} cannot run on {device}: {why}")
        return library
    reasons = {}
    for name in LIBRARIES:
        if (why := unavailable(name, device)) is None:
            return name
        reasons[name] = why
    raise PulseError(f"no quantization library runs on {device}: "
                     + "; ".join(f"{k}: {v}" for k, v in reasons.items()))


def label(library: str, bits: int) -> str:
    """What ran, e.g. ``bitsandbytes nf4, block 64``."""
    return f"{library} {SCHEMES[library, bits]}"


@torch.no_grad()
def quantized_copy(model, bits: int, library: str = "auto"):
    """(copy of ``model`` with its ``quantized_modules`` quantized to ``bits``, label of what ran);
    ``model`` is left as it is."""
    if bits not in (4, 8):
        raise PulseError(f"bits must be 4 or 8, not {bits}")
    device = next(model.parameters()).device
    library = resolve(library, device)
    names = quantized_modules(model)
    originals = {name: model.get_submodule(name) for name in names}
    # The quantized layers' weights are shared, not copied: the copy drops those layers below.
    memo = {id(m.weight): m.weight for m in originals.values()}
    clone = copy.deepcopy(model, memo)
    for name, linear in originals.items():
        clone.set_submodule(name, BUILDERS[library](linear, bits, device))
    clone.requires_grad_(False)
    return clone.eval(), label(library, bits)


def _nf4_by_hand(weight) -> torch.Tensor:
    """A bitsandbytes 4-bit weight decoded from its definition: two codes per byte (the first in
    the high nibble), each the NF4 level times its block's absmax."""
    state, n = weight.quant_state, int(torch.Size(weight.quant_state.shape).numel())
    packed = weight.data.view(torch.uint8).flatten()
    codes = torch.stack([packed >> 4, packed & 0xF], 1).flatten()[:n].long()
    scales = state.absmax.float().repeat_interleave(state.blocksize)[:n]
    return (state.code.float()[codes] * scales).reshape(state.shape)


def dequantized(module) -> torch.Tensor:
    """A quantized layer's weight back in float32 (what the layer multiplies by)."""
    weight = module.weight
    if not hasattr(weight, "quant_state") and not hasattr(weight, "SCB"):
        return weight.dequantize().float()  # torchao's tensor subclasses
    import bitsandbytes.functional as F

    if hasattr(weight, "quant_state"):  # bitsandbytes 4-bit
        data, state = weight.data, weight.quant_state
        if getattr(state, "packing_format_for_cpu", False):
            data, state = F._convert_weight_packed_for_cpu_inverse(data, copy.deepcopy(state))
        return F.dequantize_4bit(data, state).float()
    cb = weight.CB if weight.CB is not None else module.state.CB
    scb = weight.SCB if weight.SCB is not None else module.state.SCB
    return cb.float() * scb.float()[:, None] / 127
