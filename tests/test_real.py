"""Real models and data: MLLMU-Bench shards, MMBench TSV (circular), llava-hf checkpoints by
folder (LLaVA-1.5, LLaVA-NeXT, Qwen2-VL), LoRA target discovery, parity scoring. Everything is built
here, offline."""

from __future__ import annotations

import io
import itertools

import pyarrow.parquet as pq
import torch
import pytest
from real_data import (SIZES, build_tiny_llava, build_tiny_llava_next, build_tiny_qwen2_vl, has_torchvision, png,
                       write_mllmu, write_mmbench)

from pulse_unlearn.protocol.catalog import load_config, units
from pulse_unlearn.data.mllmu import check_layout, load_facts, load_people, load_test_images, read_subset, subset_ids
from pulse_unlearn.data.mmbench import load_mmbench
from pulse_unlearn.errors import PulseError
from pulse_unlearn.evaluation.scorers import CircularScorer, Prediction, rotations


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return write_mllmu(tmp_path_factory.mktemp("mllmu") / "MLLMU-Bench")


@pytest.fixture(scope="module")
def mmbench(tmp_path_factory):
    return write_mmbench(tmp_path_factory.mktemp("mmb") / "mmbench_dev_en.tsv")


# --- MLLMU-Bench ----------------------------------------------------------------------------

def test_reads_every_shard_in_order(bench):
    assert len(list((bench / "Full_Set").glob("train-*.parquet"))) == 3
    people = load_people(bench, "Full_Set")
    assert sorted(p.id for p in people) == [f"{i:03d}" for i in range(20)]
    assert read_subset(bench, "Full_Set").num_rows == 20
    p = next(p for p in people if p.id == "004")
    assert [q.modality for q in p.questions] == ["multimodal"] * 2 + ["text"] * 2
    assert p.questions[0].answer == "A" and p.questions[0].image == p.image
    tasks = [(q.task, q.modality) for q in p.open_questions]
    assert tasks == [("cloze", "multimodal"), ("cloze", "text"), ("generation", "multimodal"),
                     ("generation", "text")]
    assert p.open_questions[0].answer == "Town4" and p.open_questions[1].image is None


def test_ft_data_joined_by_id_and_test_images(bench):
    facts = load_facts(bench)
    assert len(facts) == 20 and len(facts["007"]) == 2
    assert facts["007"][0].image is not None and facts["007"][1].image is None  # Type: Pure_Text
    images = load_test_images(bench)
    assert len(images) == 20 and all(len(v) == 2 for v in images.values())
    assert images["003"][0] == next(p for p in load_people(bench, "Full_Set") if p.id == "003").image


def test_forget_test_questions_use_a_test_set_image(bench, mmbench, tmp_path):
    """forget_test: the forget people's multimodal questions with their first Test_Set image that is
    not the profile image (here the fixture's first is the profile image itself); no Test_Set, no split."""
    import shutil

    from pulse_unlearn.config import RunConfig
    from pulse_unlearn.evaluation.splits import split_items
    from pulse_unlearn.data.sources import load_sources
    from pulse_unlearn.protocol.sets import Sets

    src = load_sources(bench, mmbench, None, 0)
    sets = Sets(requests=(("fictitious:003", "fictitious:004"),), retain=("fictitious:005",))
    split = split_items(RunConfig(), src, sets)
    assert list(split) == ["forget", "forget_test", "retain", "general"]
    pose = load_test_images(bench)["003"][1]
    asked = [q for q in split["forget_test"] if q.subject == "fictitious:003"]
    originals = [q for q in split["forget"] if q.subject == "fictitious:003" and q.modality == "multimodal"]
    assert [q.qid for q in asked] == [f"{q.qid}/test" for q in originals]
    assert [(q.question, q.options, q.answer) for q in asked] == [(q.question, q.options, q.answer) for q in originals]
    assert all(q.image == pose != src.fictitious["fictitious:003"].image for q in asked)
    copy = shutil.copytree(bench, tmp_path / "no-test")
    shutil.rmtree(copy / "Test_Set")
    assert "forget_test" not in split_items(RunConfig(), load_sources(copy, mmbench, None, 0), sets)


def test_layout_check_passes_and_catches_bad_splits(bench, tmp_path):
    full = subset_ids(bench, "Full_Set")
    assert set(check_layout(bench, full)) == {"forget_10", "retain_90", "Test_Set", "ft_Data"}
    with pytest.raises(PulseError, match=r"forget_10: 2 people, expected 10% of Full_Set's 30 = 3"):
        check_layout(bench, full + [f"x{i}" for i in range(10)])
    with pytest.raises(PulseError, match="retain_90: 18 people; with forget_10 it must make up Full_Set"):
        check_layout(bench, sorted(full)[:2] + [f"x{i}" for i in range(18)])


def test_bad_shards_name_the_file(tmp_path):
    root = write_mllmu(tmp_path / "b", n_full=6, n_celeb=3, shards=2)
    shard = sorted((root / "Retain_Set").glob("*.parquet"))[1]
    table = pq.read_table(shard).drop_columns(["Classification_Task"])
    pq.write_table(table, shard)
    with pytest.raises(PulseError, match=rf"{shard.name}: missing column\(s\) Classification_Task"):
        load_people(root, "Retain_Set")
    shard.write_bytes(b"not parquet")
    with pytest.raises(PulseError, match=rf"{shard.name}: cannot read parquet"):
        load_people(root, "Retain_Set")
    with pytest.raises(PulseError, match="no such MLLMU-Bench subset"):
        load_people(root, "Nope_Set")


