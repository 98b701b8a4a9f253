"""Probes: an evaluation of declared splits under a change, recorded next to the plain one.

A probe changes the *inputs* (each item of a split rewritten: another image, a reworded
question) or the *model* (relearned, quantized) before the split is scored. Input changes
are applied once, when a split's items are built, so the changed items are encoded once and
scored on every model like any split. Model changes are applied to a model handed in, and
the evaluator scores the declared splits on the changed model.

Record format: a probe's evaluations go to ``probes.csv``, whose columns are ``probe`` (the
probe's name) followed by ``summary.csv``'s columns, so a probed row joins the plain row of
the same scenario, method, update, step, request, split and modality. The starting model
(step 0) probed the same way is each probe's baseline.

Built-in: ``test_images`` (an input change), which makes the ``forget_test`` split: the forget
people's multimodal questions asked with a Test_Set image instead of the profile image.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from ..registry import Registry

PROBES: Registry[type] = Registry("probe", "pulse_unlearn.probes")


class Probe:
    """Override ``change_inputs`` (``changes = "inputs"``) or ``change_model`` (``"model"``)."""

    name: ClassVar[str]
    changes: ClassVar[str] = "inputs"  # "inputs" or "model"

    def change_inputs(self, items: list, ctx) -> list:
        """The items to score instead of ``items`` (``ctx``: the split context: ``src``, ``sets``,
        ``cfg``). Items without a changed form may be left out."""
        return list(items)

    def change_model(self, model, ctx):
        """The model to score instead of ``model``; the runner hands in a model it may change."""
        return model


@PROBES.register
class TestImages(Probe):
    """Each multimodal question asked with the first of its person's Test_Set images that differs
    from the profile image (MLLMU-Bench's generalisation test); qid ``<qid>/test``. Text-only
    questions and people without such an image are left out."""

    name = "test_images"
    changes = "inputs"

    def change_inputs(self, items: list, ctx) -> list:
        people, tests, out = ctx.src.people, ctx.src.test_images, []
        for q in items:
            if q.modality != "multimodal":
                continue
            image = next((im for im in tests.get(q.subject, ()) if im != people[q.subject].image), None)
            if image is not None:
                out.append(replace(q, qid=f"{q.qid}/test", image=image))
        return out
