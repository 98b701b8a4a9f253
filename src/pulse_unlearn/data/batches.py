"""Encoded sequences -> model inputs: batches of one modality, right-padded, or packed.

Labels are answer-only: every prompt position (chat template, question, the image's
placeholder tokens) and every padding position is -100, so a loss or a log-likelihood
reads the answer and nothing else. Batches are all-image or all-text (no wasted vision work,
less padding). The sequences come from ``data/encoder.py``, whose names are importable from
here too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import PulseError
from .encoder import EncodedSet, Encoder, ImageInputs, Turn

__all__ = ["IGNORE", "EncodedSet", "Encoder", "ImageInputs", "Turn", "batch_indices", "collate", "pack",
           "sequence_ids"]

IGNORE = -100


def collate(enc: EncodedSet, indices: Sequence[int], pad_id: int, labels: bool = True,
            ends: Sequence[int] | None = None) -> dict:
    """A right-padded batch with every processor input; labels are -100 except on answer tokens.
    ``ends[r]``: where row r's sequence stops (a prompt alone, a shared prefix); default: its end."""
    ends = [len(enc.ids[i]) for i in indices] if ends is None else list(ends)
    n = max(ends)
    input_ids = torch.full((len(indices), n), pad_id, dtype=torch.long)
    attention = torch.zeros((len(indices), n), dtype=torch.long)
    label_t = torch.full((len(indices), n), IGNORE, dtype=torch.long)
    extra = {k: torch.full((len(indices), n), enc.token_fill[k], dtype=torch.long) for k in enc.token_inputs}
    for row, (i, end) in enumerate(zip(indices, ends)):
        seq = enc.ids[i][:end]
        input_ids[row, :end] = torch.tensor(seq)
        attention[row, :end] = 1
        label_t[row, enc.prompt_len[i]: end] = torch.tensor(seq[enc.prompt_len[i]:], dtype=torch.long)
        for k, t in extra.items():
            t[row, :end] = torch.tensor(enc.token_inputs[k][i][:end])
    batch = {"input_ids": input_ids, "attention_mask": attention, **extra}
    if labels:
        batch["labels"] = label_t
    batch.update(_image_inputs(enc, indices))
    return batch


def _image_inputs(enc: EncodedSet, order: Sequence[int]) -> dict:
    """The image inputs of sequences ``order``, every sequence's images in placeholder order."""
    keys = [enc.image_keys[i] for i in order]
    if not any(keys):
        return {}
    if not all(keys):
        raise ValueError("a batch mixes image and text-only sequences")
    return enc.images.select([k for row in keys for k in row])


def pack(enc: EncodedSet, indices: Sequence[int], pad_id: int, row_len: int) -> dict:
    """The same sequences as ``collate(enc, indices)``, packed several to a row.

    Why: training batches of short facts are mostly padding (measured on the world's
    corpus: 937 real of 2,146 computed tokens per text batch). Sequences go into rows of
    at most ``row_len`` tokens (first fit, longest first; a longer sequence gets a row of
    its own). ``position_ids`` restart at 0 for every sequence and there is no
    ``attention_mask``: transformers then reads the packed layout from the positions and
    lets each token attend only within its own sequence, so every answer token sees
    exactly what it sees unpacked. Trailing padding is one more sequence of its own,
    label -100. Image inputs follow the order in which their placeholders appear.
    The token-weighted NLL of the packed batch equals the unpacked one.
    """
    if enc.token_inputs:
        raise PulseError(f"cannot pack sequences with per-token inputs ({', '.join(enc.token_inputs)}): the model "
                         "derives positions from them over the whole row")
    order = sorted(indices, key=lambda i: -len(enc.ids[i]))
    rows: list[list[int]] = []
    fill: list[int] = []
    for i in order:
        n = len(enc.ids[i])
        r = next((r for r, f in enumerate(fill) if f + n <= row_len), None)
        if r is None:
            rows.append([i])
            fill.append(n)
        else:
            rows[r].append(i)
            fill[r] += n
    width = max(fill)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    label_t = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for r, members in enumerate(rows):
        at = 0
        for i in members:
            seq, p = enc.ids[i], enc.prompt_len[i]
            input_ids[r, at: at + len(seq)] = torch.tensor(seq)
            positions[r, at: at + len(seq)] = torch.arange(len(seq))
            label_t[r, at + p: at + len(seq)] = torch.tensor(seq[p:])
            at += len(seq)
        positions[r, at:] = torch.arange(width - at)
    return {"input_ids": input_ids, "position_ids": positions, "labels": label_t,
            **_image_inputs(enc, [i for members in rows for i in members])}


