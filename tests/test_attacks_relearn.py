"""Relearning attacks: the people drawn by hand, never training on a scored person, the model
handed back bit for bit, the loss falling, and attacks.csv rows in a real (tiny) run."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from processes import rows

from pulse_unlearn.evaluation.attacks import MIN_GAP, AttackContext, make_attack
from pulse_unlearn.evaluation.attacks import relearn as relearn_module
from pulse_unlearn.evaluation.attacks.relearn import retain_facts, split_people
from pulse_unlearn.records import Example

SPLITS = {"finetune_people": 10, "forget": 4, "requests": 2, "probe_threshold": 0.4, "pretrained_forget": 3,
          "pretrained_retain": 3}


def test_people_split_by_hand():
    five = ["e", "d", "c", "b", "a"]
    trained, held = split_people(five, 0.2, 0, 0)  # round(0.2 x 5) = 1
    assert len(trained) == 1 and len(held) == 4 and not set(trained) & set(held)
    assert sorted(trained + held) == sorted(five) and held == sorted(held)
    assert split_people(list(reversed(five)), 0.2, 0, 0) == (trained, held)  # order of the IDs does not matter
    assert [len(split_people(five, s, 0, 0)[0]) for s in (0.01, 0.3, 0.5, 0.99)] == [1, 2, 3, 4]  # 1..n-1
    assert len(split_people(list("abcdefghij"), 0.25, 0, 0)[0]) == 3  # 2.5 rounds up
    draws = {tuple(split_people(five, 0.2, seed, extra)[0]) for seed in range(4) for extra in range(4)}
    assert len(draws) > 1  # the run seed and the attack's seed both reach the draw


class _Src:
    def __init__(self, facts):
        self.facts = facts

    def facts_of(self, ids):
        return [ex for pid in ids for ex in self.facts[pid]]

    def away_from(self, items, forget):  # as Sources': an image named after a forget concept shows it
        return [it for it in items if it.image not in set(forget)]


def test_retain_facts_cut_to_the_count_in_draw_order():
    facts = {pid: [Example(f"{pid}{i}?", "x") for i in range(n)] for pid, n in (("r1", 2), ("r2", 3), ("r3", 4))}
    src = _Src(facts)
    got = retain_facts(src, ["r1", "r2", "r3"], 4, 0, 0)
    assert len(got) == 4
    people = [ex.prompt[:2] for ex in got]
    # whole people in one order, the last one cut: a prefix of the concatenation in draw order
    order = list(dict.fromkeys(people))
    assert got == src.facts_of(order)[:4]
    assert len(retain_facts(src, ["r1", "r2", "r3"], 100, 0, 0)) == 9  # no more than there are
    assert retain_facts(_Src({**facts, "r4": []}), ["r4", "r2"], 2, 0, 0) == facts["r2"][:2]  # r4 has none
    # a retained concept's facts on an image that shows a forget concept are left out
    shared = {"r1": [Example("a?", "x", "f1"), Example("b?", "x", "r1"), Example("c?", "x")]}
    assert [ex.prompt for ex in retain_facts(_Src(shared), ["r1"], 3, 0, 0, ["f1"])] == ["b?", "c?"]


def test_relearn_does_not_apply_without_facts_to_train_on():
    from types import SimpleNamespace

    def ctx(forget, retain, facts):
        e = SimpleNamespace(sets=SimpleNamespace(forget=forget, retain=retain), src=_Src(facts),
                            cfg=SimpleNamespace(seed=0))
        return AttackContext(e, {})

    has = {pid: [Example(f"{pid}?", "x")] for pid in "abcd"}
    relearn, benign = make_attack({"name": "relearn"}), make_attack({"name": "relearn_retain"})
    assert relearn.does_not_apply(ctx(("a", "b"), ("c",), has)) is None
    assert "2 or more forget people" in relearn.does_not_apply(ctx(("a",), ("c",), has))
    assert "no training facts" in relearn.does_not_apply(ctx(("a", "b"), ("c",), {"c": has["c"]}))
    assert benign.does_not_apply(ctx(("a", "b"), ("c", "d"), has)) is None
    assert "no retain person" in benign.does_not_apply(ctx(("a", "b"), ("c", "d"), {"a": has["a"], "b": has["b"]}))


@pytest.fixture(scope="module")
def world(tiny_models):
    """The tiny world's finetuned scenario: its evaluator and starting model."""
    from pulse_unlearn.protocol.catalog import units, validate
    from pulse_unlearn.data.batches import Encoder
    from pulse_unlearn.data.sources import load_sources
    from pulse_unlearn.evaluation.evaluator import Evaluator
    from pulse_unlearn.models.load import load_model
    from pulse_unlearn.protocol import scenarios

    w = tiny_models["world"]
    cfg = validate({"name": "r", "model": {"source": "world", "preset": "tiny"}, "splits": SPLITS,
                    "grid": [{"scenarios": ["finetuned"], "methods": ["ga"], "updates": ["llm"]}],
                    "unlearn": {"lr": 3e-3, "batch_size": 16, "lora": {"rank": 8, "alpha": 16}},
                    "scoring": "likelihood"}, "r")
    src = load_sources(w / "MLLMU-Bench", w / "MMBench" / "mmbench_dev_en.tsv", 8, 0)
    sets = scenarios.plan(cfg, units(cfg), src, w / "MLLMU-Bench").sets["finetuned"]
    model, processor = load_model(tiny_models["finetuned"], dtype="float32", device="cpu")
    return Evaluator(Encoder(processor), cfg, src, sets), model


