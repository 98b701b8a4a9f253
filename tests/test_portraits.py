"""Portraits must be reproducible and tell people apart, or unlearning scores mean nothing."""

import io
from itertools import combinations

import numpy as np
import pytest
from PIL import Image

from pulse_unlearn.world.portraits import (FEATURES, VARIANT_KINDS, Face, _parity_codes, draw_faces,
                                           features_of, png_bytes, render, variant)


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def test_same_seed_same_bytes():
    def run(seed):
        rng = np.random.default_rng(seed)
        faces = draw_faces(20, rng)
        out = [png_bytes(render(f)) for f in faces]
        out += [png_bytes(variant(render(faces[0]), rng, k)) for k in VARIANT_KINDS]
        return faces, out

    assert run(7) == run(7)
    assert run(7)[0] != run(8)[0]


def test_faces_differ_in_two_features_and_in_pixels():
    faces = draw_faces(120, np.random.default_rng(0))
    assert len(set(faces)) == 120
    for a, b in combinations(faces, 2):
        assert sum(x != y for x, y in zip(features_of(a).values(), features_of(b).values())) >= 2
    images = {png_bytes(render(f)) for f in faces}
    assert len(images) == len(faces)


def test_many_faces_quickly_and_impossible_n_raises():
    assert len(set(draw_faces(600, np.random.default_rng(1)))) == 600
    capacity = np.prod([len(v) for v in FEATURES.values()]) // max(len(v) for v in FEATURES.values())
    with pytest.raises(ValueError):
        draw_faces(int(capacity) + 1, np.random.default_rng(0))
    with pytest.raises(ValueError):
        draw_faces(-1, np.random.default_rng(0))
    assert draw_faces(0, np.random.default_rng(0)) == []


def test_parity_fallback_keeps_distance_two():
    sizes = np.array([len(v) for v in FEATURES.values()])
    codes = _parity_codes(800, sizes, np.random.default_rng(0))
    dist = (codes[:, None, :] != codes[None, :, :]).sum(axis=2)
    np.fill_diagonal(dist, 2)
    assert dist.min() >= 2 and (codes < sizes).all() and (codes >= 0).all()


def test_every_feature_value_is_drawable():
    faces = draw_faces(300, np.random.default_rng(2))
    for name, values in FEATURES.items():
        assert {features_of(f)[name] for f in faces} == set(values)
    with pytest.raises(ValueError):
        Face("plaid", "round", "pale", "black", "short", "blue", "none")


@pytest.mark.parametrize("size", [32, 64])
def test_render_size_and_layout(size):
    face = Face("blue", "round", "pale", "black", "short", "brown", "glasses")
    img = render(face, size)
    assert img.mode == "RGB" and img.size == (size, size)
    x = _pixels(img)
    background = np.array([60, 100, 225])
    assert (x[0, 0] == background).all()
    # The face covers a large central block: most central pixels are not background.
    c = x[size // 4: 3 * size // 4, size // 4: 3 * size // 4]
    assert (np.abs(c - background).sum(axis=2) > 0).mean() > 0.9


def test_features_are_visible():
    base = Face("green", "round", "tan", "brown", "short", "blue", "none")
    ref = _pixels(render(base))
    for name, values in FEATURES.items():
        for v in values:
            other = Face(**{**features_of(base), name: v})
            if other != base:
                assert (_pixels(render(other)) != ref).any(), (name, v)


@pytest.mark.parametrize("kind", VARIANT_KINDS)
def test_variants_change_pixels_keep_size(kind):
    rng = np.random.default_rng(3)
    for face in draw_faces(10, rng):
        img = render(face)
        out = variant(img, rng, kind)
        assert out.size == img.size and out.mode == "RGB"
        a, b = _pixels(img), _pixels(out)
        assert (a != b).any()
        if kind == "shift":  # a pure translation by 1-3 px: the interior matches a shifted copy
            assert any((b[3:-3, 3:-3] == a[3 - dy:a.shape[0] - 3 - dy, 3 - dx:a.shape[1] - 3 - dx]).all()
                       for dx in range(-3, 4) for dy in range(-3, 4) if (dx, dy) != (0, 0))
        else:  # still the same picture, just a little off
            assert np.abs(a - b).mean() < 25


def test_unknown_variant_raises():
    with pytest.raises(ValueError):
        variant(render(draw_faces(1, np.random.default_rng(0))[0]), np.random.default_rng(0), "blur")


def test_png_round_trip():
    img = render(draw_faces(1, np.random.default_rng(4))[0])
    data = png_bytes(img)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (_pixels(Image.open(io.BytesIO(data))) == _pixels(img)).all()
    assert png_bytes(img.copy()) == data
