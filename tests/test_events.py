"""Events of the embedded world: scenes told apart at the pixel level, a person composed into a scene
with every face feature but the background kept, balanced attendance, and questions and facts
whose answers are the event's attributes in wordings that differ between evaluation and training."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from pulse_unlearn.world import events, people, portraits
from pulse_unlearn.world.portraits import png_bytes


def _outside_person(size):
    left, top, side = events.person_box(size)
    mask = np.ones((size, size), bool)
    mask[top:top + side, left:left + side] = False
    return mask


@pytest.mark.parametrize("size", [32, 64])
def test_any_two_scenes_differ_clearly_where_the_person_does_not_cover_them(size):
    mask = _outside_person(size)
    scenes = {k: np.asarray(events.render_scene(k, size), dtype=float) for k in events.KINDS}
    for a, b in itertools.combinations(events.KINDS, 2):
        assert np.abs(scenes[a] - scenes[b])[mask].mean() >= 40, (a, b)
    # the top row of 8 px patches sees the scene alone at 32 px
    assert events.person_box(32)[1] >= 8


def test_a_portrait_uses_its_background_colour_nowhere_else():
    for face in portraits.draw_faces(40, np.random.default_rng(1)):
        other = next(b for b in portraits.FEATURES["background"] if b != face.background)
        a = np.asarray(portraits.render(face, 24))
        b = np.asarray(portraits.render(replace(face, background=other), 24))
        on_background = (a == np.array(portraits.background_rgb(face), dtype=np.uint8)).all(axis=2)
        assert on_background.any()
        assert np.array_equal((a != b).any(axis=2), on_background)


def test_compose_keeps_the_person_and_shows_the_scene_around_it():
    face = portraits.draw_faces(1, np.random.default_rng(2))[0]
    size = 32
    left, top, side = events.person_box(size)
    out = np.asarray(events.compose(face, "harbour", size))
    scene = np.asarray(events.render_scene("harbour", size))
    portrait = np.asarray(portraits.render(face, side))
    person = (portrait != np.array(portraits.background_rgb(face), dtype=np.uint8)).any(axis=2)
    inside = out[top:top + side, left:left + side]
    assert np.array_equal(inside[person], portrait[person])
    assert np.array_equal(inside[~person], scene[top:top + side, left:left + side][~person])
    mask = _outside_person(size)
    assert np.array_equal(out[mask], scene[mask])


def test_two_people_in_one_scene_look_different_and_one_person_in_two_scenes_too():
    faces = portraits.draw_faces(30, np.random.default_rng(3))
    left, top, side = events.person_box(32)
    crops = [np.asarray(events.compose(f, "stage"))[top:top + side, left:left + side] for f in faces]
    for a, b in itertools.combinations(range(len(faces)), 2):
        assert not np.array_equal(crops[a], crops[b])
    assert not np.array_equal(np.asarray(events.compose(faces[0], "stage")),
                              np.asarray(events.compose(faces[0], "market")))


def test_draw_events_is_seeded_one_per_scene_with_distinct_names():
    a = events.draw_events(12, np.random.default_rng(0))
    assert a == events.draw_events(12, np.random.default_rng(0))
    assert [e.kind for e in a] == list(events.KINDS)
    assert len({e.name for e in a}) == 12 and all(e.name.startswith("the ") for e in a)
    for e in a:
        assert set(e.attributes) == set(events.ATTRIBUTES)
        assert all(e.attributes[k] in events.POOLS[k] for k in events.ATTRIBUTES)
    assert events.draw_events(12, np.random.default_rng(1)) != a
    with pytest.raises(ValueError, match="12 event scenes; cannot draw 13"):
        events.draw_events(13, np.random.default_rng(0))


@pytest.mark.parametrize(("people", "per_person"), [(100, 2), (37, 3), (5, 12), (7, 1)])
def test_attendance_is_distinct_per_person_and_balanced_across_events(people, per_person):
    evs = events.draw_events(12, np.random.default_rng(0))
    ids = [f"{i:03d}" for i in range(people)]
    att = events.attendance(ids, evs, per_person, np.random.default_rng(4))
    assert list(att) == ids
    assert all(len(set(v)) == per_person for v in att.values())
    counts = [sum(e.id in v for v in att.values()) for e in evs]
    assert sum(counts) == people * per_person and max(counts) - min(counts) <= 1
    assert att == events.attendance(ids, evs, per_person, np.random.default_rng(4))
    with pytest.raises(ValueError, match="1..12 events, not 0"):
        events.attendance(ids, evs, 0, np.random.default_rng(4))


@pytest.mark.parametrize("concept", ["person", "event"])
def test_questions_ask_for_the_attributes_by_image_or_by_name(concept):
    rng = np.random.default_rng(5)
    face = portraits.draw_faces(1, rng)[0]
    e = events.draw_events(3, rng)[1]
    who = people.draw_profiles(0, 1, rng, 2, 2)[1][0] if concept == "person" else e
    cid = who.id
    image = png_bytes(events.compose(face, e.kind))
    w = events.WORDINGS[concept]
    mm = events.questions(concept, cid, who.name, who.attributes, image, "007_E01", rng)
    text = events.questions(concept, cid, who.name, who.attributes, None, cid, rng)
    for qs, modality in ((mm, "multimodal"), (text, "text")):
        assert [q.category for q in qs] == [f"{concept}_{a}" for a in who.attributes]
        for q, attr in zip(qs, who.attributes):
            assert q.modality == modality and q.subject == cid
            assert q.options[q.answer] == who.attributes[attr]
            assert len(set(q.options.values())) == 4
            assert all(v in w.pools[attr] for v in q.options.values())
    assert all(q.image == image and w.in_image in q.question for q in mm)
    assert all(q.image is None and who.name in q.question for q in text)
    assert all(q.qid.startswith(f"007_E01/{concept}/multimodal/") for q in mm)
    assert all(q.qid.startswith(f"{cid}/{concept}/text/") for q in text)


@pytest.mark.parametrize("concept", ["person", "event"])
def test_training_facts_answer_with_the_bare_values_in_wordings_evaluation_never_uses(concept):
    rng = np.random.default_rng(6)
    e = events.draw_events(2, rng)[0]
    who = people.draw_profiles(0, 1, rng, 2, 2)[1][0] if concept == "person" else e
    image = png_bytes(events.render_scene(e.kind))
    w = events.WORDINGS[concept]
    with_image = [ex for v in range(3) for ex in events.facts(concept, who.name, who.attributes, image, rng, v)]
    by_name = [ex for v in range(3) for ex in events.facts(concept, who.name, who.attributes, None, rng, v)]
    n = len(who.attributes)
    assert len(with_image) == 3 * (1 + n) and len(by_name) == 3 * n
    assert all(ex.answer in set(who.attributes.values()) | {who.name} for ex in with_image + by_name)
    assert {ex.source for ex in with_image} == {f"{concept}_caption", f"{concept}_fact_image"}
    assert all(ex.image == image for ex in with_image) and all(ex.image is None for ex in by_name)
    assert all(who.name in ex.prompt for ex in by_name)
    eval_wordings = {t.format(**{w.placeholder: ref}) for t in w.eval_templates.values()
                     for ref in (w.in_image, who.name)}
    assert not {ex.prompt for ex in with_image + by_name} & eval_wordings
