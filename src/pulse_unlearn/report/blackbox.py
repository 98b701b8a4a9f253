"""Black-box units in the report: the suffix each operation found, what it cost in questions,
how it did on its feedback and on the evaluation, and the queries-to-target curve (the best
objective so far against the questions asked, from ``search.csv``).

A suffix leaves the weights as they were: the attacks that change or read the weights do not
apply to these units (``evaluation/attacks``), and the findings say so: a guardrail, not removal.
"""

from __future__ import annotations

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


def queries_plot(search):
    """Lines: the best objective so far against the questions asked, per black-box unit and
    operation (``search``: search.csv rows with a ``run`` column); None without any."""
    if search is None or search.empty:
        return None
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (_, scenario, method, op), rows in search.groupby(["run", "scenario", "method", "operation"], sort=False):
        ax.plot(rows["queries"], rows["best_objective"], lw=1.2, label=f"{scenario}/{method} op {op}")
    ax.set_xlabel("questions asked")
    ax.set_ylabel("best objective so far")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
