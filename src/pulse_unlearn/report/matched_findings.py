"""The paper's three findings judged at matched forgetting: each unit is read where its forget
accuracy first reached the comparison target (``matched.csv``), so that two scenarios are compared
at the same level of forgetting rather than at the end of one budget.

A cost is the drop from the operation's step 0 to the matched point, in absolute percentage
points; a unit that never reached the target is named with the steps it tried, and the finding
is then not measured.
"""

from __future__ import annotations

from .findings import Judged, Summary, findings, said
from .matched import TARGET_MODALITIES, Matched, Point
from ..protocol.scenarios.declared import is_sequential, one_shot_of, with_knowledge


def _label(unit) -> str:
    return unit[1] if unit[2] == "llm" else f"{unit[1]} ({unit[2]})"


def _pts(p: Point | None, column: str = "cost") -> str:
    if p is None or p.value(column) is None:
        return "-"
    std = p.std.get(column)
    low, high = p.value(f"{column}_ci_low"), p.value(f"{column}_ci_high")
    interval = f" [{100 * low:.1f}, {100 * high:.1f}]" if p.runs == 1 and low is not None and high is not None else ""
    return f"{100 * p.value(column):.1f}" + ("" if std is None else f" ± {100 * std:.1f}") + interval + " pts"


def _target(p: Point) -> str:
    return f"{100 * p.value('target'):.1f}%"


def _partial(name: str, p: Point) -> str:
    return f" ({name} reached it in {p.reached} of {p.runs} runs)" if 0 < p.reached < p.runs else ""


def _unreached(named: list[tuple[str, Point]]) -> str | None:
    """"pretrained: not reached within 40 steps (target 40.0%)" for those that never reached it."""
    missed = [f"{name}: {p.where()} (target {_target(p)})" for name, p in named if not p.reached]
    return "; ".join(missed) or None


def _common(m: Matched, a, b) -> list[str]:
    return [tm for tm in m.target_modalities(a) if tm in m.target_modalities(b)]


def _pairs(m: Matched, scenarios: list[tuple[str, str]]):
    """(method label, first unit, second unit, target modality) for the units of each pair of
    scenarios (first, second) that ran with the same method and update."""
    partner = dict(scenarios)
    for unit in m.units():
        if unit[0] not in partner:
            continue
        other = (partner[unit[0]], *unit[1:])
        if other in m.units():
            for tm in _common(m, unit, other):
                yield _label(unit), unit, other, tm


def _value(m: Matched, unit, tm, split, column="cost") -> float | None:
    p = m.get(unit, m.operations(unit)[-1], tm, split, "all")
    return None if p is None else p.value(column)


def finetuned_vs_pretrained(m: Matched, judged: Judged | None = None) -> list[str]:
    out = ["1. Pre-trained vs fine-tuned knowledge at the same level of forgetting (paper: unlearning fine-tuned "
           "knowledge costs up to ~10% of MMBench, pre-trained knowledge > 90%). Cost: the drop from the start to "
           "where forget accuracy reached the target."]
    for label, ft, pt, tm in _pairs(m, [(with_knowledge("fine-tuned"), with_knowledge("pre-trained"))]):
        pf, pp = (m.point(u, m.operations(u)[-1], tm) for u in (ft, pt))
        head = f"   {label:<8} forgotten on {TARGET_MODALITIES.get(tm, tm)}: "
        missed = _unreached([("finetuned", pf), ("pretrained", pp)])
        if missed:
            out.append(head + missed + "  -> not measured (the target was not reached)")
            continue
        costs = {sp: [m.get(u, m.operations(u)[-1], tm, sp, "all") for u in (ft, pt)] for sp in ("general", "retain")}
        g_ft, g_pt = (_value(m, u, tm, "general") for u in (ft, pt))
        estimate = None if g_ft is None or g_pt is None else g_pt - g_ft
        said_ = said(judged, 1, ft[1], ft[2], f"{pt[0]} vs {ft[0]}", estimate, at="matched", target_modality=tm)
        out.append(head + f"targets finetuned {_target(pf)}, pretrained {_target(pp)}; "
                   + "; ".join(f"{sp} cost: finetuned {_pts(a)}, pretrained {_pts(b)}" for sp, (a, b) in costs.items())
                   + _partial("finetuned", pf) + _partial("pretrained", pp) + f"  -> {said_}")
    return out


