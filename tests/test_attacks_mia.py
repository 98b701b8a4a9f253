"""Membership inference (``mia``): AUC, zlib and Min-K% against hand-computed values, the samples'
people, when it does not apply, config checks, and its rows in a real (tiny) run."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

import pytest
import torch

from processes import rows

from pulse_unlearn.data.batches import IGNORE
from pulse_unlearn.evaluation.attacks import AttackContext, make_attack
from pulse_unlearn.evaluation.attacks.mia import (answer_token_logprobs, auc, loss_score, mink_score, never_trained,
                                                  samples, zlib_bytes, zlib_score)
from pulse_unlearn.protocol.sets import Sets
from pulse_unlearn.records import Example


def test_auc_is_half_on_one_distribution_and_one_on_separable_scores():
    same = [0.3, 0.1, 0.3, 0.7, 0.7, 0.2]
    assert auc(same, list(reversed(same))) == 0.5  # the same multiset, ties included
    assert auc([1.0, 1.0], [1.0, 1.0, 1.0]) == 0.5  # all tied: every pair counts half
    assert auc([0.6, 0.9, 0.7], [0.1, 0.5, 0.2, 0.3]) == 1.0
    assert auc([0.1, 0.5, 0.2], [0.6, 0.9]) == 0.0


def test_auc_by_hand():
    # pairs won: 0.1 -> 0, 0.4 -> 2, 0.35 -> 2, 0.8 -> 2: 6 of 4 x 2
    assert auc([0.1, 0.4, 0.35, 0.8], [0.2, 0.3]) == pytest.approx(0.75)
    # a tie counts half: 0.3 vs (0.2, 0.3): 1 + 0.5; 0.1: 0 -> 1.5 of 4
    assert auc([0.3, 0.1], [0.2, 0.3]) == pytest.approx(0.375)
    with pytest.raises(ValueError):
        auc([], [0.1])


def test_scores_by_hand():
    logps = [-0.5, -2.0, -0.1, -4.0, -1.0]
    assert loss_score(logps) == pytest.approx(-7.6 / 5)
    text = "Lisbon, Portugal"
    assert zlib_bytes(text) == len(zlib.compress(text.encode()))
    assert zlib_score(logps, text) == pytest.approx(-1.52 / zlib_bytes(text))
    assert zlib_bytes("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") < zlib_bytes("Lisbon, Portugal and more")
    assert mink_score(logps, 0.2) == -4.0  # ceil(0.2 x 5) = 1 lowest
    assert mink_score(logps, 0.4) == pytest.approx(-3.0)  # the 2 lowest: -4, -2
    assert mink_score(logps, 0.5) == pytest.approx(-7.0 / 3)  # ceil(2.5) = 3: -4, -2, -1
    assert mink_score(logps, 1.0) == pytest.approx(loss_score(logps))
    assert mink_score([-0.3, -0.2], 0.2) == -0.3  # a 2-token fact: its lowest token


def test_answer_token_logprobs_read_the_answer_positions_only():
    logits = torch.zeros(2, 4, 3)
    logits[0, 1] = torch.tensor([0.0, 0.0, 2.0])  # predicts position 2
    labels = torch.tensor([[IGNORE, IGNORE, 2, 0], [IGNORE, 1, IGNORE, IGNORE]])
    out = answer_token_logprobs(logits, labels)
    lse = torch.logsumexp(torch.tensor([0.0, 0.0, 2.0]), 0).item()
    assert len(out[0]) == 2 and out[0][0] == pytest.approx(2.0 - lse) and out[0][1] == pytest.approx(-1.0986, abs=1e-4)
    assert out[1] == [pytest.approx(-1.0986, abs=1e-4)]


def _ctx(finetune_people, forget, retain, people, population="fictitious", images=True):
    key = lambda i: f"{population}:{i}"  # noqa: E731
    facts = {key(i): [Example(f"q{j}", f"answer {i} {j}", b"png" if images and j % 2 else None) for j in range(6)]
             for i in range(people)}
    group = {key(i): None for i in range(people)}
    src = SimpleNamespace(fictitious=group if population == "fictitious" else {},
                          celebrities=group if population == "celebrity" else {}, facts=facts)
    cfg = SimpleNamespace(seed=0, model=SimpleNamespace(world_seed=0),
                          splits=SimpleNamespace(finetune_people=finetune_people))
    sets = Sets(requests=(tuple(key(i) for i in forget),), retain=tuple(key(i) for i in retain))
    return AttackContext(SimpleNamespace(cfg=cfg, src=src, sets=sets), {})


def test_members_and_non_members_are_disjoint_people_and_equal_samples():
    from pulse_unlearn.draws import finetune_people

    trained = finetune_people([f"fictitious:{i}" for i in range(10)], 6, 0)
    ctx = _ctx(6, [int(k.split(":")[1]) for k in trained[:3]], [int(k.split(":")[1]) for k in trained[3:]], 10)
    assert sorted(never_trained(ctx)) == sorted(set(f"fictitious:{i}" for i in range(10)) - set(trained))
    drawn = samples(ctx, max_items=5)
    assert set(drawn) == {"multimodal", "text"}
    for mem, non in drawn.values():
        assert len(mem) == len(non) == 5  # 3 people x 3 facts per modality, capped at 5
        assert {it.subject for it in mem} <= set(ctx.evaluator.sets.forget)
        assert not {it.subject for it in non} & set(trained)
    assert samples(ctx, 5) == drawn  # seeded


def test_does_not_apply_without_never_trained_people():
    attack = make_attack({"name": "mia"})
    assert attack.does_not_apply(_ctx(4, [0, 1], [2, 3], 6)) is None
    assert "no never-trained" in attack.does_not_apply(_ctx(6, [0, 1], [2, 3, 4, 5], 6))
    assert "celebrity" in attack.does_not_apply(_ctx(4, [0, 1], [2, 3], 6, population="celebrity"))


def test_a_reason_not_to_apply_is_said_once_per_run():
    """The runner hands every ``attacked`` call of a run the same ``said``: each attack's reason
    is logged once, not after every operation; another reason is logged too."""
    from pulse_unlearn.evaluation.attacks import attacked

    lines, said = [], set()
    everyone = _ctx(6, [0, 1], [2, 3, 4, 5], 6).evaluator
    for _ in range(3):
        assert attacked([{"name": "mia"}], None, everyone, {}, "finetuned", lines.append, said) == []
    famous = _ctx(4, [0, 1], [2, 3], 6, population="celebrity").evaluator
    for _ in range(2):
        assert attacked([{"name": "mia"}], None, famous, {}, "pretrained", lines.append, said) == []
    assert len(lines) == 2 and "no never-trained" in lines[0] and "celebrity" in lines[1], lines
    attacked([{"name": "mia"}], None, everyone, {}, "finetuned", lines.append)  # no ``said``: says it
    assert len(lines) == 3 and lines[2] == lines[0]


@pytest.fixture(scope="module")
def attack_rows(attacked_run):
    """shared_runs.ATTACKED: fine-tuned on 6 of the tiny world's 10 fictitious people, so 4 are
    never-trained non-members; mia on the one-shot (finetuned) unit only."""
    return rows(attacked_run / "attacks.csv")


def test_auc_rows_before_and_after_unlearning(attack_rows):
    rows = [r for r in attack_rows if r["attack"] == "mia"]
    assert {(r["scenario"], r["operation"]) for r in rows} == {("finetuned", "0"), ("finetuned", "1")}
    assert {r["setting"] for r in rows} == {"score=loss", "score=zlib", "score=mink"}
    assert {(r["split"], r["metric"]) for r in rows} == {("forget_facts", "auc")}
    assert {r["modality"] for r in rows} == {"multimodal", "text", "all"}
    for r in rows:
        assert 0.0 <= float(r["value"]) <= 1.0 and r["recovery"] == ""
        assert int(r["n"]) == (160 if r["modality"] == "all" else 80)  # 40 members + 40 non-members
        if r["operation"] == "1":
            (base,) = [b for b in rows if b["operation"] == "0" and (b["setting"], b["modality"]) ==
                       (r["setting"], r["modality"])]
            assert r["start"] == base["value"]
    loss = {(r["operation"], r["modality"]): float(r["value"]) for r in rows if r["setting"] == "score=loss"}
    # the tiny starting model barely learnt its forget people (loss AUC 0.52 on all, 0.58 with
    # the image); gradient ascent raises the members' loss above the never-seen people's
    assert loss["0", "all"] > 0.5 and loss["0", "multimodal"] > 0.55, loss
    assert loss["1", "all"] < loss["0", "all"] - 0.1, loss
