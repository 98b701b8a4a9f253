"""The tiny LLaVA: llava-hf layout, offline round trip, answer-only labels, a step that learns."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from pulse_unlearn.data.batches import IGNORE, Encoder, collate, pack, sequence_ids
from pulse_unlearn.errors import PulseError
from pulse_unlearn.methods.losses import answer_nll, nll
from pulse_unlearn.models.load import load_model
from pulse_unlearn.models.tiny import TinyModelConfig, build_model, build_processor, train_tokenizer
from pulse_unlearn.models.train import TrainConfig, augment, head_on_answers
from pulse_unlearn.records import Example

CFG = TinyModelConfig(text_hidden=32, text_intermediate=64, vision_hidden=16, vision_heads=2, text_heads=2,
                      vocab_size=320)


def _png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny():
    texts = ["USER: Who is this? ASSISTANT: This is Bala Koron.", "USER: Where does Bala live? ASSISTANT: Merrow."]
    tok = train_tokenizer(texts * 20, CFG.vocab_size)
    proc = build_processor(tok, CFG)
    return build_model(tok, CFG, seed=0), proc


EXAMPLES = [Example("Who is this?", "This is Bala Koron.", _png((200, 0, 0))),
            Example("Who is this?", "This is Merrow.", _png((0, 0, 200))),
            Example("Where does Bala live?", "Merrow."),
            Example("Where is it?", "Bala Koron lives in Merrow.")]


def test_round_trip_offline(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, proc = tiny
    model.save_pretrained(tmp_path)
    proc.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin"))
    model2, proc2 = load_model(tmp_path)
    assert type(model2).__name__ == "LlavaForConditionalGeneration"
    enc = Encoder(proc2).encode(EXAMPLES[:2])
    batch = collate(enc, [0, 1], proc2.tokenizer.pad_token_id, labels=False)
    with torch.no_grad():
        assert torch.allclose(model.eval()(**batch).logits, model2(**batch).logits, atol=1e-6)
    assert proc2.chat_template == proc.chat_template


def test_labels_cover_only_the_answer(tiny):
    model, proc = tiny
    encoder = Encoder(proc)
    enc = encoder.encode(EXAMPLES)
    tok = proc.tokenizer
    batch = collate(enc, [0, 1], tok.pad_token_id)  # image rows, different lengths -> padding
    image_id = tok.convert_tokens_to_ids("<image>")
    assert (batch["input_ids"] == image_id).sum(1).tolist() == [encoder.n_image_tokens] * 2 == [16, 16]
    for row, i in enumerate([0, 1]):
        labels, ids = batch["labels"][row], batch["input_ids"][row]
        scored = labels != IGNORE
        # Prompt (template, image tokens) and padding are masked; the answer + EOS are scored.
        assert not scored[: enc.prompt_len[i]].any()
        assert not scored[len(enc.ids[i]):].any()
        assert (labels[scored] == ids[scored]).all()
        answer = tok.decode(ids[scored], skip_special_tokens=True).strip()
        assert answer == EXAMPLES[i].answer
        assert ids[scored][-1].item() == tok.eos_token_id
        assert not (ids[scored] == image_id).any()


def test_batches_never_mix_modalities(tiny):
    _, proc = tiny
    enc = Encoder(proc).encode(EXAMPLES)
    with pytest.raises(ValueError, match="mixes"):
        collate(enc, [0, 2], proc.tokenizer.pad_token_id)


def test_training_step_lowers_answer_loss(tiny):
    model, proc = tiny
    model = build_model(proc.tokenizer, CFG, seed=1)
    enc = Encoder(proc).encode(EXAMPLES)
    batch = collate(enc, [2, 3], proc.tokenizer.pad_token_id)
    labels = batch.pop("labels")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    before = nll(model(**batch).logits, labels).item()
    for _ in range(5):
        opt.zero_grad()
        nll(model(**batch).logits, labels).backward()
        opt.step()
    after = nll(model(**batch).logits, labels).item()
    assert after < before - 0.1


def test_nll_reads_answer_tokens_only(tiny):
    """Changing a prompt token's label-free position must not change the loss's target set."""
    logits = torch.randn(1, 5, 7)
    labels = torch.tensor([[IGNORE, IGNORE, IGNORE, 3, 4]])
    # By hand: positions 2 and 3 predict tokens 3 and 4.
    logp = torch.log_softmax(logits, -1)
    expected = -(logp[0, 2, 3] + logp[0, 3, 4]) / 2
    assert torch.allclose(nll(logits, labels), expected)


def test_image_that_is_not_an_image_is_refused(tiny):
    _, proc = tiny
    with pytest.raises(PulseError, match="not a readable image"):
        Encoder(proc).encode([Example("Who?", "Bala.", b"not a png")])


def test_pickle_weights_are_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(PulseError, match="pickle"):
        load_model(tmp_path)


@pytest.mark.parametrize("rows", [[0, 1, 4], [2, 3, 5]])
def test_packed_batch_gives_the_unpacked_loss(tiny, rows):
    """Several sequences to a row, each seeing only itself: the same answer-token NLL as one
    padded row each (images in placeholder order; every image differs, so a swap would show)."""
    model, proc = tiny
    model.eval()
    examples = EXAMPLES + [Example("Who is this?", "Bala.", _png((0, 150, 0))), Example("Who?", "Merrow Bala.")]
    enc = Encoder(proc).encode(examples)
    pad = proc.tokenizer.pad_token_id
    plain, packed = collate(enc, rows, pad), pack(enc, rows, pad, row_len=200)
    assert packed["input_ids"].shape[0] == 1 < plain["input_ids"].shape[0]
    assert (packed["labels"] != IGNORE).sum() == (plain["labels"] != IGNORE).sum()
    with torch.no_grad():
        want = nll(model(**{k: v for k, v in plain.items() if k != "labels"}).logits, plain["labels"])
        got = nll(model(**{k: v for k, v in packed.items() if k != "labels"}, use_cache=False).logits,
                  packed["labels"])
        crowded = {k: v for k, v in packed.items() if k not in ("labels", "position_ids")}
        leaky = nll(model(**crowded, use_cache=False).logits, packed["labels"])  # one causal sequence
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(leaky, want, atol=1e-3)


def test_pack_keeps_rows_within_the_limit(tiny):
    _, proc = tiny
    texts = [Example("Where does Bala live?", "Merrow."), Example("Where is it?", "Bala Koron lives in Merrow."),
             Example("Who?", "Bala."), Example("Who lives in Merrow?", "Bala Koron.")]
    enc = Encoder(proc).encode(texts)
    lengths = [len(ids) for ids in enc.ids]
    pad, bos = proc.tokenizer.pad_token_id, proc.tokenizer.bos_token_id
    for row_len in (max(lengths), max(lengths) + min(lengths), sum(lengths)):
        batch = pack(enc, [0, 1, 2, 3], pad, row_len)
        assert batch["input_ids"].shape[1] <= row_len
        assert (batch["input_ids"] == bos).sum() == 4  # every sequence once
        assert (batch["input_ids"] != pad).sum() == sum(lengths)
        owners = sequence_ids(batch)[batch["input_ids"] != pad]  # one id per packed sequence
        assert sorted(torch.unique(owners, return_counts=True)[1].tolist()) == sorted(lengths)
    assert len(pack(enc, [0, 1, 2, 3], pad, sum(lengths))["input_ids"]) == 1
    assert len(pack(enc, [0, 1, 2, 3], pad, max(lengths) + min(lengths))["input_ids"]) < 4  # rows are shared


def test_output_layer_on_answers_only_gives_the_same_loss(tiny):
    model, proc = tiny
    enc = Encoder(proc).encode(EXAMPLES)
    batch = collate(enc, [0, 1], proc.tokenizer.pad_token_id)
    labels = batch.pop("labels")
    with torch.no_grad():
        full = model(**batch).logits
        with head_on_answers(model, labels):
            few = model(**batch).logits
        after = model(**batch).logits  # the hook is gone again
    n_answer = int((labels[:, 1:] != IGNORE).sum())
    assert few.shape == (n_answer, full.shape[-1])
    assert after.shape == full.shape
    assert torch.allclose(answer_nll(few, labels), nll(full, labels), atol=1e-6)


def test_shift_augmentation_moves_in_the_border_not_the_opposite_edge():
    """A shape touching the left edge, shifted right by 2 px: the two new columns repeat the left
    border; nothing of it reappears on the right edge (a roll would wrap it there)."""
    img = torch.zeros(1, 3, 8, 8)
    img[0, :, 2:5, 0:2] = 1.0  # a block touching the left edge
    cfg = TrainConfig(shift=2, brightness=0.0, noise=0.0)
    outs = [augment(img, cfg, torch.Generator().manual_seed(s)) for s in range(40)]
    assert all(o.shape == img.shape for o in outs)
    assert all(o[0, :, :, -1].abs().sum() == 0 for o in outs)  # the right edge stays background
    moved = [o for o in outs if o[0, 0, 3, 3] == 1.0]  # shifted right by 2: columns 0-3 hold the block
    assert moved and all(o[0, 0, 3, :4].eq(1.0).all() and o[0, 0, 0].abs().sum() == 0 for o in moved)