def sequence_ids(batch: dict) -> torch.Tensor:
    """A batch-unique id per position of the sequence it belongs to: one per row, or per packed
    segment (``pack`` restarts ``position_ids`` at 0 for every sequence and for the padding)."""
    ids = batch["input_ids"]
    starts = torch.zeros_like(ids, dtype=torch.bool)
    starts[:, 0] = True
    if "position_ids" in batch:
        starts |= batch["position_ids"] == 0
    return starts.flatten().cumsum(0).view_as(ids)


def batch_indices(enc: EncodedSet, batch_size: int, generator: torch.Generator | None = None,
                  subset: Sequence[int] | None = None, pool: int = 1) -> list[list[int]]:
    """One epoch of single-modality batches.

    Without a generator: sorted by length, in a fixed order (scoring: least padding). With
    one: shuffled (training); ``pool`` > 1 sorts by length within pools of that many batches
    before the batches are shuffled again. That halves padding, but the length-homogeneous
    batches it makes slowed learning of the tiny world model a lot (measured: well-known
    celebrities' text-only accuracy 64% -> 43% at pool 8), so training keeps pool 1.
    """
    allowed = None if subset is None else set(subset)
    batches = []
    for _, idx in sorted(enc.by_modality().items()):
        if allowed is not None:
            idx = [i for i in idx if i in allowed]
        if generator is None:
            idx = sorted(idx, key=lambda i: len(enc.ids[i]))
            batches += [idx[k:k + batch_size] for k in range(0, len(idx), batch_size)]
            continue
        idx = [idx[j] for j in torch.randperm(len(idx), generator=generator).tolist()]
        step = batch_size * pool
        for start in range(0, len(idx), step):
            chunk = sorted(idx[start:start + step], key=lambda i: len(enc.ids[i]))
            batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    if generator is not None:
        batches = [batches[j] for j in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def balanced_batch_indices(enc: EncodedSet, groups: Sequence[str], batch_size: int,
                           generator: torch.Generator) -> list[list[int]]:
    """One epoch of shuffled single-modality batches in which each group of a modality (``groups``:
    one label per row, e.g. the concept a fact is about) fills the same share of every batch,
    ``batch_size // k`` rows of each of its k groups (at least one). The epoch runs until the
    largest group has given every row once; smaller groups are cycled, reshuffled on every pass.
    So every step sees each group alike, whatever their sizes."""
    batches = []
    for _, idx in sorted(enc.by_modality().items()):
        by_group: dict[str, list[int]] = {}
        for i in idx:
            by_group.setdefault(groups[i], []).append(i)
        per = max(1, batch_size // len(by_group))
        n = -(-max(len(v) for v in by_group.values()) // per)
        streams = [_shuffled_cycle(by_group[g], generator) for g in sorted(by_group)]
        batches += [[next(s) for s in streams for _ in range(per)] for _ in range(n)]
    return [batches[j] for j in torch.randperm(len(batches), generator=generator).tolist()]


def _shuffled_cycle(idx: list[int], generator: torch.Generator):
    while True:
        yield from (idx[j] for j in torch.randperm(len(idx), generator=generator).tolist())
