"""The concepts scenario's data (PEBench-style people and events on the tiny world): requests of the
three kinds, and forget, scope and retain splits that partition the concept questions; retain
training facts taken only from images that show no forget concept."""

from __future__ import annotations

import pytest

from pulse_unlearn.data.sources import load_sources
from pulse_unlearn.errors import PulseError
from pulse_unlearn.evaluation.splits import SPLITS, SplitContext
from pulse_unlearn.protocol.sets import concept_sets
from pulse_unlearn.world.build import PEBENCH, build_world, world_config


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    world = build_world(world_config("tiny", n_events=4), tmp_path_factory.mktemp("concepts") / "w")
    return load_sources(world / "MLLMU-Bench", world / "MMBench" / "mmbench_dev_en.tsv", None, 0,
                        pebench=world / PEBENCH)


def _sets(src, kind, n_people=3, n_events=1, seed=0):
    c = src.concepts
    return concept_sets(kind, c.keys("person"), c.keys("event"), n_people, n_events, seed)


def _split(src, sets, name):
    return SPLITS[name].items(SplitContext(None, src, sets))


def test_the_three_kinds_forget_people_events_or_exactly_both_and_retain_the_rest(src):
    person, event, both = (_sets(src, k) for k in ("person", "event", "both"))
    assert len(person.forget) == 3 and all(k.startswith("person:") for k in person.forget)
    assert len(event.forget) == 1 and all(k.startswith("event:") for k in event.forget)
    assert set(both.forget) == set(person.forget) | set(event.forget)
    everyone = set(src.concepts.names)
    for s in (person, event, both):
        assert set(s.retain) == everyone - set(s.forget)
    assert _sets(src, "person", seed=1).forget != person.forget or _sets(src, "person", seed=2).forget != person.forget
    with pytest.raises(PulseError, match="asked for 5 people but only 4"):
        _sets(src, "event", n_events=5)
    with pytest.raises(ValueError, match="unknown concept request kind 'place'"):
        _sets(src, "place")


@pytest.mark.parametrize("kind", ["person", "event", "both"])
def test_forget_scope_and_retain_partition_the_concept_questions(src, kind):
    sets = _sets(src, kind)
    forget, scope, retain = (_split(src, sets, n) for n in ("forget", "scope", "retain"))
    gone = set(sets.forget)
    assert all(q.subject in gone for q in forget)
    assert all(q.subject not in gone and gone & set(src.concepts.shown_with(q.image)) for q in scope)
    assert all(q.subject not in gone and not gone & set(src.concepts.shown_with(q.image)) for q in retain)
    qids = [q.qid for q in forget + scope + retain]
    assert len(qids) == len(set(qids)) and set(qids) == {q.qid for q in src.concepts.questions}
    # forget: the concepts' questions on their images and by name
    assert {q.modality for q in forget} == {"multimodal", "text"}
    if kind == "person":  # scope: the events of the forget people's images, 3 questions per image
        assert len(scope) == 3 * 2 * 3 and all(q.subject.startswith("event:") for q in scope)
    if kind == "event":  # scope: the people in the forget event's images, 5 questions per image
        images = [f for f, (_, e) in src.concepts.shows.items() if e in gone]
        assert len(scope) == 5 * len(images) and all(q.subject.startswith("person:") for q in scope)


def test_retain_facts_come_from_images_without_a_forget_concept_and_forget_facts_include_the_images(src):
    sets = _sets(src, "both")
    gone = set(sets.forget)
    retain = src.away_from(src.facts_of(sets.retain), sets.forget)
    assert retain and not any(gone & set(src.concepts.shown_with(ex.image)) for ex in retain)
    dropped = len(src.facts_of(sets.retain)) - len(retain)
    assert dropped > 0  # the other concept's facts on the forget images
    forget = src.facts_of(sets.forget)
    assert any(ex.image is not None for ex in forget) and any(ex.image is None for ex in forget)


def test_people_scenarios_see_no_difference(src):
    from pulse_unlearn.protocol.sets import finetuned_sets

    sets = finetuned_sets(sorted(src.fictitious), 4, 0)
    assert _split(src, sets, "scope") == []
    assert _split(src, sets, "retain") == src.questions_of(sets.retain)
    facts = src.facts_of(sets.retain)
    assert src.away_from(facts, sets.forget) == facts


def test_balanced_batches_give_every_group_the_same_share_of_each_batch():
    import math
    from collections import Counter
    from types import SimpleNamespace

    import torch

    from pulse_unlearn.data.batches import balanced_batch_indices

    # rows 0-5: people's text facts, 6-7: an event's text facts; 8-10: people's image facts, 11: the event's
    groups = ["person"] * 6 + ["event"] * 2 + ["person"] * 3 + ["event"]
    enc = SimpleNamespace(by_modality=lambda: {"text": list(range(8)), "multimodal": list(range(8, 12))})
    batches = balanced_batch_indices(enc, groups, 4, torch.Generator().manual_seed(0))
    text = [b for b in batches if b[0] < 8]
    image = [b for b in batches if b[0] >= 8]
    assert len(text) == math.ceil(6 / 2) and len(image) == math.ceil(3 / 2)
    for b in batches:
        assert Counter(groups[i] for i in b) == {"person": 2, "event": 2}
        assert all((i < 8) == (b[0] < 8) for i in b)  # one modality per batch
    people = Counter(i for b in text for i in b if groups[i] == "person")
    assert set(people) == set(range(6)) and set(people.values()) == {1}  # the largest group: each row once
    assert Counter(i for b in text for i in b if groups[i] == "event") == {6: 3, 7: 3}  # cycled
    assert Counter(i for b in image for i in b if groups[i] == "event") == {11: 4}
    assert batches == balanced_batch_indices(enc, groups, 4, torch.Generator().manual_seed(0))
    one = balanced_batch_indices(enc, ["person"] * 12, 4, torch.Generator().manual_seed(0))
    assert sorted(i for b in one for i in b) == list(range(12))  # one group: every row once