def test_duplicate_ids_across_shards(tmp_path):
    root = write_mllmu(tmp_path / "b", n_full=4, n_celeb=2, shards=2)
    a, b = sorted((root / "Full_Set").glob("*.parquet"))
    b.write_bytes(a.read_bytes())
    with pytest.raises(PulseError, match="duplicate ID"):
        load_people(root, "Full_Set")


# --- MMBench ------------------------------------------------------------------------------------

def test_mmbench_tsv(mmbench):
    qs = load_mmbench(mmbench)
    assert len(qs) == 12
    assert [len(q.options) for q in qs[:3]] == [2, 3, 4]
    assert qs[0].image is None and qs[1].image is not None
    assert qs[0].question.startswith("A hint.\n") and not qs[1].question.startswith("nan")


def test_rotations_keep_the_answer_text(mmbench):
    q = load_mmbench(mmbench)[2]  # 4 options
    rots = rotations(q)
    assert len(rots) == 4 and rots[0] == q
    for r in rots:
        assert r.options[r.answer] == q.options[q.answer]
        assert sorted(r.options.values()) == sorted(q.options.values())
    assert [r.qid for r in rots[1:]] == [f"{q.qid}@{k}" for k in (1, 2, 3)]


def test_circular_counts_a_question_only_if_every_rotation_is_right(mmbench):
    qs = load_mmbench(mmbench)[:6]

    def fake(rule):
        def make(questions):
            def score(model):
                return [Prediction(q.qid, q.subject, q.modality, q.answer, rule(q), {}) for q in questions]
            return score
        return make

    always = CircularScorer(qs, fake(lambda q: q.answer))(None)
    assert all(p.correct for p in always)
    # A model that always answers "A": right on a rotation only when the answer sits under A.
    letter_a = CircularScorer(qs, fake(lambda q: "A"))(None)
    assert not any(p.correct for p in letter_a)
    assert all(p.predicted in q.options and p.predicted != q.answer for p, q in zip(letter_a, qs))
    # Wrong on rotation 1 only: the question is wrong; the wrong letter maps back to the original options.
    one = CircularScorer(qs, fake(lambda q: "" if q.qid.endswith("@1") else q.answer))(None)
    assert [p.predicted for p in one] == [""] * 6


# --- config ---------------------------------------------------------------------------------------

def test_model_shortcut_and_shipped_config(tmp_path):
    from importlib.resources import files
    from pathlib import Path

    cfg = load_config(None, ["model=/some/dir", "scenario=finetuned", "method=npo", "update=projector_llm"])
    assert cfg.model.source == "path" and cfg.model.base == "/some/dir"
    assert units(cfg) == [("finetuned", "npo", "projector_llm")]
    shipped = Path(str(files("pulse_unlearn") / "configs" / "mllmu_llava15.yaml"))
    cfg = load_config(shipped, [f"data.mllmu={tmp_path}", f"data.mmbench={tmp_path}/m.tsv"])
    assert cfg.model.base == "llava-hf/llava-1.5-13b-hf" and cfg.model.dtype == "bfloat16"
    assert (cfg.finetune.lr, cfg.finetune.epochs, cfg.finetune.batch_size, cfg.finetune.lora.rank) == (2e-5, 5, 4, 16)
    assert (cfg.unlearn.lr, cfg.unlearn.epochs, cfg.unlearn.batch_size) == (2e-5, 1, 4)
    cfg = load_config(shipped, ["model=llava-hf/llava-1.5-7b-hf"])
    assert cfg.model.base == "llava-hf/llava-1.5-7b-hf"
    with pytest.raises(PulseError, match="model="):
        load_config(None, ["model="])

# --- a llava-hf checkpoint by folder, through a scenario ----------------------------------------

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("ckpt") / "tiny-llava")


def _run(config, tmp_path, checkpoint, bench, mmbench, *extra):
    import csv
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from pulse_unlearn.cli import main

    out = tmp_path / "run"
    args = ["run", str(config), f"model={checkpoint}", f"data.mllmu={bench}", f"data.mmbench={mmbench}",
            "--out", str(out), "--cache", str(tmp_path / "cache"), *extra]
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        status = main(args)
    assert status == 0, err.getvalue()
    with open(out / "summary.csv", newline="") as f:
        return out, list(csv.DictReader(f)), err.getvalue()


@pytest.fixture(scope="module")
def real_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "real.yaml"
    path.write_text(
        "name: real-tiny\n"
        "splits: {finetune_people: 10, forget: 4, requests: 2, probe_threshold: 0.0, pretrained_forget: 2,"
        " pretrained_retain: 2}\n"
        "finetune: {lr: 1.0e-3, epochs: 1, batch_size: 4}\n"
        "unlearn: {lr: 1.0e-3, epochs: 1, batch_size: 4, lora: {rank: 4, alpha: 8}}\n"
        "scoring: logits\n"
        "parity: {mc_max_new_tokens: 3, open_max_new_tokens: 4}\n")
    return path



