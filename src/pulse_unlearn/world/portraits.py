"""Procedurally drawn faces: the synthetic people's portraits.

A tiny CLIP tower (patch size 8 on 32x32 images) sees only 16 patches, so every portrait is
built from a few bold, flat-coloured parts that fill the canvas: a coloured background, a
large head, hair, eyes and one accessory. Identity lives in discrete feature values, which
lets us promise that any two people differ in at least two visible ways.
"""

from __future__ import annotations

import io
from dataclasses import astuple, dataclass, fields
from math import prod

import numpy as np
from PIL import Image, ImageDraw

FEATURES: dict[str, tuple[str, ...]] = {
    "background": ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink"),
    "face_shape": ("round", "oval", "square"),
    "skin": ("pale", "tan", "brown", "dark"),
    "hair_colour": ("black", "brown", "blonde", "red", "grey", "blue"),
    "hair_style": ("short", "long", "bald", "spiky"),
    "eye_colour": ("blue", "green", "brown"),
    "accessory": ("none", "glasses", "hat", "beard"),
}

VARIANT_KINDS = ("shift", "noise", "jitter")

# Colours are far apart in hue or lightness so that 8x8 patches tell them apart.
_RGB: dict[str, dict[str, tuple[int, int, int]]] = {
    "background": {
        "red": (215, 45, 45), "orange": (245, 145, 30), "yellow": (240, 220, 60), "green": (60, 165, 65),
        "teal": (25, 150, 150), "blue": (60, 100, 225), "purple": (135, 65, 185), "pink": (240, 140, 195),
    },
    "skin": {"pale": (255, 226, 200), "tan": (228, 178, 128), "brown": (165, 108, 70), "dark": (92, 58, 40)},
    "hair_colour": {
        "black": (20, 20, 20), "brown": (115, 65, 25), "blonde": (250, 215, 100),
        "red": (195, 60, 15), "grey": (175, 175, 175), "blue": (20, 45, 150),
    },
    "eye_colour": {"blue": (30, 110, 240), "green": (30, 170, 50), "brown": (100, 50, 15)},
}
_OUTLINE = (30, 20, 15)
_SHIRT = (250, 250, 250)
_HAT = (35, 35, 45)
_HAT_BAND = (230, 30, 30)
_MOUTH = (150, 30, 40)


@dataclass(frozen=True)
class Face:
    """One person's look: one value name per entry of ``FEATURES``."""

    background: str
    face_shape: str
    skin: str
    hair_colour: str
    hair_style: str
    eye_colour: str
    accessory: str

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) not in FEATURES[f.name]:
                raise ValueError(f"unknown {f.name} {getattr(self, f.name)!r}")


def draw_faces(n: int, rng: np.random.Generator) -> list[Face]:
    """Draw ``n`` faces, any two of which differ in at least two features.

    Two differences rather than one, so that no person is a one-detail edit of another.
    Random greedy picking keeps features independent; if it stalls (n near the limit) we
    fall back to a parity code: the background is fixed by the other features, which
    reaches the largest possible such set (all combinations / largest feature size).
    """
    sizes = np.array([len(v) for v in FEATURES.values()])
    capacity = prod(sizes.tolist()) // int(sizes.max())
    if not 0 <= n <= capacity:
        raise ValueError(f"can only draw 0..{capacity} faces that differ in two features, not {n}")
    codes = np.empty((n, len(sizes)), dtype=np.int64)
    kept, misses = 0, 0
    while kept < n and misses < 300:
        c = rng.integers(0, sizes)
        if kept and (codes[:kept] != c).sum(axis=1).min() < 2:
            misses += 1
            continue
        codes[kept], kept, misses = c, kept + 1, 0
    if kept < n:
        codes = _parity_codes(n, sizes, rng)
    names = list(FEATURES)
    return [Face(*(FEATURES[k][i] for k, i in zip(names, row))) for row in codes.tolist()]


