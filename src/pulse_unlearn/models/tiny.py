"""A tiny LLaVA built from config, so the embedded world runs the real code path on a CPU.

Everything is the stock transformers machinery: ``LlavaForConditionalGeneration`` (a small
CLIP vision tower, the usual two-layer projector, a small Llama), a BPE tokenizer trained
offline on the world's own text, and a ``LlavaProcessor`` with a configured CLIP image
processor and a LLaVA-1.5-style chat template. ``save_pretrained`` writes it in the
llava-hf layout, so it is loaded exactly like a real checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict

SPECIAL_TOKENS = ("<pad>", "<unk>", "<s>", "</s>", "<image>")

# The llava-hf LLaVA-1.5 conversation format: "USER: <image>\n{text} ASSISTANT:".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: {% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    "{% endif %}"
    "{% if message['role'] == 'user' %} {% else %}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


class TinyModelConfig(BaseModel):
    """Sizes of the tiny LLaVA. Defaults train in minutes on two CPU cores."""

    model_config = ConfigDict(extra="forbid")

    image_size: int = 32
    patch_size: int = 8
    vision_hidden: int = 64
    vision_layers: int = 4
    vision_heads: int = 4
    text_hidden: int = 128
    text_layers: int = 4
    text_heads: int = 4
    text_intermediate: int = 512
    vocab_size: int = 1024
    max_positions: int = 256


def train_tokenizer(texts: Iterable[str], vocab_size: int, named: dict[str, str] | None = None,
                    extra: tuple[str, ...] = ()):
    """A byte-level BPE tokenizer trained on the world's text, wrapped as a fast HF tokenizer.
    ``named``: special tokens a processor finds by name (default: LLaVA's ``image_token``);
    ``extra``: more special tokens (other models' chat-template markers)."""
    named = {"image_token": "<image>"} if named is None else named
    specials = [t for t in SPECIAL_TOKENS if t != "<image>"] + list(named.values()) + list(extra)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        extra_special_tokens=named, padding_side="right",
    )


def build_processor(tokenizer, cfg: TinyModelConfig):
    """A LlavaProcessor around a CLIP image processor sized for the tiny vision tower."""
    from transformers import LlavaProcessor

    try:  # the PIL backend: same result, and no torchvision needed
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # older transformers
        from transformers import CLIPImageProcessor as ImageProcessor

    image_processor = ImageProcessor(
        size={"shortest_edge": cfg.image_size}, crop_size={"height": cfg.image_size, "width": cfg.image_size},
        do_center_crop=True, do_resize=True, do_normalize=True, do_convert_rgb=True,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    )
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=cfg.patch_size,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE, image_token="<image>",
    )


def sub_configs(tokenizer, cfg: TinyModelConfig):
    """(CLIP vision config, Llama text config) of the configured size; LLaVA-style tests reuse them."""
    from transformers import CLIPVisionConfig, LlamaConfig

    vision = CLIPVisionConfig(
        hidden_size=cfg.vision_hidden, intermediate_size=4 * cfg.vision_hidden, num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.vision_heads, image_size=cfg.image_size, patch_size=cfg.patch_size,
        projection_dim=cfg.vision_hidden,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg.text_hidden, intermediate_size=cfg.text_intermediate,
        num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads, num_key_value_heads=cfg.text_heads,
        max_position_embeddings=cfg.max_positions, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False,
    )
    return vision, text


def build_model(tokenizer, cfg: TinyModelConfig, seed: int = 0):
    """A randomly initialised LlavaForConditionalGeneration of the configured size."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    vision, text = sub_configs(tokenizer, cfg)
    n_image_tokens = (cfg.image_size // cfg.patch_size) ** 2
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=n_image_tokens, vision_feature_select_strategy="default",
        # The last layer, not LLaVA-1.5's -2: with a 2-layer tower, -2 leaves the last layer untrained.
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model