def test_checkpoint_folder_runs_the_protocol(tmp_path, checkpoint, bench, mmbench, real_config, monkeypatch):
    """model=DIR: loaded offline by the Auto classes, fine-tuned in the run (cached), unlearned."""
    import json

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out, rows, log = _run(real_config, tmp_path, checkpoint, bench, mmbench, "scenario=[finetuned,pretrained]",
                          "method=ga", "update=projector_llm")
    assert "fine-tuned model: 20 examples" in log
    assert {(r["scenario"], r["update"]) for r in rows} == {("finetuned", "projector_llm"),
                                                           ("pretrained", "projector_llm")}
    assert {r["split"] for r in rows} == {"forget", "forget_test", "retain", "general"}
    assert {r["scenario"] for r in rows if r["split"] == "forget_test"} == {"finetuned"}  # no celebrity in Test_Set
    assert {r["scoring"] for r in rows} == {"logits"}
    env = json.loads((out / "environment.json").read_text())
    assert env["models"]["finetuned"].startswith(str(tmp_path / "cache" / "models" / "finetuned-"))
    sets = json.loads((out / "sets.json").read_text())
    assert len(sets["finetuned"]["forget_requests"][0]) == 4 and len(sets["finetuned"]["retain"]) == 6
    assert len(sets["pretrained"]["forget_requests"][0]) == 2 and len(sets["pretrained"]["retain"]) == 2


def test_finetune_checkpoint_is_cached(tmp_path, checkpoint):
    from pulse_unlearn.config import FinetuneConfig
    from pulse_unlearn.models.finetune import finetune_checkpoint
    from pulse_unlearn.records import Example

    examples = [Example("Who is this?", "Person001.", png((9, 9, 9))), Example("Where?", "Town1.")]
    logs: list[str] = []
    cfg = FinetuneConfig(epochs=1, batch_size=2)
    a = finetune_checkpoint(checkpoint, examples, cfg, tmp_path, device="cpu", log=logs.append)
    b = finetune_checkpoint(checkpoint, examples, cfg, tmp_path, device="cpu", log=logs.append)
    c = finetune_checkpoint(checkpoint, examples[:1], cfg, tmp_path, device="cpu", log=logs.append)
    assert a == b != c and "cached at" in logs[1] and "cached at" not in logs[2]
    assert (a / "model.safetensors").exists() and (a / "pulse_model.json").exists()


@pytest.fixture(scope="module")
def parity_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "parity.yaml"
    path.write_text(
        "name: parity-tiny\n"
        "splits: {finetune_people: 4, forget: 2, requests: 2}\n"
        "unlearn: {lr: 1.0e-3, epochs: 1, batch_size: 4, lora: {rank: 4, alpha: 8}}\n"
        "scoring: mllmu\n"
        "parity: {mc_max_new_tokens: 2, open_max_new_tokens: 3}\n"
        "data: {mmbench_circular: true, mmbench_subset: 3}\n")
    return path


def test_parity_scoring_adds_cloze_and_generation(tmp_path, checkpoint, bench, mmbench, parity_config):
    """scoring=mllmu: the people's cloze and generation items become their own splits; MMBench is
    scored circularly."""
    out, rows, _ = _run(parity_config, tmp_path, checkpoint, bench, mmbench, "scenario=[finetuned,pretrained]",
                        "method=ga", f"model.finetuned={checkpoint}", "splits.probe_threshold=0.0",
                        "splits.pretrained_forget=2", "splits.pretrained_retain=2")
    assert {r["split"] for r in rows} == {"forget", "forget_test", "retain", "general", "forget_cloze",
                                          "forget_generation", "retain_cloze", "retain_generation"}
    assert {r["scenario"] for r in rows if r["split"] == "forget_test"} == {"finetuned"}
    assert {r["scoring"] for r in rows} == {"mllmu"}
    cloze = [r for r in rows if r["split"] == "forget_cloze" and r["modality"] == "all" and r["request"] == "all"]
    assert cloze and all(0 <= float(r["accuracy"]) <= 1 for r in cloze)
    predictions = (out / "predictions.csv").read_text()
    assert ",forget_cloze," in predictions and "/cloze/" in predictions
    metrics = ("rouge1", "rouge2", "rougeL", "bleu")
    for r in rows:  # the generation metrics fill their columns on generation rows only
        filled = [r[m] != "" for m in metrics]
        assert filled == [r["split"].endswith("_generation")] * 4
        if all(filled):
            assert float(r["rougeL"]) == float(r["accuracy"]) and all(0 <= float(r[m]) <= 1 for m in metrics)
    general = [r for r in rows if r["split"] == "general" and r["modality"] == "all"]
    assert {int(r["n"]) for r in general} == {3}  # circular: one result per question, not per rotation
    from pulse_unlearn.report.build import build_report

    assert build_report(out).exists()  # the report reads a summary with the extra splits


def test_open_splits_get_the_per_request_breakdown():
    from pulse_unlearn.evaluation.generation import OpenPrediction
    from pulse_unlearn.evaluation.summary import summary_rows

    preds = {"forget_generation": [OpenPrediction(f"{pid}/generation/0", pid, "text", "generation", "x", "y", s)
                                   for pid, s in (("a", 0.5), ("b", 0.25))]}
    rows = summary_rows(preds, (("a",), ("b",)), step=1)
    by = {(r["request"], r["modality"]): r["accuracy"] for r in rows}
    assert by[("all", "all")] == 0.375 and by[("done", "text")] == 0.5 and by[("pending", "text")] == 0.25


