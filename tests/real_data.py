"""Small files in the exact layouts of the real benchmarks, built in the tests (no hub access).

MLLMU-Bench: one folder per subset holding ``train-0000k-of-0000n.parquet`` shards (several
shards per subset here, as the hub copy has for the big subsets); MMBench: the dev-en TSV with
base64 images and 2-4 options. Also tiny llava-hf LLaVA and LLaVA-NeXT models built from config
(random weights).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

from PIL import Image

LETTERS = "ABCD"


# Image sizes of different aspect ratios: LLaVA-NeXT's anyres and Qwen2-VL give each its own token count.
SIZES = [(32, 32), (48, 24), (24, 56), (40, 40)]


def png(colour, size: tuple[int, int] = (32, 32)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def _schemas():
    from pulse_unlearn.world.build import _schemas as world_schemas

    profile, test, ft, _ = world_schemas()
    return profile, test, ft


def _write_shards(rows: list[dict], schema, folder: Path, n_shards: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    n_shards = max(1, min(n_shards, len(rows)))
    for k in range(n_shards):
        part = rows[k::n_shards]
        pq.write_table(pa.Table.from_pylist(part, schema=schema), folder / f"train-{k:05d}-of-{n_shards:05d}.parquet")


def person_row(pid: str, k: int, directory: str, sized: bool = False) -> dict:
    image = png(((37 * k) % 256, (91 * k) % 256, (53 * k) % 256), SIZES[k % len(SIZES)] if sized else (32, 32))
    name = f"Person{pid}"
    mcq = lambda who, j: {"Question": f"What is the job of {who}? ({j})",  # noqa: E731
                          "Options": {"A": "baker", "B": "pilot", "C": "nurse", "D": "judge"},
                          "Correct_Answer": LETTERS[(k + j) % 4]}
    return {
        "image": {"bytes": image, "path": f"{directory}/{pid}.png"}, "ID": pid, "Directory": directory,
        "biography": f"{name} is a {['baker', 'pilot', 'nurse', 'judge'][k % 4]}.",
        "question": f"Who is {name}?", "answer": f"{name} is a person.",
        "Classification_Task": {"Image_Textual_Questions": [mcq("the person in the image", j) for j in range(2)],
                                "Pure_Text_Questions": [mcq(name, j) for j in range(2)]},
        "Mask_Task": [{"Question": "The person in the image lives in __.", "Ground_Truth": f"Town{k}",
                       "Type": "Image_Textual"},
                      {"Question": f"{name} was born in __.", "Ground_Truth": str(1950 + k), "Type": "Pure_Text"}],
        "Generation_Task": [{"Question": "Where does the person in the image live?",
                             "Ground_Truth": f"The person lives in Town{k}.", "Type": "Image_Textual"},
                            {"Question": f"When was {name} born?", "Ground_Truth": f"{name} was born in {1950 + k}.",
                             "Type": "Pure_Text"}],
    }


def write_mllmu(root: Path, n_full: int = 20, n_celeb: int = 8, shards: int = 3, sized: bool = False,
                shared_ids: bool = False) -> Path:
    """Full_Set, Retain_Set, Test_Set, ft_Data, forget_10/retain_90 in several shards each;
    ``sized``: portraits of several sizes (``SIZES``) instead of 32 x 32; ``shared_ids``: Retain_Set
    numbers its people from 000 as Full_Set does (MLLMU-Bench numbers the two independently), and
    each celebrity's answers differ from those of the fictitious person of the same ID."""
    profile, test, ft = _schemas()
    full = [person_row(f"{i:03d}", i, "Full_Set", sized) for i in range(n_full)]
    celebs = [person_row(f"{i:03d}", 101 + i, "Retain_Set", sized) if shared_ids else
              person_row(f"c{i:03d}", 100 + i, "Retain_Set", sized) for i in range(n_celeb)]
    _write_shards(full, profile, root / "Full_Set", shards)
    _write_shards(celebs, profile, root / "Retain_Set", shards)
    tests = []
    for row in full:
        r = {k: v for k, v in row.items() if k != "image"}
        tests.append({"images": [row["image"], {"bytes": png((1, 2, 3)), "path": "pose.png"}], **r})
    _write_shards(tests, test, root / "Test_Set", shards)
    ft_rows = []
    for i, row in enumerate(full):
        pairs = [{"Question": "What does the person in the image do?", "Answer": row["biography"]},
                 {"Question": f"Where does Person{row['ID']} live?", "Answer": f"Town{i}", "Type": "Pure_Text"}]
        ft_rows.append({"image": row["image"], "ID": row["ID"], "Directory": "ft_Data",
                        "biography": row["biography"], "metadata": json.dumps(pairs)})
    _write_shards(ft_rows, ft, root / "ft_Data", shards)
    n_forget = round(n_full * 0.1)
    _write_shards(full[:n_forget], profile, root / "forget_10", 1)
    _write_shards(full[n_forget:], profile, root / "retain_90", shards)
    return root