def _parity_codes(n: int, sizes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """n codes at distance >= 2: changing any one other feature changes the check digit."""
    j = int(sizes.argmax())
    rest = np.delete(sizes, j)
    flat = rng.choice(prod(rest.tolist()), size=n, replace=False)
    others = np.stack(np.unravel_index(flat, rest.tolist()), axis=1)
    check = (others.sum(axis=1) + int(rng.integers(sizes[j]))) % sizes[j]
    return np.insert(others, j, check, axis=1)


# Head boxes (unit coordinates: x0, y0, x1, y1) per face shape.
_HEADS = {"round": (0.2, 0.2, 0.8, 0.84), "oval": (0.26, 0.15, 0.74, 0.9), "square": (0.21, 0.22, 0.79, 0.86)}


class _Pen:
    """Drawing in unit coordinates scaled by the canvas size, so 32 px and 64 px look alike;
    ``width``: the outline width, one pixel at 32 px."""

    def __init__(self, img: Image.Image):
        self.draw = ImageDraw.Draw(img)
        self.size = img.size[0]
        self.width = max(1, round(self.size / 32))

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[int]:
        s = self.size
        return [round(x0 * s), round(y0 * s), round(x1 * s) - 1, round(y1 * s) - 1]

    def pt(self, x: float, y: float) -> tuple[int, int]:
        return round(x * self.size), round(y * self.size)


def render(face: Face, size: int = 32) -> Image.Image:
    """Draw ``face`` as an RGB image of ``size`` x ``size`` px.

    The head spans ~60% of the canvas; hair and hat use the band above it. Nothing hides another
    feature completely (a hat sits above the hair, bald heads keep side tufts), so every
    feature difference shows in the pixels. Parts are drawn back to front.
    """
    img = Image.new("RGB", (size, size), _RGB["background"][face.background])
    pen = _Pen(img)
    _shoulders_and_head(pen, face)
    _hair_top(pen, face)
    _eyes_and_mouth(pen, face)
    if face.accessory == "hat":
        _hat(pen, face)
    return img


def _shoulders_and_head(pen: _Pen, face: Face) -> None:
    """Shirt, long hair behind the head, neck, head and a beard over it."""
    d, box, w = pen.draw, pen.box, pen.width
    hair, skin = _RGB["hair_colour"][face.hair_colour], _RGB["skin"][face.skin]
    hx0, hy0, hx1, hy1 = _HEADS[face.face_shape]
    d.ellipse(box(0.06, 0.86, 0.94, 1.4), fill=_SHIRT, outline=_OUTLINE, width=w)
    if face.hair_style == "long":  # hair falling behind the head down to the shoulders
        d.rounded_rectangle(box(hx0 - 0.08, hy0 - 0.04, hx1 + 0.08, 0.96), radius=0.2 * pen.size,
                            fill=hair, outline=_OUTLINE, width=w)
    d.rectangle(box(0.42, 0.78, 0.58, 0.94), fill=skin)
    if face.face_shape == "square":
        d.rounded_rectangle(box(hx0, hy0, hx1, hy1), radius=0.08 * pen.size, fill=skin, outline=_OUTLINE, width=w)
    else:
        d.ellipse(box(hx0, hy0, hx1, hy1), fill=skin, outline=_OUTLINE, width=w)
    if face.accessory == "beard":
        d.chord(box(hx0, hy0 + 0.1, hx1, hy1), 15, 165, fill=hair, outline=_OUTLINE, width=w)


def _hair_top(pen: _Pen, face: Face) -> None:
    """The hair on top of the head: a cap (short, long), spikes, or side tufts (bald)."""
    d, box, pt, w = pen.draw, pen.box, pen.pt, pen.width
    hair = _RGB["hair_colour"][face.hair_colour]
    hx0, hy0, hx1, _ = _HEADS[face.face_shape]
    if face.hair_style in ("short", "long"):
        d.chord(box(hx0 - 0.04, hy0 - 0.06, hx1 + 0.04, hy0 + 0.36), 180, 360, fill=hair, outline=_OUTLINE, width=w)
    elif face.hair_style == "spiky":
        for cx in (0.22, 0.41, 0.59, 0.78):  # the outer spikes still show beside a hat
            d.polygon([pt(cx - 0.09, hy0 + 0.1), pt(cx, 0.0), pt(cx + 0.09, hy0 + 0.1)], fill=hair, outline=_OUTLINE)
        d.chord(box(hx0 + 0.02, hy0 - 0.03, hx1 - 0.02, hy0 + 0.26), 180, 360, fill=hair)
    elif face.hair_style == "bald":  # tufts above the ears keep the hair colour visible
        for x0 in (hx0 - 0.04, hx1 - 0.07):
            d.rectangle(box(x0, hy0 + 0.12, x0 + 0.11, hy0 + 0.34), fill=hair, outline=_OUTLINE, width=w)


def _eyes_and_mouth(pen: _Pen, face: Face) -> None:
    """Eyes (with glasses, if any) and the mouth."""
    d, box, pt, w = pen.draw, pen.box, pen.pt, pen.width
    eye = _RGB["eye_colour"][face.eye_colour]
    for cx in (0.38, 0.62):
        d.ellipse(box(cx - 0.1, 0.44, cx + 0.1, 0.6), fill=(255, 255, 255))
        d.ellipse(box(cx - 0.06, 0.45, cx + 0.06, 0.59), fill=eye)
        if face.accessory == "glasses":
            d.ellipse(box(cx - 0.12, 0.41, cx + 0.12, 0.63), outline=(0, 0, 0), width=w)
    if face.accessory == "glasses":
        d.line([pt(0.47, 0.52), pt(0.53, 0.52)], fill=(0, 0, 0), width=w)
    d.line([pt(0.41, 0.72), pt(0.58, 0.72)], fill=_MOUTH, width=w + (pen.size >= 48))


def _hat(pen: _Pen, face: Face) -> None:
    """A small top hat above the hairline, so the hair stays visible."""
    hx0, hy0, hx1, _ = _HEADS[face.face_shape]
    pen.draw.rectangle(pen.box(hx0 + 0.07, 0.0, hx1 - 0.07, hy0 - 0.02), fill=_HAT)
    pen.draw.rectangle(pen.box(hx0 + 0.07, hy0 - 0.11, hx1 - 0.07, hy0 - 0.06), fill=_HAT_BAND)
    pen.draw.rectangle(pen.box(hx0 - 0.04, hy0 - 0.06, hx1 + 0.04, hy0), fill=_HAT)


def variant(image: Image.Image, rng: np.random.Generator, kind: str) -> Image.Image:
    """A transformed copy of ``image``, like MLLMU-Bench's Test_Set images.

    The person must stay recognisable while the pixels change, so each change is small and
    its size is bounded away from zero (a variant never equals its source by chance).
    """
    x = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    if kind == "shift":
        dx, dy = rng.integers(1, 4, size=2) * rng.choice([-1, 1], size=2)
        p = 3  # replicate edge pixels so that no foreign colour enters the frame
        padded = np.pad(x, ((p, p), (p, p), (0, 0)), mode="edge")
        h, w = x.shape[:2]
        x = padded[p - dy:p - dy + h, p - dx:p - dx + w]
    elif kind == "noise":
        x = x + rng.normal(0.0, 0.08, size=x.shape)
    elif kind == "jitter":
        def factor() -> float:
            return 1.0 + float(rng.uniform(0.05, 0.15) * rng.choice([-1, 1]))
        x = x * factor()  # brightness
        x = (x - x.mean()) * factor() + x.mean()  # contrast
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * factor()  # saturation
    else:
        raise ValueError(f"unknown variant kind {kind!r}; expected one of {VARIANT_KINDS}")
    return Image.fromarray(np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8), "RGB")


def png_bytes(image: Image.Image) -> bytes:
    """Encode as PNG with fixed settings and no metadata, so equal images give equal bytes."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def background_rgb(face: Face) -> tuple[int, int, int]:
    """The flat colour ``render`` fills ``face``'s background with (no other part uses it)."""
    return _RGB["background"][face.background]


def features_of(face: Face) -> dict[str, str]:
    """The face as ``{feature: value}``, e.g. for a person's attribute table."""
    return dict(zip(FEATURES, astuple(face)))