def test_open_scorer_scores_cloze_by_substring_and_generation_by_rouge(checkpoint):
    from pulse_unlearn.data.batches import Encoder
    from pulse_unlearn.evaluation.generation import (OpenScorer, cloze_hit, first_letter, generation_metrics,
                                                     open_prompt, rouge_l)
    from pulse_unlearn.models.load import load_model
    from pulse_unlearn.records import OpenQuestion

    assert cloze_hit("He lives in town4, I think", "Town4") and not cloze_hit("Town", "Town4")
    assert rouge_l("The person lives in Town4.", "The person lives in Town4.") == pytest.approx(1.0)
    assert rouge_l("living", "lives") == pytest.approx(1.0)  # stemmed
    assert rouge_l("nothing alike", "The person lives in Town4.") == 0.0
    assert first_letter(" B. pilot", list("ABCD")) == "B" and first_letter("The answer is B", list("ABCD")) == ""
    q = OpenQuestion("p/cloze/0", "p", "text", "cloze", "Person1 lives in __.", "Town1")
    assert open_prompt(q).startswith("Person1 lives in [Blank].\n")
    model, proc = load_model(checkpoint, device="cpu")
    items = [q, OpenQuestion("p/generation/0", "p", "multimodal", "generation", "Where?", "In Town1.",
                             png((5, 5, 5)))]
    scorer = OpenScorer(Encoder(proc), items, max_new_tokens=3)
    preds = scorer(model)
    assert [p.score for p in preds] == [float(cloze_hit(scorer.replies[0], "Town1")),
                                        rouge_l(scorer.replies[1], "In Town1.")]
    assert preds[0].metrics == {} and preds[1].metrics == generation_metrics(scorer.replies[1], "In Town1.")
    assert scorer(model) == preds  # greedy and seeded: the same replies again


# --- LoRA targets per architecture ------------------------------------------------------------

def _llava_next():
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration

    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=16)
    text = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2)
    return LlavaNextForConditionalGeneration(LlavaNextConfig(vision_config=vision, text_config=text,
                                                             image_grid_pinpoints=[[32, 32]], image_token_index=63,
                                                             vision_feature_layer=-1))


def _qwen2_vl():
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    text = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, bos_token_id=0, eos_token_id=1,
                rope_scaling={"type": "mrope", "mrope_section": [1, 1, 2]})
    vision = dict(depth=1, embed_dim=16, hidden_size=16, num_heads=2, mlp_ratio=2, in_channels=3, patch_size=4,
                  spatial_merge_size=2, temporal_patch_size=2)
    return Qwen2VLForConditionalGeneration(Qwen2VLConfig(text_config=text, vision_config=vision))


LM_LINEARS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


@pytest.mark.parametrize("make, projector", [(_llava_next, {"linear_1", "linear_2"}), (_qwen2_vl, {"0", "2"})])
def test_lora_targets_found_per_architecture(make, projector):
    from peft import LoraConfig, get_peft_model

    from pulse_unlearn.methods.unlearn import lora_targets

    model = make()
    llm = lora_targets(model, "llm")
    assert len(llm) == 2 * 7 and {n.rsplit(".", 1)[1] for n in llm} == LM_LINEARS
    assert all("language_model" in n for n in llm)
    both = lora_targets(model, "projector_llm")
    extra = set(both) - set(llm)
    assert {n.rsplit(".", 1)[1] for n in extra} == projector
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=both))
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in peft_model.named_parameters() if ".lora_A" in n}
    assert {n.split("base_model.model.", 1)[1] for n in adapted} == set(both)
    assert not any("vision_tower" in n or "visual.blocks" in n or "lm_head" in n for n in adapted)


def test_lora_targets_llava_matches_the_world_regex(checkpoint):
    """On llava-hf LLaVA the discovered layers are exactly those of the world's regex."""
    import re

    from pulse_unlearn.models.load import load_model
    from pulse_unlearn.models.world_models import LoraSettings
    from pulse_unlearn.methods.unlearn import lora_targets

    model, _ = load_model(checkpoint, device="cpu")
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert lora_targets(model, "llm") == [n for n in names if re.fullmatch(LoraSettings().target, n)]


def test_no_targets_is_a_clear_error():
    from pulse_unlearn.methods.unlearn import lora_targets

    class VisionOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vision_tower = torch.nn.Linear(2, 2)
            self.lm_head = torch.nn.Linear(2, 2)

    with pytest.raises(PulseError, match="VisionOnly: no language-model Linear layers"):
        lora_targets(VisionOnly(), "llm")
    plain = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(PulseError, match="no multimodal projector"):
        lora_targets(plain, "projector_llm")


# --- MLLMU-Bench's few-shot demonstration (scoring=mllmu) ---------------------------------------

