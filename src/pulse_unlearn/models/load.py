"""Load a llava-hf-layout model and its processor: a local folder or a hub id, same code.

Weights load from safetensors only (no pickle), and ``trust_remote_code`` stays off unless
the caller asks for it. Float32 on CPU (bf16 matmuls are far slower there); ``auto`` picks bf16 on
a GPU. ``device="auto"`` puts the model on the first GPU when there is one, else the CPU;
weights load straight onto that device (``device_map``), never through a CPU copy.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import PulseError


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        from ..distributed import local_rank, world_size

        return f"cuda:{local_rank()}" if world_size() > 1 else "cuda"  # one GPU per process
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def load_model(path: str | Path, dtype: str = "auto", device: str = "auto",
               trust_remote_code: bool = False):
    """(model, processor) from ``path``, in eval mode."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    local = Path(path)
    if local.exists():
        if not local.is_dir():
            raise PulseError(f"{local}: a model must be a directory")
        if not any(local.glob("*.safetensors")):
            pickled = [p.name for p in local.glob("*.bin")] + [p.name for p in local.glob("*.pt")]
            detail = f" (found {', '.join(pickled)}: pickle weights are refused)" if pickled else ""
            raise PulseError(f"{local}: no .safetensors weights{detail}")
        if not (local / "config.json").exists():
            raise PulseError(f"{local}: no config.json")
    try:
        processor = AutoProcessor.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise PulseError(f"{path}: cannot load the processor ({str(e).splitlines()[0]})") from None
    try:
        device = resolve_device(device)
        model = AutoModelForImageTextToText.from_pretrained(
            str(path), dtype=resolve_dtype(dtype, device), use_safetensors=True, device_map=device,
            trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise PulseError(f"{path}: cannot load the model ({str(e).splitlines()[0]})") from None
    model.eval()
    return model, processor
