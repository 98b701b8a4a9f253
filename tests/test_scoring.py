"""Scoring: prefix sharing gives the values of one full pass per sequence, for less compute."""

from __future__ import annotations

import pytest
import torch

from pulse_unlearn.data.batches import Encoder, collate
from pulse_unlearn.data.mllmu import load_people
from pulse_unlearn.methods.losses import sequence_logprobs
from pulse_unlearn.evaluation.scorers import Scorer, _common_prefix
from pulse_unlearn.models.load import load_model


@pytest.fixture(scope="module")
def setup(tiny_models):
    model, proc = load_model(tiny_models["finetuned"])
    people = load_people(tiny_models["world"] / "MLLMU-Bench", "Full_Set")
    return model, Encoder(proc), [q for p in people[:8] for q in p.questions]


@pytest.mark.parametrize("scoring", ["logits", "likelihood"])
def test_prefix_sharing_matches_full_passes(setup, scoring):
    model, encoder, questions = setup
    full = Scorer(encoder, questions, scoring, batch_size=16, share_prefix=False)
    shared = Scorer(encoder, questions, scoring, batch_size=16, share_prefix=True)
    assert shared.shared and not full.shared  # something was shared
    a, b = full(model), shared(model)
    assert [p.predicted for p in a] == [p.predicted for p in b]
    for pa, pb in zip(a, b):
        assert pa.scores == pytest.approx(pb.scores, abs=1e-4)
    assert shared.computed_tokens < full.computed_tokens


@pytest.mark.parametrize("scoring", ["logits", "likelihood"])
@pytest.mark.parametrize("multimodal", [True, False])
def test_values_are_read_from_the_full_logits(setup, scoring, multimodal):
    """The scorer's values are read from one plain forward pass: the letters' logits at the answer
    position, the answer's mean log-probability."""
    model, encoder, questions = setup
    questions = [q for q in questions if (q.image is not None) == multimodal][:4]
    scorer = Scorer(encoder, questions, scoring, batch_size=64, share_prefix=False)
    preds = scorer(model)
    batch = collate(scorer.enc, list(range(len(scorer.enc))), encoder.tokenizer.pad_token_id)
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch).logits
    if scoring == "logits":
        expected = [{k: logits[i, scorer.enc.prompt_len[i] - 1, scorer.token_ids[k]].item() for k in q.options}
                    for i, q in enumerate(questions)]
    else:
        total, n = sequence_logprobs(logits, labels)
        expected = [{} for _ in questions]
        for row, (qi, letter) in enumerate(scorer.owners):
            expected[qi][letter] = (total[row] / n[row]).item()
    for p, e in zip(preds, expected):
        assert p.scores == pytest.approx(e, abs=1e-5)


def test_every_row_is_planned_once(setup):
    _, encoder, questions = setup
    scorer = Scorer(encoder, questions, "likelihood", batch_size=7)
    rows = [i for b in scorer.plain for i in b] + [i for g in scorer.shared for _, r in g for i in r]
    assert sorted(rows) == list(range(len(scorer.enc)))
    for groups in scorer.shared:
        assert sum(len(r) for _, r in groups) <= 7
        for n, r in groups:  # the prefix stops before every row's answer position
            assert all(n <= scorer.enc.prompt_len[i] - 1 for i in r)
            assert len({tuple(scorer.enc.ids[i][:n]) for i in r}) == 1


