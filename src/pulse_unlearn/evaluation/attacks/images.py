"""``image_transforms``: the forget people's multimodal questions asked with a changed image.

Each transform has severities 1-5, sized relative to the image so that a severity means the
same on the world's 32-pixel portraits and on LLaVA's 336-pixel inputs:

- ``blur``: Gaussian blur of radius 2% x severity of the short side;
- ``crop``: the central (1 - 0.1 x severity) of each side, resized back;
- ``rotation``: 10 degrees x severity, counter-clockwise, black corners;
- ``noise``: Gaussian pixel noise of std 0.04 x severity (pixels in [0, 1]), seeded per question;
- ``jpeg``: JPEG at quality max(5, 90 - 20 x severity), decoded again;
- ``colour``: hue turned by 36 degrees x severity.

The changed image goes through the model's processor like any other (records hold PNG bytes).
A model that answers the changed question but not the plain one has not lost the knowledge,
only its cue; recovery is against the starting model on the same changed images.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace
from typing import Annotated, ClassVar, Literal

import numpy as np
from PIL import Image, ImageFilter
from pydantic import Field

from ...core.names import unknown_name
from .base import ATTACKS, AttackParams, Distinct, InputAttack

TRANSFORMS = ("blur", "crop", "rotation", "noise", "jpeg", "colour")
Severity = Annotated[int, Field(ge=1, le=5)]


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:8], "little")


def transform_image(png: bytes, transform: str, severity: int, seed: int = 0) -> bytes:
    """``png`` changed by ``transform`` at ``severity``, as PNG bytes."""
    im = Image.open(io.BytesIO(png)).convert("RGB")
    w, h = im.size
    if transform == "blur":
        im = im.filter(ImageFilter.GaussianBlur(radius=0.02 * severity * min(w, h)))
    elif transform == "crop":
        keep = 1 - 0.1 * severity
        cw, ch = max(1, round(w * keep)), max(1, round(h * keep))
        left, top = (w - cw) // 2, (h - ch) // 2
        im = im.crop((left, top, left + cw, top + ch)).resize((w, h), Image.BICUBIC)
    elif transform == "rotation":
        im = im.rotate(10 * severity, resample=Image.BICUBIC, fillcolor=(0, 0, 0))
    elif transform == "noise":
        pixels = np.asarray(im, dtype=np.float64) / 255.0
        pixels = pixels + np.random.default_rng(seed).normal(0.0, 0.04 * severity, pixels.shape)
        im = Image.fromarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))
    elif transform == "jpeg":
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=max(5, 90 - 20 * severity))
        im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    elif transform == "colour":
        hsv = np.asarray(im.convert("HSV"), dtype=np.int64)
        hsv[..., 0] = (hsv[..., 0] + round(256 * 0.1 * severity)) % 256
        im = Image.fromarray(hsv.astype(np.uint8), mode="HSV").convert("RGB")
    else:
        raise ValueError(unknown_name("transform", transform, TRANSFORMS))
    out = io.BytesIO()
    im.save(out, format="PNG")
    return out.getvalue()


class ImageTransformParams(AttackParams):
    transforms: Annotated[list[Literal[TRANSFORMS]], Distinct] = Field(default_factory=lambda: list(TRANSFORMS),
                                                                       min_length=1)
    severities: Annotated[list[Severity], Distinct] = Field(default_factory=lambda: [2], min_length=1)



@ATTACKS.register
class ImageTransforms(InputAttack):
    name = "image_transforms"
    Params = ImageTransformParams
    splits: ClassVar[tuple[str, ...]] = ("forget",)

    def settings(self) -> list[str]:
        return [f"transform={t}:{s}" for t in self.transforms for s in self.severities]

    def change(self, items: list, setting: str, ctx) -> list:
        transform, severity = setting.removeprefix("transform=").split(":")
        return [replace(q, qid=f"{q.qid}/{transform}:{severity}",
                        image=transform_image(q.image, transform, int(severity), _seed(q.qid, setting)))
                for q in items if q.modality == "multimodal" and q.image is not None]
