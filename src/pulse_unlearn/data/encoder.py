"""Records -> token ids, through the model's own processor and chat template.

Sequences are encoded once and kept as token lists (``EncodedSet``); each distinct image is
run through the processor once. Batches are made from them in ``data/batches.py``.

Images: the processor itself expands one placeholder per image and makes every image input,
so nothing assumes a fixed layout. The chat template puts one image token in the prompt per
image; each is replaced by its own image's expansion as the processor gives it (576 tokens for
LLaVA-1.5, a count that depends on the image's size for LLaVA-NeXT's anyres and for Qwen2-VL).
A prompt may hold several images (a few-shot demonstration's turn before the question): their
image inputs go to the model in the placeholders' order. Every
other processor output is carried to the model untouched: per-image ones (``pixel_values``,
``image_sizes``, ``image_grid_thw``, ...) in ``ImageInputs``, per-token ones (Qwen2-VL's
``mm_token_type_ids``) next to the token ids, padded with the value the processor gives text.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from jinja2 import TemplateError

from ..errors import PulseError, first_line
from ..records import Example

TEXT_KEYS = ("input_ids", "attention_mask")
CHUNK = 256  # images per processor call


@dataclass
class ImageInputs:
    """The processor's per-image outputs, one entry per distinct image. A key that gives every
    image one row of one shape is kept stacked (LLaVA-1.5: a batch is an index, as fast as a
    plain tensor); any other is a list of per-image tensors, concatenated per batch with zeros
    padding the trailing dimensions (LLaVA-NeXT's patches per image, Qwen2-VL's patch rows)."""

    stacked: dict[str, torch.Tensor] = field(default_factory=dict)
    ragged: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    @classmethod
    def from_parts(cls, parts: dict[str, list[torch.Tensor]]) -> ImageInputs:
        out = cls()
        for key, tensors in parts.items():
            if all(t.shape[0] == 1 and t.shape == tensors[0].shape for t in tensors):
                out.stacked[key] = torch.cat(tensors)
            else:
                out.ragged[key] = tensors
        return out

    def select(self, rows: Sequence[int]) -> dict[str, torch.Tensor]:
        batch = {k: v[list(rows)] for k, v in self.stacked.items()}
        for key, tensors in self.ragged.items():
            batch[key] = _cat_padded([tensors[r] for r in rows])
        return batch


def _cat_padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along dim 0, zero-padding every other dimension to the largest."""
    shape = [max(t.shape[d] for t in tensors) for d in range(1, tensors[0].dim())]
    if all(list(t.shape[1:]) == shape for t in tensors):
        return torch.cat(tensors)
    out = tensors[0].new_zeros((sum(t.shape[0] for t in tensors), *shape))
    start = 0
    for t in tensors:
        out[(slice(start, start + t.shape[0]), *(slice(0, n) for n in t.shape[1:]))] = t
        start += t.shape[0]
    return out


Turn = tuple[str, bytes | None]  # one user turn of a prompt: its text and its image, if any


@dataclass
class EncodedSet:
    """Encoded sequences: ``ids[i]`` (prompt + answer), ``prompt_len[i]`` and ``image_keys[i]``
    (the entries of ``images`` that its image placeholders take, in order; empty for text-only);
    ``token_inputs[key][i]``: a per-token processor output aligned with ``ids[i]``, padded with
    ``token_fill[key]``."""

    ids: list[list[int]]
    prompt_len: list[int]
    image_keys: list[tuple[int, ...]]
    images: ImageInputs | None
    token_inputs: dict[str, list[list[int]]] = field(default_factory=dict)
    token_fill: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def by_modality(self) -> dict[bool, list[int]]:
        """Sequence indices grouped by whether they carry an image."""
        groups: dict[bool, list[int]] = {True: [], False: []}
        for i, keys in enumerate(self.image_keys):
            groups[bool(keys)].append(i)
        return {k: v for k, v in groups.items() if v}


