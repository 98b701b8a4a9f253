"""simnpo_replay and npo_replay (SimNPO's or NPO's forget term, anchored by an NLL or a KL on
retain and a KL on held-out general items) and their replay data: the losses against hand
computations, the draw that holds items out of evaluation, and replay batches that leave the
forget and retain batches as they were."""

from __future__ import annotations

import math

import pytest
import torch

from pulse_unlearn.data.sources import hold_out
from pulse_unlearn.errors import PulseError
from loss_terms import joint_loss

from pulse_unlearn.methods import losses
from pulse_unlearn.methods.registry import Step, make_method
from pulse_unlearn.records import Question

I = losses.IGNORE


def probs(rows):
    return torch.log(torch.tensor(rows, dtype=torch.float32))


def kl(p, q):
    return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))


# One sequence per batch, length 3, vocabulary 2; the marker token (input_ids[0, 0]) says which batch.
FORGET = {"input_ids": torch.full((1, 3), 0), "labels": torch.tensor([[I, 0, 1]])}  # answer tokens at 1, 2
RETAIN = {"input_ids": torch.full((1, 3), 1), "labels": torch.tensor([[I, I, 1]])}  # answer token at 2
REPLAY = {"input_ids": torch.full((1, 3), 2), "labels": torch.tensor([[I, 0, 0]])}
CUR = {0: [[0.5, 0.5], [0.8, 0.2], [0.5, 0.5]], 1: [[0.5, 0.5], [0.3, 0.7], [0.5, 0.5]],
       2: [[0.5, 0.5], [0.6, 0.4], [0.5, 0.5]]}
REF = {0: [[0.25, 0.75], [0.5, 0.5], [0.5, 0.5]], 1: [[0.5, 0.5], [0.6, 0.4], [0.5, 0.5]],
       2: [[0.9, 0.1], [0.9, 0.1], [0.5, 0.5]]}


def _step(weight=None):
    def pick(table, b):
        logits = probs([table[int(b["input_ids"][0, 0])]])
        return logits if weight is None else logits * weight
    return Step(forget=FORGET, retain=RETAIN, replay=REPLAY, forward=lambda b: pick(CUR, b),
                reference=lambda b: pick(REF, b).detach())


KL_RETAIN = kl(REF[1][1], CUR[1][1])  # position 1 predicts the retain answer token
NLL_RETAIN = -math.log(0.7)
KL_REPLAY = (kl(REF[2][0], CUR[2][0]) + kl(REF[2][1], CUR[2][1])) / 2


@pytest.mark.parametrize(("retain", "retain_term"), [("nll", NLL_RETAIN), ("kl", KL_RETAIN)])
def test_npo_replay_loss_by_hand(retain, retain_term):
    beta, alpha, rho = 0.5, 2.0, 3.0
    # forget: position 0 predicts token 0, position 1 token 1
    logp, ref_logp = math.log(0.5) + math.log(0.2), math.log(0.25) + math.log(0.5)
    npo = 2 / beta * math.log(1 + math.exp(beta * (logp - ref_logp)))
    method = make_method("npo_replay", beta=beta, alpha=alpha, rho=rho, retain=retain)
    assert method.forget_loss(_step()).item() == pytest.approx(npo, abs=1e-6)
    assert method.retain_loss(_step()).item() == pytest.approx(alpha * retain_term, abs=1e-6)
    assert method.replay_loss(_step()).item() == pytest.approx(rho * KL_REPLAY, abs=1e-6)
    assert joint_loss(method, _step()).item() == pytest.approx(npo + alpha * retain_term + rho * KL_REPLAY, abs=1e-6)
    assert joint_loss(make_method("npo_replay", beta=beta, rho=0.0, retain=retain), _step()).item() == pytest.approx(
        npo + retain_term, abs=1e-6)


@pytest.mark.parametrize(("retain", "retain_term"), [("nll", NLL_RETAIN), ("kl", KL_RETAIN)])
def test_simnpo_replay_loss_by_hand(retain, retain_term):
    beta, delta, alpha, rho = 2.0, 0.5, 0.5, 4.0
    avg_nll = -(math.log(0.5) + math.log(0.2)) / 2  # the forget answer's two tokens, length-normalised
    simnpo = -2 / beta * math.log(1 / (1 + math.exp(-beta * (avg_nll - delta))))
    method = make_method("simnpo_replay", beta=beta, delta=delta, alpha=alpha, rho=rho, retain=retain)
    assert method.forget_loss(_step()).item() == pytest.approx(simnpo, abs=1e-6)
    assert joint_loss(method, _step()).item() == pytest.approx(simnpo + alpha * retain_term + rho * KL_REPLAY, abs=1e-6)


