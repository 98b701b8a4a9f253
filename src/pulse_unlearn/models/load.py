"""Load a llava-hf-layout model and its processor: a local folder or a hub id, same code.

Weights load from safetensors only (no pickle), and ``trust_remote_code`` stays off unless
the caller asks for it. Float32 on CPU (bf16 matmuls are far slower there); ``auto`` picks bf16 on
a GPU. ``device="auto"`` puts the model on the first GPU when there is one, else the CPU;
weights load straight onto that device (``device_map``), never through a CPU copy.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import PulseError, first_line


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


def check_files(path: str | Path, trust_remote_code: bool = False) -> None:
    """A local model folder's files, before anything is loaded: config.json, safetensors weights
    (pickle-only weights are refused), and no custom code unless ``trust_remote_code``."""
    import json

    local = Path(path)
    if not local.exists():
        return  # a hub id: transformers resolves it
    if not local.is_dir():
        raise PulseError(f"{local}: a model must be a directory")
    if not (local / "config.json").exists():
        raise PulseError(f"{local}: no config.json (not a model folder?)")
    if not any(local.glob("*.safetensors")):
        pickled = [p.name for p in local.glob("*.bin")] + [p.name for p in local.glob("*.pt")] + \
            [p.name for p in local.glob("*.pth")] + [p.name for p in local.glob("*.ckpt")]
        detail = f" (found {', '.join(sorted(pickled))}: pickle weights are refused, convert them to safetensors)" \
            if pickled else ""
        raise PulseError(f"{local}: no .safetensors weights{detail}")
    try:
        config = json.loads((local / "config.json").read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise PulseError(f"{local / 'config.json'}: not valid JSON ({e})") from None
    configs = [config] + [_json_or_empty(local / n) for n in ("processor_config.json", "tokenizer_config.json",
                                                               "preprocessor_config.json")]
    custom = any(isinstance(c, dict) and c.get("auto_map") for c in configs)
    if custom and not trust_remote_code:
        raise PulseError(f"{local}: the model needs its own code (auto_map) and model.trust_remote_code is off; "
                         "turn it on only for code you trust")


def decoder_layers(path: str | Path) -> int | None:
    """The language model's number of decoder layers from a local folder's config.json
    (LLaVA-style configs hold it in ``text_config``); None when it does not say."""
    config = _json_or_empty(Path(path) / "config.json")
    for part in (config.get("text_config") or {}, config):
        if isinstance(part, dict) and isinstance(part.get("num_hidden_layers"), int):
            return part["num_hidden_layers"]
    return None


def _json_or_empty(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (ValueError, UnicodeDecodeError):
        return {}


def load_processor(path: str | Path, trust_remote_code: bool = False):
    """The model's processor; it must have an image token the tokenizer knows."""
    from transformers import AutoProcessor

    check_files(path, trust_remote_code)
    try:
        processor = AutoProcessor.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, ImportError) as e:
        # ImportError: e.g. Qwen2-VL's video processor without torchvision
        raise PulseError(f"{path}: cannot load the processor ({first_line(e)})") from None
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None or getattr(processor, "image_processor", None) is None:
        raise PulseError(f"{path}: the processor has no tokenizer or no image processor (not a LLaVA-style model?)")
    token = getattr(processor, "image_token", None) or "<image>"
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise PulseError(f"{path}: the tokenizer has no image token {token!r}")
    config = _json_or_empty(Path(path) / "config.json")
    expected = config.get("image_token_index", config.get("image_token_id"))
    if expected is not None and token_id != expected:  # e.g. a processor that added the token itself
        raise PulseError(f"{path}: the tokenizer has no image token {token!r} with the model's id {expected} "
                         f"(it gives {token_id})")
    return processor


def load_model(path: str | Path, dtype: str = "auto", device: str = "auto",
               trust_remote_code: bool = False):
    """(model, processor) from ``path``, in eval mode."""
    from transformers import AutoModelForImageTextToText

    processor = load_processor(path, trust_remote_code)
    try:
        device = resolve_device(device)
        model = AutoModelForImageTextToText.from_pretrained(
            str(path), dtype=resolve_dtype(dtype, device), use_safetensors=True, device_map=device,
            trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise PulseError(f"{path}: cannot load the model ({first_line(e)})") from None
    model.eval()
    return model, processor