class Encoder:
    """Turns (prompt, answer, image) into token ids with answer-only labels."""

    def __init__(self, processor):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_token = getattr(processor, "image_token", "<image>")
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(self.image_token)
        if self.image_token_id is None or self.image_token_id == self.tokenizer.unk_token_id:
            raise PulseError(f"the tokenizer has no image token {self.image_token!r}")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.token_fill = self._token_fill()
        self._per_image = False  # set once a batched call gives rows that are not one per image
        self.probe_size, self.n_image_tokens = self._count_image_tokens()

    @property
    def name(self) -> str:
        return type(self.processor).__name__

    def _token_fill(self) -> dict[str, int]:
        """Per-token outputs beyond ids and mask (Qwen2-VL: ``mm_token_type_ids``) and the value
        they hold on text, which pads them and fills every position outside an image."""
        out = self._run(text=["a b"])
        fill = {}
        for key, rows in out.items():
            if key in TEXT_KEYS:
                continue
            values = {int(v) for v in rows[0]}
            if len(values) != 1:
                raise PulseError(f"{self.name}: unsupported processor: its per-token output {key!r} varies on "
                                 "plain text")
            fill[key] = values.pop()
        return fill

    @property
    def prefix_sharing_blocker(self) -> str | None:
        """Why prefix sharing cannot run with this processor's model, or None when it can."""
        if self.token_fill:
            return (f"{self.name} gives per-token inputs ({', '.join(self.token_fill)}) that the model turns "
                    "into positions over the whole sequence (multimodal rotary positions); a suffix run on a "
                    "copied prefix cache would get them wrong")
        return None

    def _count_image_tokens(self) -> tuple[tuple[int, int], int]:
        """How many tokens the processor expands one image of its crop (or fixed) size into, else
        of 336 x 336 (Qwen2-VL sizes by pixel budget): the count of every image on LLaVA-1.5, of
        images of that size on size-dependent models (LLaVA-NeXT, Qwen2-VL)."""
        from PIL import Image

        ip = self.processor.image_processor
        w, h = 336, 336
        for size in (getattr(ip, "crop_size", None), getattr(ip, "size", None)):
            get = size.get if isinstance(size, dict) else lambda key, size=size: getattr(size, key, None)
            if size is not None and get("height") and get("width"):
                w, h = int(get("width")), int(get("height"))
                break
        expansions, _, _ = self._process([Image.new("RGB", (w, h))])
        return (w, h), sum(1 for t in expansions[0] if t == self.image_token_id)

    def prompt_text(self, prompt: str, has_image: bool) -> str:
        """The chat-templated user turn plus the assistant header; an image is one placeholder here,
        expanded after tokenising (``encode``)."""
        return self.turns_text([(prompt, has_image)])

    def turns_text(self, turns: Sequence[tuple[str, bool]]) -> str:
        """Consecutive user turns (text, has an image) through the chat template, then the assistant
        header; one placeholder per image, each expanded after tokenising (``encode``)."""
        messages = [{"role": "user", "content": ([{"type": "image"}] if has_image else [])
                     + [{"type": "text", "text": text}]} for text, has_image in turns]
        try:
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except TemplateError as e:  # e.g. a template that wants user and assistant turns to alternate
            what = (f"{len(turns)} user turns in a row (a few-shot demonstration; parity.few_shot=false turns it "
                    "off)" if len(turns) > 1 else "a user turn")
            raise PulseError(f"{self.name}: the chat template refuses {what}: {first_line(e)}") from None

    def encode(self, examples: Sequence[Example], add_eos: bool = True,
               before: Sequence[Sequence[Turn]] | None = None) -> EncodedSet:
        """Tokenise all examples in one batched call; the answer starts after the prompt's tokens.
        ``before[i]``: earlier user turns of example i's prompt (a few-shot demonstration), each with
        its own image, if any; the prompt's images take their inputs in the turns' order."""
        turns = [[*(before[i] if before else ()), (ex.prompt, ex.image)] for i, ex in enumerate(examples)]
        flat, expansions, expansion_inputs, images = self._images([image for ts in turns for _, image in ts])
        keys, start = [], 0  # each example's images, in its turns' order
        for ts in turns:
            keys.append(tuple(k for k in flat[start:start + len(ts)] if k >= 0))
            start += len(ts)
        prompts = [self.turns_text([(text, image is not None) for text, image in ts]) for ts in turns]
        fulls = [p + " " + ex.answer for p, ex in zip(prompts, examples)]
        p_ids = self.tokenizer(prompts)["input_ids"] if prompts else []
        f_ids = self.tokenizer(fulls)["input_ids"] if fulls else []
        eos = [self.tokenizer.eos_token_id] if add_eos else []
        ids, lens, token_inputs = [], [], {key: [] for key in self.token_fill}
        for ex, p, f, k in zip(examples, p_ids, f_ids, keys):
            if f[: len(p)] != p:  # the answer merged into the prompt's last token: encode it apart
                f = p + self.tokenizer(" " + ex.answer, add_special_tokens=False)["input_ids"]
            if len(f) == len(p) and ex.answer:
                raise PulseError(f"answer {ex.answer!r} encodes to no tokens")
            seq, rows = self._expand(f + eos, self._placeholders(p, len(k)), [expansions[j] for j in k],
                                     [expansion_inputs[j] for j in k])
            ids.append(seq)
            lens.append(len(p) + len(seq) - len(f + eos))
            for name, values in rows.items():
                token_inputs[name].append(values)
        return EncodedSet(ids, lens, keys, images, token_inputs, dict(self.token_fill))

    def _expand(self, seq: list[int], at: list[int], expansions: list[list[int]],
                inputs: list[dict[str, list[int]]]) -> tuple[list[int], dict[str, list[int]]]:
        """``seq`` with the image token at each position of ``at`` replaced by that image's own
        expansion, and its per-token inputs (the images' own values, the text value elsewhere)."""
        out, rows, last = [], {name: [] for name in self.token_fill}, 0
        for pos, expansion, values in zip(at, expansions, inputs):
            out += seq[last:pos] + expansion
            for name, fill in self.token_fill.items():
                rows[name] += [fill] * (pos - last) + values[name]
            last = pos + 1
        out += seq[last:]
        for name, fill in self.token_fill.items():
            rows[name] += [fill] * (len(seq) - last)
        return out, rows

    def _placeholders(self, prompt_ids: list[int], n_images: int) -> list[int]:
        """Where the chat template put the images: one image token per image in the prompt."""
        at = [j for j, t in enumerate(prompt_ids) if t == self.image_token_id]
        if len(at) != n_images:
            raise PulseError(f"{self.name}: the chat template gives {len(at)} image tokens for "
                             f"{'one image' if n_images == 1 else f'{n_images} images'} "
                             f"(expected one {self.image_token!r} per image)")
        return at

    def _images(self, images: Sequence[bytes | None]):
        """Each distinct image processed once. Returns an entry per image (-1: none) and, per
        distinct image, its token expansion, its per-token inputs and its image inputs."""
        from PIL import Image, UnidentifiedImageError

        rows: dict[str, int] = {}
        unique: list[bytes] = []
        keys = []
        for img in images:
            if img is None:
                keys.append(-1)
                continue
            h = hashlib.sha1(img).hexdigest()
            if h not in rows:
                rows[h] = len(unique)
                unique.append(img)
            keys.append(rows[h])
        if not unique:
            return keys, [], [], None
        pil = []
        for i, data in enumerate(unique):
            try:
                pil.append(Image.open(io.BytesIO(data)).convert("RGB"))
            except (UnidentifiedImageError, OSError):
                raise PulseError(f"image {i} is not a readable image file") from None
        expansions, expansion_inputs, inputs = self._process(pil)
        return keys, expansions, expansion_inputs, inputs

    def _process(self, pil: list) -> tuple[list[list[int]], list[dict[str, list[int]]], ImageInputs]:
        """The processor on lone placeholders, ``CHUNK`` images a call; a processor whose outputs
        are not one row per image (Qwen2-VL's patch rows) is called per image instead."""
        expansions, expansion_inputs, parts = [], [], {}
        for start in range(0, len(pil), CHUNK):
            chunk = pil[start:start + CHUNK]
            if self._per_image:
                outs = [self._call([img]) for img in chunk]
            else:
                outs = [self._call(chunk)]
                keys = [k for k in outs[0] if k not in TEXT_KEYS and k not in self.token_fill]
                if len(chunk) > 1 and any(outs[0][k].shape[0] != len(chunk) for k in keys):
                    self._per_image = True
                    outs = [self._call([img]) for img in chunk]
            for o in outs:
                n = o["input_ids"].shape[0]
                for r in range(n):
                    keep = o["attention_mask"][r].bool()
                    expansion = o["input_ids"][r][keep].tolist()
                    if self.image_token_id not in expansion:
                        raise PulseError(f"{self.name}: unsupported processor: an image expands to no "
                                         f"{self.image_token!r} tokens")
                    expansions.append(expansion)
                    expansion_inputs.append({k: o[k][r][keep].tolist() for k in self.token_fill})
                for k in o:
                    if k not in TEXT_KEYS and k not in self.token_fill:
                        parts.setdefault(k, []).extend(o[k].split(1) if n > 1 else [o[k]])
        return expansions, expansion_inputs, ImageInputs.from_parts(parts)

    def _call(self, images: list) -> dict[str, torch.Tensor]:
        out = self._run(text=[self.image_token] * len(images), images=images, return_tensors="pt", padding=True,
                        add_special_tokens=False)
        for key, value in out.items():
            if not isinstance(value, torch.Tensor):
                raise PulseError(f"{self.name}: unsupported processor: its output {key!r} is not a tensor")
        return dict(out)

    def _run(self, **kwargs):
        try:
            return self.processor(**kwargs)
        except (ValueError, TypeError, KeyError, RuntimeError, IndexError) as e:
            raise PulseError(f"{self.name}: cannot process {'an image' if 'images' in kwargs else 'text'} "
                             f"({first_line(e)})") from None
