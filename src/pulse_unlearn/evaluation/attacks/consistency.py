"""``consistency``: the same fact asked with the image and by name, right or wrong in each.

A pair is a person's i-th multimodal and i-th text-only question (``<subject>/<modality>/<i>``):
MLLMU-Bench and the embedded world ask the same facts in the same order in both lists. A person
whose two lists differ in length gives no pairs. Per split, the shares of pairs right in both, wrong in both, and
right in one modality only. Forgetting that removed the knowledge leaves forget pairs wrong in
both (UMU-Bench counts "both wrong" on forget and "both right" on retain); "image wrong, text
right" is broken image-to-knowledge alignment: the fact is still there, reached by name.
No model is changed and nothing is scored again: it reads the model's plain predictions.
"""

from __future__ import annotations

from typing import ClassVar

from .base import ATTACKS, Attack, AttackContext, Outcome

SHARES = ("both_right", "both_wrong", "image_wrong_text_right", "image_right_text_wrong")


def pair_counts(pairs: list[tuple[bool, bool]]) -> dict[str, int]:
    """(multimodal right, text right) pairs counted into ``SHARES``."""
    counts = dict.fromkeys(SHARES, 0)
    for image, text in pairs:
        key = ("both_right" if text else "image_right_text_wrong") if image else \
            ("image_wrong_text_right" if text else "both_wrong")
        counts[key] += 1
    return counts


def pairs_of(preds: list) -> list[tuple[bool, bool]]:
    """(multimodal right, text right) per person and question index asked in both modalities."""
    right: dict[tuple[str, str], dict[str, bool]] = {}
    counts: dict[tuple[str, str], int] = {}
    for p in preds:
        subject, modality, index = p.qid.rsplit("/", 2)
        right.setdefault((subject, index), {})[modality] = bool(p.correct)
        counts[subject, modality] = counts.get((subject, modality), 0) + 1
    return [(r["multimodal"], r["text"]) for (subject, _), r in sorted(right.items())
            if len(r) == 2 and counts[subject, "multimodal"] == counts[subject, "text"]]


@ATTACKS.register
class Consistency(Attack):
    name = "consistency"
    splits: ClassVar[tuple[str, ...]] = ("forget", "retain")

    def does_not_apply(self, ctx: AttackContext) -> str | None:
        if not pairs_of(ctx.plain.get("forget", [])):
            return "no forget person is asked the same questions with the image and by name"
        return None

    def __call__(self, model, ctx: AttackContext) -> list[Outcome]:
        out = []
        for split in self.scored:
            pairs = pairs_of(ctx.plain.get(split, []))
            if not pairs:
                continue
            counts = pair_counts(pairs)
            rows = [{"modality": "pair", "n": len(pairs), "metric": share,
                     "value": round(counts[share] / len(pairs), 6)}
                    for share in SHARES]
            out.append(Outcome("", split, rows=rows))
        return out