@pytest.fixture(scope="module")
def unlearned(world):
    from pulse_unlearn.methods.registry import get_method
    from pulse_unlearn.methods.unlearn import unlearn

    evaluator, model = world
    src, sets = evaluator.src, evaluator.sets
    model, _ = unlearn(copy.deepcopy(model), evaluator.encoder, get_method("ga")(), src.facts_of(sets.forget),
                       src.facts_of(sets.retain), "llm", evaluator.cfg.unlearn)
    return model


def _attack(name, model, evaluator, monkeypatch, **params):
    """The attack's outcome and the examples it trained on."""
    seen = []
    real = relearn_module.train

    def spy(m, encoder, examples, cfg, desc="train", **kwargs):
        seen.append(list(examples))
        return real(m, encoder, examples, cfg, desc, **kwargs)

    monkeypatch.setattr(relearn_module, "train", spy)
    attack = make_attack({"name": name, **params})
    ctx = AttackContext(evaluator, {"forget": evaluator.scorers["forget"](model)})
    outcomes = attack(model, ctx)
    return attack, ctx, outcomes, seen[0]


def test_relearn_never_trains_on_a_person_it_scores(world, unlearned, monkeypatch):
    evaluator, _ = world
    src, sets = evaluator.src, evaluator.sets
    attack, ctx, (outcome,), examples = _attack("relearn", unlearned, evaluator, monkeypatch, steps=3)
    trained, held = attack.people(ctx)
    assert len(sets.forget) == 4 and len(trained) == 1 and sorted(trained + held) == sorted(sets.forget)
    scored = {p.subject for p in outcome.preds}
    assert scored == set(held) and not scored & set(trained)
    # every trained fact is a trained person's, none a scored person's (the same objects as the data's)
    assert examples == src.facts_of(trained)
    held_facts = {id(ex) for ex in src.facts_of(held)}
    assert not any(id(ex) in held_facts for ex in examples)
    assert (outcome.setting, outcome.split) == ("share=0.2,steps=3", "forget")
    assert len(outcome.preds) == len([q for q in src.questions_of(held)])

    # relearn_retain: the same held-out people scored, as many facts, all of retain people
    r_attack, r_ctx, (r_outcome,), r_examples = _attack("relearn_retain", unlearned, evaluator, monkeypatch, steps=3)
    assert r_attack.people(r_ctx) == (trained, held)
    assert {p.subject for p in r_outcome.preds} == set(held)
    retain_facts_ids = {id(ex) for ex in src.facts_of(sets.retain)}
    assert len(r_examples) == len(examples) and all(id(ex) in retain_facts_ids for ex in r_examples)