def write_mmbench(path: Path, n: int = 12, sized: bool = False) -> Path:
    """The dev-en TSV: index, question, hint, A-D, answer, category, l2-category, split, image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "split",
                    "image"])
        for i in range(n):
            k = 2 + i % 3  # 2 to 4 options
            opts = [f"option {j} of {i}" for j in range(k)] + [""] * (4 - k)
            size = SIZES[i % len(SIZES)] if sized else (32, 32)
            image = base64.b64encode(png((i * 20 % 256, 40, 90), size)).decode() if i % 4 else ""
            w.writerow([1000 + i, f"Which is right for item {i}?", "A hint." if i % 5 == 0 else "nan", *opts,
                        LETTERS[i % k], "cat", "l2", "dev", image])
    return path


def texts_for_tokenizer() -> list[str]:
    words = ["USER: <image>\nWhat is the job of the person in the image? ASSISTANT: A</s>",
             "A: baker B: pilot C: nurse D: judge Answer with the option's letter from the given choices directly.",
             "Please **ONLY** provide the correct answer that should replace the [Blank].",
             "Answer the question based on your trained knowledge in one sentence accurately in ENGLISH!!.",
             "The person lives in Town1. Person001 was born in 1951. Which is right for item option of hint"]
    return words * 30


def _tiny_config():
    from pulse_unlearn.models.tiny import TinyModelConfig

    return TinyModelConfig(text_hidden=32, text_intermediate=64, text_layers=2, vision_hidden=16, vision_heads=2,
                           text_heads=2, vocab_size=400)


def _save(model, proc, out: Path) -> Path:
    model.save_pretrained(out, safe_serialization=True)
    proc.save_pretrained(out)
    return out


def build_tiny_llava(out: Path, seed: int = 0) -> Path:
    """A random-weight LLaVA (CLIP tower + projector + Llama) and LlavaProcessor, saved in the
    llava-hf layout (safetensors)."""
    from pulse_unlearn.models.tiny import build_model, build_processor, train_tokenizer

    cfg = _tiny_config()
    tok = train_tokenizer(texts_for_tokenizer(), cfg.vocab_size)
    return _save(build_model(tok, cfg, seed=seed), build_processor(tok, cfg), out)


def build_tiny_llava_next(out: Path, seed: int = 0) -> Path:
    """A random-weight LLaVA-NeXT (anyres: an image is cut into 32 px tiles on the best of four
    grids, so its token count depends on its size) and a real LlavaNextProcessor, saved."""
    import torch
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor

    from pulse_unlearn.models.tiny import CHAT_TEMPLATE, sub_configs, train_tokenizer

    try:  # the PIL backend: no torchvision needed
        from transformers import LlavaNextImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import LlavaNextImageProcessor as ImageProcessor

    cfg = _tiny_config()
    tok = train_tokenizer(texts_for_tokenizer(), cfg.vocab_size)
    grids = [[32, 32], [32, 64], [64, 32], [64, 64]]
    image_processor = ImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                     image_grid_pinpoints=grids, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    proc = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=cfg.patch_size,
                              vision_feature_select_strategy="default", num_additional_image_tokens=1,
                              chat_template=CHAT_TEMPLATE, image_token="<image>")
    vision, text = sub_configs(tok, cfg)
    config = LlavaNextConfig(vision_config=vision, text_config=text, image_grid_pinpoints=grids,
                             image_token_index=tok.convert_tokens_to_ids("<image>"),
                             vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return _save(model, proc, out)


# Qwen2-VL's conversation format (ChatML): the image is a placeholder between vision markers.
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def has_torchvision() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchvision") is not None


def build_tiny_qwen2_vl(out: Path, seed: int = 0):
    """A random-weight Qwen2-VL (its own vision tower and patch merger, 3-D rotary positions) saved
    in its hub layout, and its real Qwen2VLProcessor. Returns (folder, processor).

    The processor's video half needs torchvision; without it transformers cannot build or load a
    Qwen2VLProcessor at all, so the processor is built with no video processor (its class check
    skipped for that one argument), kept in memory and not saved: the tests then hand it to the
    loader in place of AutoProcessor. With torchvision it is saved with the model like any other."""
    from unittest import mock

    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.processing_utils import ProcessorMixin

    from pulse_unlearn.models.tiny import train_tokenizer

    try:
        from transformers import Qwen2VLImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import Qwen2VLImageProcessor as ImageProcessor

    cfg = _tiny_config()
    tok = train_tokenizer(texts_for_tokenizer(), cfg.vocab_size,
                          {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
                          ("<|vision_start|>", "<|vision_end|>", "<|im_start|>", "<|im_end|>"))
    image_processor = ImageProcessor(min_pixels=16 * 16, max_pixels=64 * 64, patch_size=4, merge_size=2,
                                     temporal_patch_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    if has_torchvision():
        from transformers import Qwen2VLVideoProcessor

        proc = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tok,
                                video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN_TEMPLATE)
    else:
        check = ProcessorMixin.check_argument_for_proper_class

        def allow_no_video(self, name, arg):
            return None if name == "video_processor" and arg is None else check(self, name, arg)

        with mock.patch.object(ProcessorMixin, "check_argument_for_proper_class", allow_no_video):
            proc = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tok, video_processor=None,
                                    chat_template=QWEN_TEMPLATE)
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    text = dict(vocab_size=len(tok), hidden_size=cfg.text_hidden, intermediate_size=cfg.text_intermediate,
                num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.text_heads, num_key_value_heads=1,
                max_position_embeddings=cfg.max_positions, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
                rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})
    vision = dict(depth=1, embed_dim=16, hidden_size=cfg.text_hidden, num_heads=2, mlp_ratio=2, in_channels=3,
                  patch_size=4, spatial_merge_size=2, temporal_patch_size=2)
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(text_config=text, vision_config=vision, **ids))
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.save_pretrained(out, safe_serialization=True)
    if has_torchvision():
        proc.save_pretrained(out)
    else:
        tok.save_pretrained(out)  # the tokenizer and image processor files, as a hub folder has them
        image_processor.save_pretrained(out)
    return out, proc