def test_common_prefix():
    assert _common_prefix([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert _common_prefix([[5], [6]]) == 0
    assert _common_prefix([[1, 2], [1, 2]]) == 2


def test_shared_pass_uses_the_cache(setup):
    """A model that ignores the cache would read the suffixes without their prefix: values differ."""
    model, encoder, questions = setup
    scorer = Scorer(encoder, questions, "logits", batch_size=16)
    ref = [p.scores for p in scorer(model)]

    class Forgetful(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, past_key_values=None, attention_mask=None, **kw):
            if past_key_values is not None:
                attention_mask = attention_mask[:, -kw["input_ids"].shape[1]:]
                return self.inner(attention_mask=attention_mask, **kw)
            return self.inner(attention_mask=attention_mask, **kw)

    bad = [p.scores for p in scorer(Forgetful(model))]
    assert any(abs(bad[i][k] - ref[i][k]) > 1e-3 for i in range(len(ref)) for k in ref[i])


def test_parse_letter():
    from pulse_unlearn.evaluation.generation import parse_letter

    abcd = list("ABCD")
    assert parse_letter("B", abcd) == "B"
    assert parse_letter(" (C) Paris", abcd) == "C"
    assert parse_letter("Answer: D.", abcd) == "D"
    assert parse_letter("Based on it, A", abcd) == "A"  # "Based" is a word, not a letter
    assert parse_letter("none", abcd) == ""
    assert parse_letter("D", list("ABC")) == ""  # not an option of this question


def test_generate_scoring_reads_the_generated_letter(setup):
    """With the letter A forced at every step, generation answers A: accuracy = share of A answers."""
    from pulse_unlearn.evaluation.generation import GenerateScorer
    from pulse_unlearn.evaluation.scorers import accuracy, letter_token_ids

    model, encoder, questions = setup
    token_a = letter_token_ids(encoder, ["A"])["A"]

    def force_a(module, inputs, output):
        output[..., token_a] += 1000.0
        return output

    handle = model.lm_head.register_forward_hook(force_a)
    try:
        scorer = GenerateScorer(encoder, questions[:12], max_new_tokens=3)
        preds = scorer(model)
    finally:
        handle.remove()
    assert all(r.strip().startswith("A") for r in scorer.replies)
    assert [p.predicted for p in preds] == ["A"] * 12
    assert accuracy(preds)["all"][1] == pytest.approx(sum(q.answer == "A" for q in questions[:12]) / 12)


# --- generation metrics (scoring=mllmu), against values worked out by hand ----------------------

def test_rouge_1_2_l_by_hand():
    """truth "the cat sat on the mat", reply "the cat sat on a mat" (6 tokens each): 5 shared unigrams
    (one "the" only), 3 shared bigrams of 5, longest common subsequence 5."""
    from pulse_unlearn.evaluation.generation import rouge

    r = rouge("the cat sat on a mat", "the cat sat on the mat")
    assert r == pytest.approx({"rouge1": 5 / 6, "rouge2": 3 / 5, "rougeL": 5 / 6})
    assert rouge("The cats are sitting", "the cat is sitting")["rouge1"] == pytest.approx(3 / 4)  # stemmed


def test_bleu_by_hand():
    """Modified n-gram precisions 5/6, 3/5, 2/4, 1/3 and equal lengths (no brevity penalty):
    BLEU = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4). A 2-word reply to a 3-word truth has no 3- or 4-grams:
    smoothing counts 0.1 of 1 for each, and the brevity penalty is exp(1 - 3/2)."""
    import math

    from pulse_unlearn.evaluation.generation import bleu, generation_metrics

    assert bleu("the cat sat on a mat", "the cat sat on the mat") == pytest.approx((1 / 12) ** 0.25)
    assert bleu("the cat", "the cat sat") == pytest.approx(math.exp(-0.5) * (1 * 1 * 0.1 * 0.1) ** 0.25)
    assert bleu("a dog", "the cat sat") == 0.0 and bleu("", "the cat") == 0.0  # no word in common
    assert bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(1.0)
    assert list(generation_metrics("x", "y")) == ["rouge1", "rouge2", "rougeL", "bleu"]


def test_summary_rows_average_each_generation_metric():
    from pulse_unlearn.evaluation.generation import OpenPrediction
    from pulse_unlearn.evaluation.summary import summary_rows

    def item(pid, modality, r1, bleu):
        return OpenPrediction(f"{pid}/generation/0", pid, modality, "generation", "x", "y", r1 / 2,
                              {"rouge1": r1, "rouge2": 0.0, "rougeL": r1 / 2, "bleu": bleu})

    rows = summary_rows({"forget_generation": [item("a", "multimodal", 0.5, 0.2), item("b", "text", 1.0, 0.0)],
                         "forget_cloze": [OpenPrediction("a/cloze/0", "a", "text", "cloze", "x", "x", 1.0)]},
                        (("a", "b"),), step=1)
    by = {(r["split"], r["modality"]): r for r in rows}
    assert by[("forget_generation", "all")] == {"step": 1, "request": "all", "split": "forget_generation",
                                              "category": "all", "modality": "all", "n": 2, "accuracy": 0.375,
                                              "rouge1": 0.75, "rouge2": 0.0, "rougeL": 0.375, "bleu": 0.1,
                                              "ci_low": 0.25, "ci_high": 0.5}  # two people: 0.25 and 0.5
    assert by[("forget_generation", "multimodal")]["bleu"] == 0.2
    assert "bleu" not in by[("forget_cloze", "all")]  # cloze rows leave the metric columns empty
