"""Black-box units in the report: the suffix each operation found, what it cost in questions,
how it did on its feedback and on the evaluation, and the queries-to-target curve (the best
objective so far against the questions asked, from ``search.csv``); across runs whose black-box
units declare several suffix lengths, forget and retain accuracy against the length (the research
report's comparison; ``pulse compare`` of one run per length).

A suffix leaves the weights as they were: the attacks that change or read the weights do not
apply to these units (``evaluation/attacks``), and the findings say so: a guardrail, not removal.
"""

from __future__ import annotations

from statistics import mean

from ..blackbox import SEARCHES
from .findings import Summary
from .tables import Table, _cell

GUARDRAIL = ("Black-box units change no weight: their forgetting is a suffix on every prompt, a guardrail and "
             "not removal; the attacks on the weights (relearn, quantize, mia) do not apply to them.")


def _operations(runs) -> list[dict]:
    return [op for r in runs for op in r.operations if str(op.get("queries", "")) != ""]


def search_table(s: Summary, runs) -> Table | None:
    ops = _operations(runs)
    if not ops:
        return None
    t = Table("black-box suffixes",
              "Each black-box operation: the suffix found (empty: none beat no suffix), the questions asked, and "
              "the accuracy (%) after it with the suffix on every prompt, in brackets the change from the starting "
              "model (points). " + GUARDRAIL,
              ["scenario", "method", "operation", "suffix", "questions", "forget", "retain", "general"])
    for op in ops:
        unit, k = (op["scenario"], op["method"], op["update"]), int(op["operation"])
        t.rows.append([op["scenario"], op["method"], str(k), f"'{op['suffix']}'", str(op["queries"]),
                       *(_cell(s, unit, k, split, "all") for split in ("forget", "retain", "general"))])
    return t


def blackbox_findings(runs) -> str:
    return GUARDRAIL + "\n" if _operations(runs) else ""


def queries_plot(runs):
    """Lines: the best objective so far against the questions asked, per black-box unit and
    operation of each run (its ``search.csv``); None without any."""
    lines = []
    for i, r in enumerate(runs):
        if r.search is None or r.search.empty:
            continue
        for (scenario, method, op), rows in r.search.groupby(["scenario", "method", "operation"], sort=False):
            label = f"{str(method).removeprefix('blackbox_')} length {declared_length(r.config, method)}, " \
                    f"{scenario} op {op}"
            lines.append((label, i, rows))
    if not lines:
        return None
    import matplotlib.pyplot as plt

    repeated = {label for label, _, _ in lines if sum(other == label for other, _, _ in lines) > 1}
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for label, i, rows in lines:
        ax.plot(rows["queries"], rows["best_objective"], lw=1.2,
                label=f"{label} (run {i + 1})" if label in repeated else label)
    ax.set_xlabel("questions asked")
    ax.set_ylabel("best objective so far")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def declared_length(config: dict, method: str) -> int | None:
    """The suffix length a run's config gives a search (its default where the config is silent);
    None for a method that is not a search or parameters that no longer validate."""
    if method not in SEARCHES:
        return None
    params = ((config or {}).get("method_params") or {}).get(method) or {}
    try:
        return SEARCHES[method](**params).length
    except Exception:
        return None


def length_points(runs) -> dict[str, dict[int, dict[str, list[float]]]]:
    """search -> length -> {forget, retain}: the accuracies (all questions, the suffix in place) after
    each black-box unit's last operation, one value per run and scenario."""
    out: dict[str, dict[int, dict[str, list[float]]]] = {}
    for r in runs:
        s = Summary(r.rows)
        last: dict[tuple, int] = {}
        for op in _operations([r]):
            unit = (op["scenario"], op["method"], op["update"])
            last[unit] = max(last.get(unit, 0), int(op["operation"]))
        for unit, k in last.items():
            length = declared_length(r.config, unit[1])
            accs = {split: s.get(unit, k, split, "all") for split in ("forget", "retain")}
            if length is None or None in accs.values():
                continue
            at = out.setdefault(unit[1], {}).setdefault(length, {"forget": [], "retain": []})
            for split, value in accs.items():
                at[split].append(value)
    return out


def length_plot(runs):
    """Forget (solid) and retain (dashed) accuracy against the declared suffix length for each
    search, the mean over runs at a length; None unless some search was run at two lengths."""
    points = length_points(runs)
    if not any(len(by_length) > 1 for by_length in points.values()):
        return None
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for method, by_length in sorted(points.items()):
        lengths = sorted(by_length)
        line, = ax.plot(lengths, [100 * mean(by_length[n]["forget"]) for n in lengths], marker="o",
                        label=f"{method} forget")
        ax.plot(lengths, [100 * mean(by_length[n]["retain"]) for n in lengths], marker="s", ls="--",
                color=line.get_color(), label=f"{method} retain")
    ax.set_xticks(sorted({n for by_length in points.values() for n in by_length}))
    ax.set_xlabel("suffix length (words)")
    ax.set_ylabel("accuracy (%), suffix in place")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig
