"""models/lora.py: one adapter from a LoraRecipe, on module names or a regex, drawn from torch's RNG."""

from __future__ import annotations

import pytest
import torch

from pulse_unlearn.config.schema import LoraRecipe
from pulse_unlearn.models.lora import attach_lora, lora_targets
from pulse_unlearn.models.tiny import TinyModelConfig, build_model, train_tokenizer
from pulse_unlearn.models.world_models import LoraSettings

CFG = TinyModelConfig(text_hidden=32, text_intermediate=64, vision_hidden=16, vision_heads=2, text_heads=2,
                      vocab_size=320)


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["USER: Who is this? ASSISTANT: This is Bala Koron."] * 20, CFG.vocab_size)


def _adapted(peft_model) -> set[str]:
    return {n.split("base_model.model.", 1)[1].rsplit(".lora_A", 1)[0]
            for n, _ in peft_model.named_parameters() if ".lora_A" in n}


def test_names_and_the_world_regex_adapt_the_same_layers(tokenizer):
    names = lora_targets(build_model(tokenizer, CFG, seed=0), "llm")
    by_names = attach_lora(build_model(tokenizer, CFG, seed=0), LoraRecipe(), names)
    by_regex = attach_lora(build_model(tokenizer, CFG, seed=0), LoraRecipe(), LoraSettings().target)
    assert _adapted(by_names) == set(names) == _adapted(by_regex)
    assert not any("vision_tower" in n or "projector" in n for n in names)


def test_the_recipe_sets_rank_alpha_and_dropout(tokenizer):
    recipe = LoraRecipe(rank=3, alpha=12, dropout=0.25)
    model = build_model(tokenizer, CFG, seed=0)
    peft_model = attach_lora(model, recipe, lora_targets(model, "llm"))
    config = peft_model.peft_config["default"]
    assert (config.r, config.lora_alpha, config.lora_dropout) == (3, 12, 0.25)
    shapes = {p.shape[0] for n, p in peft_model.named_parameters() if n.endswith("lora_A.default.weight")}
    assert shapes == {3}
    assert all(not p.requires_grad for n, p in peft_model.named_parameters() if "lora_" not in n)


def test_the_adapter_is_drawn_from_torchs_rng_alone(tokenizer):
    """Seeded the same, two attaches draw the same A matrices, and the same as peft called
    directly: the helper adds no draw of its own, so moving a caller onto it changes no number."""
    from peft import LoraConfig, get_peft_model

    def a_matrices(attach) -> dict[str, torch.Tensor]:
        model = build_model(tokenizer, CFG, seed=0)
        targets = lora_targets(model, "projector_llm")
        torch.manual_seed(7)
        peft_model = attach(model, targets)
        return {n: p.detach().clone() for n, p in peft_model.named_parameters() if "lora_A" in n}

    recipe = LoraRecipe(rank=4, alpha=8)
    first = a_matrices(lambda m, t: attach_lora(m, recipe, t))
    again = a_matrices(lambda m, t: attach_lora(m, recipe, t))
    direct = a_matrices(lambda m, t: get_peft_model(m, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                                  target_modules=t)))
    assert first.keys() == again.keys() == direct.keys() and first
    assert all(torch.equal(first[k], again[k]) and torch.equal(first[k], direct[k]) for k in first)
