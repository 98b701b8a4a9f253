"""One LoRA adapter put on a model, the same way wherever the project trains one: unlearning
(``methods/unlearn.py``), the in-run fine-tuning (``models/finetune.py``) and the embedded
world's fine-tuned model (``models/world_models.py``).

``attach_lora(model, recipe, targets)`` builds peft's adapter from a ``LoraRecipe`` (rank,
alpha, dropout) on ``targets``: a list of full module names (``lora_targets`` finds them in any
supported model's module tree) or a regex over full names (the world model's). peft draws the
new A matrices from torch's global RNG: the callers seed it right before attaching.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

import torch

from ..core.names import unknown_name
from ..config.schema import UPDATES, LoraRecipe
from ..errors import PulseError

# Module-name parts of the multimodal projector (LLaVA, LLaVA-NeXT: multi_modal_projector;
# original LLaVA: mm_projector; Qwen2-VL: visual.merger; Idefics3/SmolVLM: connector), of the
# vision encoder, and of output heads. Anything else that is a Linear is the language model.
PROJECTOR_PARTS = ("multi_modal_projector", "mm_projector", "merger", "connector", "mm_proj")
VISION_PARTS = ("vision_tower", "vision_model", "visual", "vision_encoder", "image_encoder", "vpm")
HEAD_PARTS = ("lm_head", "embed_out", "score", "classifier")


def lora_targets(model, update: str, layers: Collection[int] | None = None) -> list[str]:
    """Full names of the Linear layers LoRA adapts for ``update``, found in ``model``'s module tree:
    the language model's linears (``llm``), plus the projector's (``projector_llm``). ``layers``:
    only the language model's decoder layers with these (0-based) indices."""
    if update not in UPDATES:
        raise PulseError(unknown_name("update strategy", update, UPDATES))
    llm, projector = [], []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or "lora_" in name:
            continue
        parts = set(name.split("."))
        if parts & set(PROJECTOR_PARTS):
            projector.append(name)
        elif parts & set(VISION_PARTS) or parts & set(HEAD_PARTS):
            continue
        elif layers is None or _layer_index(name) in layers:
            llm.append(name)
    arch = type(model).__name__
    if not llm:
        raise PulseError(f"{arch}: no language-model Linear layers found for LoRA (update={update})")
    if update == "projector_llm":
        if not projector:
            raise PulseError(f"{arch}: no multimodal projector Linear layers found (looked for module names with "
                             f"{', '.join(PROJECTOR_PARTS)}); use update=llm")
        return llm + projector
    return llm


def _layer_index(name: str) -> int | None:
    """The decoder layer a module belongs to: the number after ``layers.`` (or ``h.``, GPT-style)."""
    found = re.search(r"\.(?:layers|h)\.(\d+)\.", f".{name}.")
    return int(found.group(1)) if found else None


def attach_lora(model, recipe: LoraRecipe, targets: str | Sequence[str]):
    """``model`` wrapped by peft with a fresh adapter of ``recipe``'s shape on ``targets``
    (module names, or one regex that peft matches against each full name)."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(
        r=recipe.rank, lora_alpha=recipe.alpha, lora_dropout=recipe.dropout,
        target_modules=targets if isinstance(targets, str) else list(targets)))


def adapter_state(peft_model, name: str = "default") -> dict[str, torch.Tensor]:
    """One adapter's tensors as peft saves them (keys without the adapter's name), detached copies:
    what a stacked adapter is rebuilt from."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model, adapter_name=name).items()}