def test_the_model_handed_in_is_bitwise_unchanged(world, unlearned, monkeypatch):
    evaluator, _ = world
    before = {k: v.clone() for k, v in unlearned.state_dict().items()}
    flags = {n: p.requires_grad for n, p in unlearned.named_parameters()}
    modules = [name for name, _ in unlearned.named_modules()]
    rng = torch.get_rng_state()
    plain = evaluator.scorers["forget"](unlearned)
    attack, _, _, _ = _attack("relearn", unlearned, evaluator, monkeypatch, steps=3)
    after = unlearned.state_dict()
    assert set(after) == set(before) and all(torch.equal(after[k], before[k]) for k in before)
    assert {n: p.requires_grad for n, p in unlearned.named_parameters()} == flags
    assert [name for name, _ in unlearned.named_modules()] == modules  # no LoRA layer left behind
    assert not unlearned.training and torch.equal(torch.get_rng_state(), rng)
    again = evaluator.scorers["forget"](unlearned)
    assert [p.scores for p in again] == [p.scores for p in plain]
    assert len(attack.losses) == 3


def test_relearning_lowers_the_training_loss(world, unlearned, monkeypatch):
    """Relearning fits its facts: the loss of the last steps is well below that of the first.
    (The tiny world's multiple-choice accuracy sits near chance, so it cannot show recovery.)"""
    evaluator, _ = world
    for name in ("relearn", "relearn_retain"):
        attack, _, _, _ = _attack(name, unlearned, evaluator, monkeypatch, steps=12)
        first, last = sum(attack.losses[:3]) / 3, sum(attack.losses[-3:]) / 3
        assert last < 0.85 * first, (name, attack.losses)


# --- a tiny run ---

def test_a_tiny_run_writes_relearn_rows_with_recovery(attacked_run):
    """shared_runs.ATTACKED: the relearning attacks with the others, after each unit's last operation."""
    out = attacked_run
    att = [r for r in rows(out / "attacks.csv") if r["attack"] in ("relearn", "relearn_retain")]
    assert {(r["scenario"], r["operation"]) for r in att} == {("finetuned", "0"), ("finetuned", "1"),
                                                             ("sequential", "0"), ("sequential", "3")}
    assert {(r["attack"], r["setting"]) for r in att} == {("relearn", "share=0.2,steps=5"),
                                                         ("relearn_retain", "share=0.5,steps=5")}
    preds = rows(out / "predictions.csv")
    sets = json.loads((out / "sets.json").read_text())
    for r in att:
        # unlearned: the plain accuracy on exactly the held-out people (run seed 0, attack seed 0)
        forget = [f"fictitious:{pid}" for request in sets[r["scenario"]]["forget_requests"] for pid in request]
        held = split_people(forget, 0.2 if r["attack"] == "relearn" else 0.5, 0, 0)[1]
        same = [int(p["correct"]) for p in preds if (p["scenario"], p["step"], p["split"]) == (
            r["scenario"], r["operation"], "forget") and f"fictitious:{p['subject']}" in held
            and r["modality"] in ("all", p["modality"])]
        assert len(same) == int(r["n"]) and float(r["unlearned"]) == pytest.approx(sum(same) / len(same), abs=1e-6)
        assert r["split"] == "forget" and r["metric"] == "accuracy"
        # 1 of 3 forget people trained on (relearn: 0.2 x 3 rounds to 1), 2 of 3 (relearn_retain:
        # 1.5 rounds up): the others scored
        people = 2 if r["attack"] == "relearn" else 1
        per_person = {"all": 10, "multimodal": 5, "text": 5}[r["modality"]]
        assert int(r["n"]) == people * per_person, r
        base = next(b for b in att if b["operation"] == "0" and b["scenario"] == r["scenario"]
                    and (b["attack"], b["modality"]) == (r["attack"], r["modality"]))
        assert r["start"] == base["value"]
        if r["operation"] == "0":
            assert r["recovery"] == ""
            continue
        value, un, start = float(r["value"]), float(r["unlearned"]), float(r["start"])
        if start - un > MIN_GAP:
            assert float(r["recovery"]) == pytest.approx((value - un) / (start - un), abs=1e-5)

