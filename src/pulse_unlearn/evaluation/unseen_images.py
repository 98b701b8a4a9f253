"""The ``forget_test`` split's items: each multimodal question asked with the first of its
person's Test_Set images that differs from the profile image (MLLMU-Bench's generalisation test);
qid ``<qid>/test``. Text-only questions and people without such an image are left out."""

from __future__ import annotations

from dataclasses import replace


def with_test_images(questions: list, src) -> list:
    people, tests, out = src.people, src.test_images, []
    for q in questions:
        if q.modality != "multimodal":
            continue
        image = next((im for im in tests.get(q.subject, ()) if im != people[q.subject].image), None)
        if image is not None:
            out.append(replace(q, qid=f"{q.qid}/test", image=image))
    return out
