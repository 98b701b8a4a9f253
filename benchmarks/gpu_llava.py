"""GPU benchmarks on LLaVA-1.5-7B/13B-shaped models with random weights (issue #4).

Timing does not depend on the weight values, so the model is built from config (CLIP
ViT-L/14 at 336 px: 576 image tokens; Llama 7B or 13B; vocabulary 32064) and randomly
initialised on the GPU in bf16. Questions, unlearning data and the protocol's data come from
the embedded world (portraits upscaled to 336 px), tokenised by a BPE tokenizer trained on
the world's text (its prompts are about as long as Llama's tokenizer makes them).

Parts, each printed as it finishes and written to --out as JSON:
- ``eval``: questions/s with ``logits`` scoring (one full pass each, and with prefix sharing)
  vs MLLMU-Bench-style serial generation (batch 1, 5 new tokens) on the same questions;
  the share of the compute floor (2 x params x tokens at the measured bf16 matmul rate);
  compute per question with and without prefix sharing, and whether predictions agree.
- ``unlearn``: LoRA unlearning tokens/s for ga, ga_klr and npo (batch 4), model FLOPs as a
  share of the measured peak, and peak GPU memory relative to ga.
- ``protocol``: the whole sequential scenario (5 requests, evaluation after each) through
  ``pulse run`` on a saved checkpoint, with its one-shot twin; wall time per scenario.

    python benchmarks/gpu_llava.py --shape 7b --parts eval,unlearn,protocol --out bench-7b.json
    python benchmarks/gpu_llava.py --shape tiny   # a CPU smoke test of the script itself
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import torch

from pulse_unlearn.data.batches import Encoder
from pulse_unlearn.data.mllmu import load_facts, load_people
from pulse_unlearn.methods.registry import make_method
from pulse_unlearn.config import LoraRecipe, UnlearnConfig
from pulse_unlearn.methods.unlearn import unlearn
from pulse_unlearn.evaluation.generation import GenerateScorer
from pulse_unlearn.evaluation.scorers import Scorer, accuracy
from pulse_unlearn.models.tiny import TinyModelConfig, build_processor, train_tokenizer
from pulse_unlearn.models.world_models import _world_texts
from pulse_unlearn.pipeline import ensure_world
from pulse_unlearn.world.build import world_config

# (hidden, layers, heads, intermediate) of the language model and of the vision tower
SHAPES = {
    "tiny": {"text": (256, 2, 4, 688), "vision": (64, 2, 4, 256)},
    "7b": {"text": (4096, 32, 32, 11008), "vision": (1024, 24, 16, 4096)},
    "13b": {"text": (5120, 40, 40, 13824), "vision": (1024, 24, 16, 4096)},
}
IMAGE, PATCH, VOCAB = 336, 14, 32064


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn):
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def peak_matmul_flops(device: str) -> float:
    """Measured dense matmul rate (bf16 on GPU, fp32 on CPU), FLOP/s."""
    n, dtype = (8192, torch.bfloat16) if device == "cuda" else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    _, t = timed(lambda: [a @ b for _ in range(10)])
    return 10 * 2 * n**3 / t


def build_llava(shape: str, tokenizer, device: str, dtype: torch.dtype):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    (th, tl, tn, ti), (vh, vl, vn, vi) = SHAPES[shape]["text"], SHAPES[shape]["vision"]
    vision = CLIPVisionConfig(hidden_size=vh, num_hidden_layers=vl, num_attention_heads=vn, intermediate_size=vi,
                              image_size=IMAGE, patch_size=PATCH, projection_dim=768)
    text = LlamaConfig(vocab_size=VOCAB, hidden_size=th, num_hidden_layers=tl, num_attention_heads=tn,
                       num_key_value_heads=tn, intermediate_size=ti, max_position_embeddings=4096,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         image_seq_length=(IMAGE // PATCH) ** 2, vision_feature_layer=-2,
                         vision_feature_select_strategy="default", projector_hidden_act="gelu")
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(default)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval()


def param_counts(model) -> dict[str, int]:
    vision = sum(p.numel() for n, p in model.named_parameters() if "vision_tower" in n)
    total = sum(p.numel() for p in model.parameters())
    return {"total": total, "vision": vision, "llm": total - vision}


def report(results: dict, part: str, values: dict) -> None:
    results[part] = values
    print(f"== {part}")
    for k, v in values.items():
        print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")


def bench_eval(model, encoder, questions, peak, counts, n_generate: int, batch: int) -> dict:
    full = Scorer(encoder, questions, "logits", batch, share_prefix=False)
    shared = Scorer(encoder, questions, "logits", batch, share_prefix=True)
    full(model), shared(model)  # warm-up: every batch shape once (kernel selection, allocator growth)
    p_full, t_full = timed(lambda: full(model))
    p_shared, t_shared = timed(lambda: shared(model))
    gen = GenerateScorer(encoder, questions[:n_generate], max_new_tokens=5)
    GenerateScorer(encoder, questions[:2], max_new_tokens=5)(model)  # warm-up
    p_gen, t_gen = timed(lambda: gen(model))
    n_images = sum(1 for q in questions if q.image is not None)
    qps_full, qps_shared, qps_gen = len(questions) / t_full, len(questions) / t_shared, n_generate / t_gen
    out = {
        "questions": len(questions), "multimodal": n_images, "batch": batch,
        "logits_full_q_per_s": qps_full, "logits_shared_q_per_s": qps_shared, "generate_q_per_s": qps_gen,
        "speedup_full_vs_generate": qps_full / qps_gen, "speedup_shared_vs_generate": qps_shared / qps_gen,
        "full_share_of_floor": floor_seconds(full, counts, n_images, peak) / t_full,
        "tokens_per_question_full": full.computed_tokens / len(questions),
        "tokens_per_question_shared": shared.computed_tokens / len(questions),
        "compute_ratio_full_over_shared": full.computed_tokens / shared.computed_tokens,
        "predictions_agree_full_shared": sum(a.predicted == b.predicted for a, b in zip(p_full, p_shared))
        / len(questions),
        "accuracy_full": accuracy(p_full)["all"][1], "accuracy_shared": accuracy(p_shared)["all"][1],
        "generate_questions": n_generate,
    }
    # Where the full pass's time goes: each modality alone, and one bare forward of a full batch.
    for modality in ("multimodal", "text"):
        sub = [q for q in questions if q.modality == modality]
        scorer = Scorer(encoder, sub, "logits", batch, share_prefix=False)
        scorer(model)
        _, t = timed(lambda s=scorer: s(model))
        images = len(sub) if modality == "multimodal" else 0
        out[f"full_{modality}_q_per_s"] = len(sub) / t
        out[f"full_{modality}_share_of_floor"] = floor_seconds(scorer, counts, images, peak) / t
    from pulse_unlearn.data.batches import collate

    idx = full.plain[-1]  # the longest sequences
    inputs = {k: v.to(model.device) for k, v in collate(full.enc, idx, full.pad_id, labels=False).items()}
    with torch.no_grad():
        model(**inputs)
        _, t = timed(lambda: [model(**inputs) for _ in range(3)])
    tokens = inputs["input_ids"].numel()
    images = len(idx) if "pixel_values" in inputs else 0
    flops = 2 * (counts["llm"] * tokens + counts["vision"] * VISION_TOKENS * images)
    out["bare_forward_batch_tokens"] = tokens
    out["bare_forward_share_of_floor"] = flops / peak / (t / 3)
    return out


VISION_TOKENS = (IMAGE // PATCH) ** 2 + 1


def floor_seconds(scorer, counts, n_images: int, peak: float) -> float:
    """2 x params x tokens at the measured matmul rate (vision tower: once per image per pass)."""
    return 2 * (counts["llm"] * scorer.computed_tokens + counts["vision"] * VISION_TOKENS * n_images) / peak


def bench_unlearn(model, encoder, forget, retain, peak, counts, steps: int, batch: int, checkpointing: bool) -> dict:
    out, peaks = {}, {}
    cfg = UnlearnConfig(lr=1e-5, epochs=1, batch_size=batch, lora=LoraRecipe(rank=16, alpha=16),
                        gradient_checkpointing=checkpointing)
    for name in ("ga", "ga_klr", "npo"):
        method = make_method(name)
        model, _ = unlearn(model, encoder, method, forget[: 3 * batch], retain, "llm", cfg, desc=f"{name} warm-up")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        model, log = unlearn(model, encoder, method, forget[: steps * batch], retain, "llm", cfg, desc=name)
        t = log.seconds  # the training loop alone (adapter set-up and merge excluded)
        # model FLOPs: 2N per token forward, 2N backward to the activations (frozen weights);
        # the reference passes of ga_klr (retain) and npo (forget) are forward only.
        tokens, ref_share = log.tokens, {"ga": 0.0, "ga_klr": 0.5, "npo": 1.0}[name]
        flops = 4 * counts["llm"] * tokens + 2 * counts["llm"] * tokens * ref_share
        out[f"{name}_steps"] = len(log.losses)
        out[f"{name}_tokens_per_s"] = tokens / t
        out[f"{name}_seconds_per_step"] = t / len(log.losses)
        out[f"{name}_share_of_peak"] = flops / t / peak
        if torch.cuda.is_available():
            peaks[name] = torch.cuda.max_memory_allocated() / 2**30
            out[f"{name}_peak_gib"] = peaks[name]
    for name in ("ga_klr", "npo"):
        if peaks:
            out[f"{name}_memory_vs_ga"] = peaks[name] / peaks["ga"]
    out["gradient_checkpointing"] = checkpointing
    return out, model


def bench_protocol(model, processor, world: Path, workdir: Path, eval_batch: int, unlearn_batch: int,
                   small: bool) -> dict:
    from pulse_unlearn.protocol.catalog import load_config
    from pulse_unlearn.pipeline import run_experiment

    ckpt = workdir / "checkpoint"
    _, t_save = timed(lambda: (model.save_pretrained(ckpt), processor.save_pretrained(ckpt)))
    cfg = load_config(None, [
        "name=gpu-bench", "model.source=path", f"model.base={ckpt}", f"model.finetuned={ckpt}",
        f"data.mllmu={world / 'MLLMU-Bench'}", f"data.mmbench={world / 'MMBench' / 'mmbench_dev_en.tsv'}",
        "scenario=sequential", "method=ga", "scoring=logits", f"eval_batch_size={eval_batch}",
        "unlearn.lr=1e-5", "unlearn.epochs=1", f"unlearn.batch_size={unlearn_batch}", "unlearn.lora.rank=16",
        "unlearn.lora.alpha=16"] + (["splits.finetune_people=10", "splits.forget=5", "data.mmbench_subset=20"]
                                    if small else []))
    marks: dict[str, float] = {}

    def log(msg: str) -> None:
        print(f"  [{time.perf_counter() - t0:7.1f} s] {msg}", flush=True)
        if "done in" in msg:
            marks[msg.split("]")[0].strip("[")] = float(msg.split("done in")[1].split()[0])

    t0 = time.perf_counter()
    store = run_experiment(cfg, workdir / "run", workdir / "cache", log=log)
    total = time.perf_counter() - t0
    with open(store.folder / "operations.csv", newline="") as f:
        ops = list(csv.DictReader(f))
    with open(store.folder / "timings.csv", newline="") as f:
        seq_ops = [float(r["seconds"]) for r in csv.DictReader(f) if r["scenario"] == "sequential"]
    return {"checkpoint_save_s": t_save, "run_total_s": total, "finetuned_scenario_s": marks.get("finetuned"),
            "sequential_scenario_s": marks.get("sequential"), "sequential_operations": len(seq_ops),
            "sequential_op_plus_eval_s_each": seq_ops,
            "steps_per_operation": [int(r["steps"]) for r in ops if r["scenario"] == "sequential"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    ap.add_argument("--parts", default="eval,unlearn,protocol")
    ap.add_argument("--people", type=int, default=0, help="people whose questions are scored (0: by shape)")
    ap.add_argument("--eval-batch", type=int, default=32)
    ap.add_argument("--generate", type=int, default=0, help="questions for serial generation (0: by shape)")
    ap.add_argument("--unlearn-steps", type=int, default=10)
    ap.add_argument("--unlearn-batch", type=int, default=4)
    ap.add_argument("--checkpointing", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    parts = args.parts.split(",")
    gpu = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if gpu else ("cpu", torch.float32)
    workdir = Path(tempfile.mkdtemp(prefix="pulse-gpu-bench-"))
    world = ensure_world(world_config("default"), workdir / "cache", log=lambda *_: None)

    tokenizer = train_tokenizer(_world_texts(world, "USER: <image>\nA B C D ASSISTANT: A</s>"), 8000)
    processor = build_processor(tokenizer, TinyModelConfig(image_size=IMAGE, patch_size=PATCH))
    encoder = Encoder(processor)
    model, t_build = timed(lambda: build_llava(args.shape, tokenizer, device, dtype))
    counts = param_counts(model)
    peak = peak_matmul_flops(device)
    import transformers

    results: dict = {}
    report(results, "setup", {
        "shape": args.shape, "device": torch.cuda.get_device_name() if gpu else "cpu", "dtype": str(dtype),
        "params_total": counts["total"], "params_llm": counts["llm"], "params_vision": counts["vision"],
        "build_s": t_build, "peak_matmul_tflops": peak / 1e12, "attention": model.config._attn_implementation,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "image_tokens": encoder.n_image_tokens})

    people = load_people(world / "MLLMU-Bench", "Full_Set")
    n_people = args.people or (40 if gpu else 3)
    if "eval" in parts:
        questions = [q for p in people[:n_people] for q in p.questions]
        report(results, "eval", bench_eval(model, encoder, questions, peak, counts,
                                           args.generate or (40 if gpu else 4), args.eval_batch))
    if "unlearn" in parts:
        facts = load_facts(world / "MLLMU-Bench")
        # multimodal facts (576 image tokens each), as a LLaVA unlearning batch mostly is
        forget = [ex for p in people[:50] for ex in facts[p.id] if ex.image is not None]
        retain = [ex for p in people[50:] for ex in facts[p.id] if ex.image is not None]
        steps = args.unlearn_steps if gpu else 2
        values, model = bench_unlearn(model, encoder, forget, retain, peak, counts, steps, args.unlearn_batch,
                                      args.checkpointing)
        report(results, "unlearn", values)
    if "protocol" in parts:
        report(results, "protocol", bench_protocol(model, processor, world, workdir, args.eval_batch,
                                                   args.unlearn_batch, small=not gpu))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