def _few_shot_scorer(proc, people, model_name: str):
    """A GenerateScorer with people[0] as the demo person, asked a multimodal and a text question
    of people[1]; and the expected prompts: (chat-template text, images) per question."""
    from PIL import Image

    from pulse_unlearn.data.batches import Encoder
    from pulse_unlearn.evaluation.generation import GenerateScorer

    demo, person = people[0], people[1]
    asked = [person.questions_of("multimodal")[1], person.questions_of("text")[0]]
    scorer = GenerateScorer(Encoder(proc), asked, max_new_tokens=2, demo=demo)
    assert demo.id != person.id and demo.image != person.image

    def options(x):
        return "".join(f"{k}: {v}\n" for k, v in x.options.items())

    suffix = "Answer with the option's letter from the given choices directly."
    expected = []
    for q in asked:
        shot = demo.questions_of(q.modality)[0]
        turns = [f"Question: {shot.question}\n{options(shot)}Correct Answer: {shot.answer}",
                 f"{q.question}\n{options(q)}{suffix}"]
        content = [{"type": "image"}] if q.image else []
        text = proc.apply_chat_template([{"role": "user", "content": content + [{"type": "text", "text": t}]}
                                         for t in turns], add_generation_prompt=True, tokenize=False)
        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in (shot.image, q.image)] if q.image else None
        expected.append((text, images))
    if model_name == "llava":  # LLaVA-1.5's template, written out: the demo as an earlier user turn
        shot = demo.questions_of("multimodal")[0]
        assert expected[0][0] == (f"USER: <image>\nQuestion: {shot.question}\n{options(shot)}Correct Answer: "
                                  f"{shot.answer} USER: <image>\n{asked[0].question}\n{options(asked[0])}{suffix} "
                                  "ASSISTANT:")
        text_shot = demo.questions_of("text")[0]
        assert expected[1][0] == (f"USER: Question: {text_shot.question}\n{options(text_shot)}Correct Answer: "
                                  f"{text_shot.answer} USER: {asked[1].question}\n{options(asked[1])}{suffix} "
                                  "ASSISTANT:")
    return scorer, expected


def _assert_processor_inputs(ours: dict, ref) -> None:
    """Every input the processor gives is ours, equal (LLaVA-NeXT: zero tiles pad an image to its
    batch's most, skipped)."""
    assert set(ours) == set(ref)
    for key, value in ref.items():
        inside = tuple(slice(0, n) for n in value.shape)
        assert torch.equal(ours[key][inside], value), key
        assert ours[key].sum() == value.sum(), key


def _assert_few_shot_inputs(scorer, expected, proc, model) -> None:
    """Each prompt's inputs are what the processor gives for the whole two-turn text and its images
    (two images: two placeholders, each expanded for its own image, image inputs demo first); and
    generation runs on them."""
    from pulse_unlearn.data.batches import collate

    enc = scorer.enc
    assert [len(keys) for keys in enc.image_keys] == [2, 0]
    for i, (text, images) in enumerate(expected):
        ref = proc(text=text, images=images, return_tensors="pt")
        _assert_processor_inputs(collate(enc, [i], proc.tokenizer.pad_token_id, labels=False,
                                         ends=[enc.prompt_len[i]]), ref)
    preds = scorer(model)  # the model takes both images' features for its two placeholder runs
    assert len(preds) == 2 and len(scorer.replies) == 2


@pytest.mark.parametrize("source", ["llava-hf fixture", "embedded world"])
def test_few_shot_prompt_holds_the_demo_person_and_two_images(source, request, bench):
    """LLaVA-1.5: the exact prompt text; two image placeholders, each expanded, whose pixel rows go
    in order (demo first): the same ids and pixels as the processor itself gives; and generation runs."""
    from pulse_unlearn.models.load import load_model

    if source == "llava-hf fixture":
        model, proc = load_model(request.getfixturevalue("checkpoint"), device="cpu")
        people = load_people(bench, "Full_Set")
    else:
        models = request.getfixturevalue("tiny_models")
        model, proc = load_model(models["finetuned"], device="cpu")
        people = load_people(models["world"] / "MLLMU-Bench", "Full_Set")
    scorer, expected = _few_shot_scorer(proc, people, "llava")
    _assert_few_shot_inputs(scorer, expected, proc, model)


def test_few_shot_with_a_template_that_refuses_it_is_one_line(checkpoint, bench):
    """A chat template that wants user and assistant turns to alternate (as some do) cannot hold the
    demo's turn before the question: one line naming the processor and the way out; no demo, no error."""
    from pulse_unlearn.data.batches import Encoder
    from pulse_unlearn.evaluation.generation import GenerateScorer
    from pulse_unlearn.models.load import load_processor

    proc = load_processor(checkpoint)
    proc.chat_template = ("{% if messages | length > 1 and messages[1]['role'] == 'user' %}"
                          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant') }}"
                          "{% endif %}" + proc.chat_template)
    demo, person = load_people(bench, "Full_Set")[:2]
    with pytest.raises(PulseError, match=r"^LlavaProcessor: the chat template refuses 2 user turns in a row \(a "
                                         r"few-shot demonstration; parity.few_shot=false turns it off\): "
                                         r"Conversation roles must alternate user/assistant/user/assistant$"):
        GenerateScorer(Encoder(proc), person.questions, demo=demo)
    assert len(GenerateScorer(Encoder(proc), person.questions).enc) == len(person.questions)


