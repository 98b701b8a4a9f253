"""Scoring: prefix sharing gives the values of one full pass per sequence, for less compute."""

from __future__ import annotations

import pytest
import torch

from pulse_unlearn.data.batches import Encoder
from pulse_unlearn.data.mllmu import load_people
from pulse_unlearn.metrics.scoring import Scorer, _common_prefix
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
    from pulse_unlearn.metrics.generate import parse_letter

    abcd = list("ABCD")
    assert parse_letter("B", abcd) == "B"
    assert parse_letter(" (C) Paris", abcd) == "C"
    assert parse_letter("Answer: D.", abcd) == "D"
    assert parse_letter("Based on it, A", abcd) == "A"  # "Based" is a word, not a letter
    assert parse_letter("none", abcd) == ""
    assert parse_letter("D", list("ABC")) == ""  # not an option of this question


def test_generate_scoring_reads_the_generated_letter(setup):
    """With the letter A forced at every step, generation answers A: accuracy = share of A answers."""
    from pulse_unlearn.metrics.generate import GenerateScorer
    from pulse_unlearn.metrics.scoring import accuracy, letter_token_ids

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
