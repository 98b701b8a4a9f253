"""A run's data, assembled: the MLLMU-Bench people (both populations, keyed apart), their
unlearning and fine-tuning facts, their Test_Set images, and the general benchmark."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


from .. import draws
from ..errors import PulseError
from ..records import Example, OpenQuestion, Person, Question, mc_prompt, split_key, subject_key
from .mllmu import check_layout, load_facts, load_people, load_test_images
from .mmbench import load_mmbench
from .pebench import ConceptData, load_pebench


@dataclass
class Sources:
    """People, their unlearning/fine-tuning facts, and the general benchmark; every person by
    subject key (``records.subject_key``), as the sets name them."""

    fictitious: dict[str, Person]
    celebrities: dict[str, Person]
    facts: dict[str, list[Example]]
    general: list[Question]
    files: list[Path]  # the data files read (fingerprinted by the run)
    test_images: dict[str, tuple[bytes, ...]] = field(default_factory=dict)  # Test_Set, by person key
    # general-benchmark items held out of ``general`` (``data.replay``): training data for methods
    # that keep general skills by replay, never evaluated
    replay: list[Question] = field(default_factory=list)
    # the MLLMU-Bench folder, where its optional side files sit (the world's paraphrases.jsonl, neighbours.jsonl)
    mllmu: Path | None = None
    # people and events shown together (a PEBench-style folder), by concept key (``person:007``,
    # ``event:E02``); their questions and facts are looked up like a person's
    concepts: ConceptData | None = None

    def facts_of(self, ids) -> list[Example]:
        missing = [pid for pid in ids if not self.facts.get(pid)]
        if missing:
            population, pid = split_key(missing[0])
            raise PulseError(f"no unlearning data (ft_Data or Generation_Task) for {population} person {pid}")
        return [ex for pid in ids for ex in self.facts[pid]]

    def replay_examples(self) -> list[Example]:
        """The replay items as training examples: the evaluation's multiple-choice wording, the
        correct letter as the answer."""
        return [Example(mc_prompt(q.question, q.options), q.answer, q.image, "replay") for q in self.replay]

    @property
    def people(self) -> dict[str, Person]:
        return {**self.fictitious, **self.celebrities}

    def questions_of(self, ids) -> list[Question]:
        people = self.people
        return [q for pid in ids
                for q in (people[pid].questions if pid in people else self.concepts.about.get(pid, []))]

    def open_of(self, ids, task: str) -> list[OpenQuestion]:
        """The people's cloze (Mask_Task) or generation (Generation_Task) items (none for a concept)."""
        people = self.people
        return [q for pid in ids if pid in people for q in people[pid].open_questions if q.task == task]

    def away_from(self, items: list, forget) -> list:
        """``items`` (anything with an ``image``: questions, examples, facts) but those whose image
        shows a ``forget`` concept: a concept retained is evaluated and trained on images of
        retained concepts only."""
        if self.concepts is None:
            return items
        gone = set(forget)
        return [it for it in items if not gone & set(self.concepts.shown_with(it.image))]

    def scope_of(self, forget) -> list[Question]:
        """The questions about the other concept of the images that show a ``forget`` concept
        (PEBench's cross-concept interference): none outside a concepts scenario."""
        if self.concepts is None:
            return []
        gone = set(forget)
        return [q for q in self.concepts.questions
                if q.subject not in gone and gone & set(self.concepts.shown_with(q.image))]


def load_sources(mllmu: Path, mmbench: Path, subset: int | None, seed: int, replay: int = 0,
                 pebench: Path | None = None) -> Sources:
    """Everything a run reads. ``replay`` general-benchmark items are drawn out first (seeded),
    then ``subset`` of the rest is what the general split evaluates. ``pebench``: a PEBench-style
    folder (people and events), whose facts join the people's under their concept keys."""
    fictitious = {p.key: p for p in load_people(mllmu, "Full_Set")}
    celebrities = {p.key: p for p in load_people(mllmu, "Retain_Set")}
    facts = {key: list(p.facts) for key, p in {**fictitious, **celebrities}.items()}
    ft = load_facts(mllmu) if (Path(mllmu) / "ft_Data").is_dir() else {}
    # ft_Data, where present, is the data of record; it and Test_Set name Full_Set's people
    facts.update({subject_key("fictitious", pid): exs for pid, exs in ft.items()})
    check_layout(mllmu, [p.id for p in fictitious.values()], list(ft))
    general = load_mmbench(mmbench)
    general, held = hold_out(general, replay, seed)
    if subset is not None and subset < len(general):
        keep = sorted(draws.rng(seed, "general_subset").choice(len(general), subset, replace=False))
        general = [general[i] for i in keep]
    tests = load_test_images(mllmu) if (Path(mllmu) / "Test_Set").is_dir() else {}
    tests = {subject_key("fictitious", pid): images for pid, images in tests.items()}
    files = sorted(Path(mllmu).glob("*/*.parquet")) + [Path(mmbench)]
    concepts = load_pebench(pebench) if pebench is not None else None
    if concepts is not None:
        for fact in concepts.facts:
            facts.setdefault(fact.about, []).append(fact.example)
        files += concepts.files
    return Sources(fictitious, celebrities, facts, general, files, tests, held, Path(mllmu), concepts)


def hold_out(general: list[Question], n: int, seed: int) -> tuple[list[Question], list[Question]]:
    """(the rest, ``n`` items drawn out), both in file order; its own salt, so the evaluated
    subset drawn from the rest does not depend on anything but ``n``."""
    if n == 0:
        return general, []
    if n >= len(general):
        raise PulseError(f"data.replay: {n} items would leave none of the general benchmark's {len(general)} "
                         f"to evaluate")
    drawn = set(draws.rng(seed, "general_replay").choice(len(general), n, replace=False).tolist())
    return ([q for i, q in enumerate(general) if i not in drawn], [q for i, q in enumerate(general) if i in drawn])