def test_demo_person_is_seeded_and_never_evaluated(checkpoint, bench, mmbench):
    """Each split's demo person is one the split does not ask about (so no answer leaks), drawn by
    seed from the other population; the general benchmark gets none; parity.few_shot=false turns it off."""
    from pulse_unlearn.config import RunConfig
    from pulse_unlearn.data.batches import Encoder
    from pulse_unlearn.models.load import load_processor
    from pulse_unlearn.evaluation.evaluator import Evaluator, demo_for
    from pulse_unlearn.data.sources import load_sources
    from pulse_unlearn.draws import demo_person
    from pulse_unlearn.protocol.sets import Sets

    src = load_sources(bench, mmbench, 2, 0)
    sets = Sets(requests=tuple(tuple(f"fictitious:{i:03d}" for i in pair) for pair in ((3, 4), (5, 6))),
                retain=("fictitious:007", "fictitious:008"))
    encoder = Encoder(load_processor(checkpoint))
    cfg = RunConfig(scoring="mllmu", parity={"open_tasks": False})
    scorers = Evaluator(encoder, cfg, src, sets).scorers
    assert set(scorers) == {"forget", "forget_test", "retain", "general"}
    for name, ids in (("forget", sets.forget), ("forget_test", sets.forget), ("retain", sets.retain)):
        demo = scorers[name].demo
        assert demo is not None and demo.key not in ids, name
        enc, tok = scorers[name].enc, encoder.tokenizer
        for q, ids, n in zip(scorers[name].questions, enc.ids, enc.prompt_len):
            prompt = tok.decode(ids[:n], skip_special_tokens=True)
            assert prompt.index(f"Question: {demo.questions_of(q.modality)[0].question}") < prompt.index(q.question)
    assert scorers["general"].demo is None
    # Questions about fictitious people get a celebrity, the same for every such split and seed.
    assert {scorers[name].demo.key for name in ("forget", "forget_test", "retain")} == {
        demo_person(list(src.celebrities), sets.forget, 0)} <= set(src.celebrities)
    assert len({demo_person(list(src.celebrities), (), seed) for seed in range(10)}) > 1
    # Celebrities get a fictitious person: the probe of all of them and a later split alike.
    probe, later = src.questions_of(sorted(src.celebrities)), src.questions_of(["celebrity:c001", "celebrity:c002"])
    assert demo_for(cfg, src, probe).key == demo_for(cfg, src, later).key in src.fictitious
    assert demo_person(["a", "b"], ["a", "b"], 0) is None and demo_person(["a", "b"], ["a"], 3) == "b"
    off = RunConfig(scoring="mllmu", parity={"open_tasks": False, "few_shot": False})
    assert Evaluator(encoder, off, src, sets).scorers["forget"].demo is None


# --- other architectures: LLaVA-NeXT (anyres, image_sizes), Qwen2-VL (image_grid_thw, 3-D positions) ---

@pytest.fixture(scope="module", params=["llava_next", "qwen2_vl"])
def arch(request, tmp_path_factory):
    """(model folder, processor to use instead of AutoProcessor or None). Qwen2-VL's processor cannot
    be built or loaded by transformers without torchvision (its video half): then it is built in memory
    (``build_tiny_qwen2_vl``) and handed to the loader."""
    out = tmp_path_factory.mktemp("ckpt") / request.param
    if request.param == "llava_next":
        return build_tiny_llava_next(out), None
    folder, proc = build_tiny_qwen2_vl(out)
    return folder, None if has_torchvision() else proc