def sequential_vs_one_shot(m: Matched, judged: Judged | None = None) -> list[str]:
    out = ["2. Sequential vs one-shot unlearning at the same level of forgetting (paper: after 5 operations generality "
           "is almost entirely lost, even for methods that do well in one shot). Cost: the general benchmark's drop "
           "from the start to where forget accuracy reached the target, for the sequence over all its people "
           "together (its operations one after another)."]
    sequential = [(one_shot_of(n), n) for n in dict.fromkeys(u[0] for u in m.units()) if is_sequential(n)]
    for label, one, seq, tm in _pairs(m, sequential):
        po = m.point(one, m.operations(one)[-1], tm)
        head = f"   {label:<8} forgotten on {TARGET_MODALITIES.get(tm, tm)}: "
        row = (judged or {}).get(("2", "matched", one[1], one[2], f"{one[0]} vs {seq[0]}", tm))
        if not po.reached:
            out.append(head + _unreached([("one-shot", po)]) + "  -> not measured (the target was not reached)")
        elif row is None:
            why = ("no findings.csv holds the sequence's matched point" if judged is None else
                   "the sequence's people together never reached the target (or were not scored at its checkpoints)")
            out.append(head + f"one-shot general cost {_pts(m.get(one, m.operations(one)[-1], tm, 'general', 'all'))}; "
                       f"{why}  -> not measured")
        else:
            out.append(head + f"one-shot general cost {_pts(m.get(one, m.operations(one)[-1], tm, 'general', 'all'))} "
                       f"(target {_target(po)})  -> sequential minus one-shot: "
                       + said(judged, 2, one[1], one[2], f"{one[0]} vs {seq[0]}", None, at="matched",
                              target_modality=tm))
    return out


def _first(unit, mm: Point, txt: Point, judged: Judged | None) -> str:
    """The paper's direction: multimodal questions reach the target with fewer examples than
    text-only ones (findings.csv's comparison: text-only minus multimodal examples)."""
    if not mm.reached and not txt.reached:
        return "not measured (neither reached the target)"
    if not (mm.reached and txt.reached):
        return f"inconclusive (no interval; only {'multimodal' if mm.reached else 'text-only'} reached the target)"
    return said(judged, 3, unit[1], unit[2], unit[0], txt.value("examples") - mm.value("examples"), at="matched",
                unit="examples")


def modality_first(m: Matched, judged: Judged | None = None) -> list[str]:
    out = ["3. Which modality reaches the target first (paper: text-only questions resist unlearning, so multimodal "
           "forget accuracy should reach its target with fewer forget examples)."]
    for unit in m.units():
        if is_sequential(unit[0]):
            continue
        op = m.operations(unit)[-1]
        tms = m.target_modalities(unit)
        if not {"multimodal", "text"} <= set(tms):
            out.append(f"   {'/'.join(unit):<30} only {', '.join(tms)} is a target modality  -> not measured")
            continue
        mm, txt = m.point(unit, op, "multimodal"), m.point(unit, op, "text")
        desc = [f"{name} (target {_target(p)}): {p.where()}" for name, p in (("multimodal", mm), ("text-only", txt))]
        out.append(f"   {'/'.join(unit):<30} " + "; ".join(desc) + f"  -> {_first(unit, mm, txt, judged)}")
    return out


def matched_findings(m: Matched, judged: Judged | None = None) -> str:
    """The three findings at matched forgetting, in the layout of ``findings.findings``, each
    verdict from ``judged`` (findings.csv)."""
    return "\n".join(finetuned_vs_pretrained(m, judged) + sequential_vs_one_shot(m, judged)
                     + modality_first(m, judged))


def both_findings(s: Summary, m: Matched | None, judged: Judged | None = None) -> str:
    """The findings at the run's budget (as ``findings.findings``, verdicts from ``judged``) and,
    where the run has ``matched.csv``, at matched forgetting; each block under a ``# `` heading line."""
    if m is None:
        return findings(s, judged)
    return f"# At the run's budget\n{findings(s, judged)}\n# At matched forgetting\n{matched_findings(m, judged)}"