def test_simnpo_replay_defaults_to_the_retain_nll_and_is_simnpo_plus_the_replay_kl():
    assert make_method("simnpo_replay").retain == "nll"
    beta, delta, alpha = 2.0, 0.5, 0.5
    simnpo = joint_loss(make_method("simnpo", beta=beta, delta=delta, alpha=alpha), _step()).item()
    ours = joint_loss(make_method("simnpo_replay", beta=beta, delta=delta, alpha=alpha, rho=3.0), _step()).item()
    assert ours == pytest.approx(simnpo + 3.0 * KL_REPLAY, abs=1e-6)
    with pytest.raises(ValueError, match="retain: must be 'nll' or 'kl'"):
        make_method("simnpo_replay", retain="mse")


@pytest.mark.parametrize("retain", ["nll", "kl"])
@pytest.mark.parametrize("name", ["npo_replay", "simnpo_replay"])
def test_the_three_terms_backward_one_by_one_give_the_joint_gradient(name, retain):
    from pulse_unlearn.methods.unlearn import _backward

    w = torch.tensor(1.3, requires_grad=True)
    method = make_method(name, rho=2.0, retain=retain)
    joint_loss(method, _step(w)).backward()
    joint, w.grad = w.grad.clone(), None
    total = sum(_backward(t, _step(w)) for t in (method.forget_loss, method.retain_loss, method.replay_loss))
    assert joint.abs() > 0 and torch.allclose(w.grad, joint, atol=1e-6)
    assert total == pytest.approx(joint_loss(method, _step(w)).item(), abs=1e-6)


def _questions(n):
    return [Question(str(i), str(i), "text", f"q{i}", {"A": "x", "B": "y"}, "A") for i in range(n)]


def test_hold_out_draws_a_seeded_disjoint_part_in_file_order():
    general = _questions(10)
    rest, held = hold_out(general, 3, seed=0)
    assert len(held) == 3 and len(rest) == 7
    assert {q.qid for q in rest} | {q.qid for q in held} == {q.qid for q in general}
    assert not {q.qid for q in rest} & {q.qid for q in held}
    assert [q.qid for q in held] == sorted((q.qid for q in held), key=int)  # file order
    assert hold_out(general, 3, seed=0) == (rest, held)  # the same draw again
    assert {q.qid for q in hold_out(general, 3, seed=1)[1]} != {q.qid for q in held} or \
        {q.qid for q in hold_out(general, 3, seed=2)[1]} != {q.qid for q in held}
    assert hold_out(general, 0, seed=0) == (general, [])
    with pytest.raises(PulseError, match="data.replay: 10 items would leave none"):
        hold_out(general, 10, seed=0)


def test_replay_items_become_multiple_choice_examples_with_the_letter_as_answer(tiny_models):
    from pulse_unlearn.data.sources import load_sources
    from pulse_unlearn.records import mc_prompt

    w = tiny_models["world"]
    src = load_sources(w / "MLLMU-Bench", w / "MMBench" / "mmbench_dev_en.tsv", None, 0, replay=8)
    assert len(src.replay) == 8 and len(src.general) == 40 - 8
    ex = src.replay_examples()
    assert [e.answer for e in ex] == [q.answer for q in src.replay]
    assert ex[0].prompt == mc_prompt(src.replay[0].question, src.replay[0].options) and ex[0].image is not None
    # the evaluated subset is drawn from what is left
    sub = load_sources(w / "MLLMU-Bench", w / "MMBench" / "mmbench_dev_en.tsv", 10, 0, replay=8)
    assert len(sub.general) == 10 and not {q.qid for q in sub.general} & {q.qid for q in sub.replay}


def test_replay_batches_leave_the_forget_and_retain_batches_as_they_were(tiny_models):
    from pulse_unlearn.data.batches import Encoder, batch_indices
    from pulse_unlearn.data.sources import load_sources
    from pulse_unlearn.methods.unlearn import _batch_pairs
    from pulse_unlearn.models.load import load_processor

    w = tiny_models["world"]
    src = load_sources(w / "MLLMU-Bench", w / "MMBench" / "mmbench_dev_en.tsv", None, 0, replay=8)
    people = sorted(src.fictitious)
    enc = Encoder(load_processor(tiny_models["finetuned"]))
    f, r, p = (enc.encode(x) for x in (src.facts_of(people[:1]), src.facts_of(people[1:3]), src.replay_examples()))
    order = batch_indices(f, 2, torch.Generator().manual_seed(5))

    def draw(replay):
        return list(_batch_pairs(f, r, order, 2, torch.Generator().manual_seed(0), 0, "cpu",
                                 p if replay else None, torch.Generator().manual_seed(2)))

    plain, with_replay = draw(False), draw(True)
    assert all(x[2] is None for x in plain) and all(x[2] is not None for x in with_replay)
    for (f0, r0, _), (f1, r1, p1) in zip(plain, with_replay, strict=True):
        assert all(torch.equal(f0[k], f1[k]) for k in f0) and all(torch.equal(r0[k], r1[k]) for k in r0)
        assert (p1["labels"] != I).sum(1).min() >= 1  # every replay row has its answer scored