@pytest.fixture
def offline(arch, monkeypatch):
    """The model folder, loaded offline (and the in-memory processor where AutoProcessor cannot load it)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder, proc = arch
    if proc is not None:
        from transformers import AutoProcessor

        monkeypatch.setattr(AutoProcessor, "from_pretrained", lambda *args, **kwargs: proc)
    return folder


@pytest.fixture(scope="module")
def sized_bench(tmp_path_factory):
    return write_mllmu(tmp_path_factory.mktemp("mllmu-sized") / "MLLMU-Bench", sized=True)


@pytest.fixture(scope="module")
def sized_mmbench(tmp_path_factory):
    return write_mmbench(tmp_path_factory.mktemp("mmb-sized") / "mmbench_dev_en.tsv", sized=True)


def _sized_examples():
    from pulse_unlearn.records import Example

    return [Example("Who is this?", f"Person{k} is a pilot.", png((9 * k, 9, 9), size))
            for k, size in enumerate(SIZES)] + [Example("Where?", "Town1.")]


def test_inputs_are_the_processors_and_labels_answer_only(offline):
    """Per image, the prompt's ids (its own number of image tokens) and every other input (pixel_values,
    image_sizes / image_grid_thw, mm_token_type_ids) are what the processor gives for the prompt; in a
    padded batch only answer tokens are labelled, and every row gets the logits it gets alone."""
    from PIL import Image

    from pulse_unlearn.data.batches import IGNORE, Encoder, collate
    from pulse_unlearn.models.load import load_model

    model, proc = load_model(offline, device="cpu")
    encoder, tok = Encoder(proc), proc.tokenizer
    examples = _sized_examples()
    enc = encoder.encode(examples)
    rows = list(range(len(SIZES)))
    for i in rows:
        image = Image.open(io.BytesIO(examples[i].image)).convert("RGB")
        ref = proc(text=encoder.prompt_text(examples[i].prompt, True), images=image, return_tensors="pt")
        _assert_processor_inputs(collate(enc, [i], tok.pad_token_id, labels=False, ends=[enc.prompt_len[i]]), ref)
    batch = collate(enc, rows, tok.pad_token_id)
    counts = (batch["input_ids"] == encoder.image_token_id).sum(1).tolist()
    assert len(set(counts)) == len(SIZES)  # one count per image size
    for row, i in enumerate(rows):
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        scored = labels != IGNORE
        assert not scored[: enc.prompt_len[i]].any() and not scored[len(enc.ids[i]):].any()
        assert (labels[scored] == ids[scored]).all() and not (ids[scored] == encoder.image_token_id).any()
        assert tok.decode(ids[scored], skip_special_tokens=True).strip() == examples[i].answer
        assert ids[scored][-1].item() == tok.eos_token_id
    with torch.no_grad():
        together = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        for row, i in enumerate(rows):
            alone = model(**collate(enc, [i], tok.pad_token_id, labels=False)).logits[0]
            assert torch.allclose(together[row, : len(enc.ids[i])], alone, atol=1e-5)


@pytest.mark.parametrize("scoring", ["logits", "likelihood"])
def test_prefix_sharing_matches_full_passes_or_is_off(offline, arch, sized_bench, scoring):
    """LLaVA-NeXT shares prefixes (images of other token counts kept whole); Qwen2-VL turns it off, saying why."""
    from pulse_unlearn.data.batches import Encoder
    from pulse_unlearn.data.mllmu import load_people
    from pulse_unlearn.evaluation.scorers import Scorer
    from pulse_unlearn.models.load import load_model

    model, proc = load_model(offline, device="cpu")
    questions = [q for p in load_people(sized_bench, "Full_Set")[:6] for q in p.questions]
    encoder = Encoder(proc)
    full = Scorer(encoder, questions, scoring, batch_size=8, share_prefix=False)
    shared = Scorer(encoder, questions, scoring, batch_size=8, share_prefix=True)
    if type(model).__name__.startswith("Qwen2VL"):
        assert not shared.shared and "mm_token_type_ids" in shared.sharing_off
    else:
        assert shared.shared and shared.sharing_off is None
    a, b = full(model), shared(model)
    assert [p.predicted for p in a] == [p.predicted for p in b]
    for pa, pb in zip(a, b):
        assert pa.scores == pytest.approx(pb.scores, abs=1e-4)


def test_lora_training_lowers_the_loss(offline):
    """The fine-tuning loop (answer-only NLL, LoRA on the LLM) learns on image and text batches."""
    from peft import LoraConfig, get_peft_model

    from pulse_unlearn.data.batches import Encoder
    from pulse_unlearn.methods.unlearn import lora_targets
    from pulse_unlearn.models.load import load_model
    from pulse_unlearn.models.train import TrainConfig, train

    model, proc = load_model(offline, device="cpu")
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=lora_targets(model, "llm")))
    cfg = TrainConfig(steps=12, batch_size=5, lr=1e-2, warmup=1, noise=0.0, shift=0, brightness=0.0)
    losses = train(peft_model, Encoder(proc), _sized_examples(), cfg)
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-2] + losses[-1] < losses[0] + losses[1]


def test_parity_generation_carries_every_input(offline, sized_bench):
    """scoring=mllmu's serial generate gets the same inputs (image_sizes, image_grid_thw, mm_token_type_ids)."""
    from pulse_unlearn.data.batches import Encoder
    from pulse_unlearn.data.mllmu import load_people
    from pulse_unlearn.evaluation.generation import GenerateScorer
    from pulse_unlearn.models.load import load_model

    model, proc = load_model(offline, device="cpu")
    questions = [q for p in load_people(sized_bench, "Full_Set")[:2] for q in p.questions]
    scorer = GenerateScorer(Encoder(proc), questions, max_new_tokens=2)
    preds = scorer(model)
    assert len(preds) == len(questions) and {p.modality for p in preds} == {"multimodal", "text"}
    assert scorer(model) == preds  # greedy: the same replies again


def test_few_shot_two_images_of_other_sizes(offline, sized_bench):
    """The few-shot prompt's two images (demo first) of different sizes: each placeholder is expanded
    for its own image (its own token count) and every image input (image_sizes / image_grid_thw,
    mm_token_type_ids) is what the processor gives for the whole prompt; generation runs on it."""
    from pulse_unlearn.models.load import load_model

    model, proc = load_model(offline, device="cpu")
    people = load_people(sized_bench, "Full_Set")
    scorer, expected = _few_shot_scorer(proc, people, type(model).__name__)
    _assert_few_shot_inputs(scorer, expected, proc, model)
    image_id = proc.tokenizer.convert_tokens_to_ids(proc.image_token)
    runs = [len(list(run)) for t, run in itertools.groupby(scorer.enc.ids[0]) if t == image_id]
    assert len(runs) == 2 and runs[0] != runs[1]  # the demo's image and the question's, each its own count

def test_checkpoint_runs_the_protocol(tmp_path, offline, arch, sized_bench, sized_mmbench, real_config):
    """A LLaVA-NeXT or Qwen2-VL folder, offline: fine-tuned (where its processor can be saved), scored
    (logits, likelihood), unlearned with LoRA on the LLM and on projector + LLM, evaluated."""
    can_save = arch[1] is None
    first = [] if can_save else [f"model.finetuned={offline}"]
    _, rows, log = _run(real_config, tmp_path / "a", offline, sized_bench, sized_mmbench,
                        "scenario=[finetuned,pretrained]", "method=ga_klr", "update=[llm,projector_llm]", *first)
    assert ("fine-tuned model: 20 examples" in log) == can_save
    assert ("prefix sharing off" in log) == ("qwen2_vl" in str(offline))
    assert {(r["scenario"], r["update"]) for r in rows} == {(s, u) for s in ("finetuned", "pretrained")
                                                            for u in ("llm", "projector_llm")}
    assert {r["split"] for r in rows} == {"forget", "forget_test", "retain", "general"}
    assert {r["scoring"] for r in rows} == {"logits"}
    assert {r["step"] for r in rows} == {"0", "1"}
    _, rows, _ = _run(real_config, tmp_path / "b", offline, sized_bench, sized_mmbench, "scenario=finetuned",
                      "method=npo", "update=projector_llm", "scoring=likelihood", f"model.finetuned={offline}")
    assert {r["scoring"] for r in rows} == {"likelihood"} and {r["step"] for r in rows} == {"0", "1"}
    mm = [r for r in rows if r["modality"] == "multimodal" and r["split"] == "forget" and r["request"] == "all"]
    assert mm and all(int(r["n"]) > 0 for r in mm)


@pytest.mark.skipif(has_torchvision(), reason="the processor loads where torchvision is installed")
def test_qwen2_vl_processor_without_torchvision_is_one_line(tmp_path):
    from pulse_unlearn.models.load import load_processor

    folder, _ = build_tiny_qwen2_vl(tmp_path / "qwen2_vl")
    with pytest.raises(PulseError, match=r"cannot load the processor \(Qwen2VLVideoProcessor requires the "
                                         r"Torchvision library"):
        load_processor(folder)


def test_unsupported_processor_is_a_clear_error(checkpoint):
    """A chat template that puts no image token for an image: one line, naming the processor."""
    from pulse_unlearn.data.batches import Encoder
    from pulse_unlearn.models.load import load_processor
    from pulse_unlearn.records import Example

    proc = load_processor(checkpoint)
    proc.chat_template = proc.chat_template.replace("<image>", "")
    with pytest.raises(PulseError, match=r"^LlavaProcessor: the chat template gives 0 image tokens for one image"):
        Encoder(proc).encode([Example("Who?", "Bala.", png((1, 1, 1)))])


# --- every attack on a llava-hf checkpoint ------------------------------------------------------

ALL_ATTACKS = """attacks:
  - {name: relearn, steps: 2, share: 0.5}
  - {name: relearn_retain, steps: 2}
  - {name: quantize, bits: [4, 8], splits: [forget]}
  - {name: image_transforms, transforms: [blur, rotation], severities: [1]}
  - {name: consistency}
  - {name: mia, max_items: 10}
  - {name: neighbours}
"""


def test_every_attack_runs_on_a_checkpoint_and_resumes(tmp_path, checkpoint, bench, mmbench, parity_config):
    """The real path (scoring=mllmu: answers generated): each attack gives attacks.csv rows or says in
    one line why it does not apply; the same command again replays them from resume/ byte for byte."""
    import pandas as pd

    import json

    from pulse_unlearn.records import subject_key

    rewordings = tmp_path / "rewordings.jsonl"  # a user's file: every Full_Set question in other words
    rewordings.write_text("".join(json.dumps({"id": q.qid.replace(q.subject, subject_key("fictitious", p.id), 1),
                                              "question": "Asked differently: " + q.question}) + "\n"
                                  for p in load_people(bench, "Full_Set") for q in p.questions))
    config = tmp_path / "attacks.yaml"
    config.write_text(parity_config.read_text() + ALL_ATTACKS + f"  - {{name: paraphrase, file: '{rewordings}'}}\n")
    args = ("scenario=finetuned", "method=ga", "update=llm", f"model.finetuned={checkpoint}")
    out, _, log = _run(config, tmp_path, checkpoint, bench, mmbench, *args)
    frame = pd.read_csv(out / "attacks.csv")
    skipped = {line.split()[1] for line in log.splitlines() if "does not apply" in line}
    assert set(frame["attack"]) | skipped == {"relearn", "relearn_retain", "quantize", "image_transforms",
                                              "consistency", "mia", "neighbours", "paraphrase"}
    assert {"relearn", "quantize", "image_transforms", "consistency", "paraphrase"} <= set(frame["attack"])
    assert "neighbours" in skipped  # real MLLMU-Bench has no relations
    assert set(frame["operation"]) == {0, 1} and set(frame["scenario"]) == {"finetuned"}
    quantized = frame[frame["attack"] == "quantize"]["setting"]
    assert any(s.startswith("bits=4 (") for s in quantized) and any(s.startswith("bits=8 (") for s in quantized)
    accuracy = frame[frame["metric"] == "accuracy"]["value"]
    assert accuracy.between(0, 1).all()
    before = (out / "attacks.csv").read_bytes()
    _, _, again = _run(config, tmp_path, checkpoint, bench, mmbench, *args)
    assert "read back" in again and (out / "attacks.csv").read_bytes().splitlines() == before.splitlines()
    assert (out / "attacks.csv").read_bytes() == before
