"""How far the verdicts at matched forgetting depend on the comparison target: each matched
comparison of ``sensitivity.csv`` at every ``kept`` level side by side, so that a reader sees
whether a verdict holds at a milder and a stricter level of forgetting than the run's own."""

from __future__ import annotations

import pandas as pd

from .tables import Table

KEY = ("finding", "scenarios", "method", "update", "target_modality", "comparison")


def _said(row) -> str:
    scale, unit = (1, " examples") if "examples" in str(row["comparison"]) else (100, "")
    low, high = (f"{scale * float(row[c]) + 0.0:+.{0 if scale == 1 else 1}f}" for c in ("ci_low", "ci_high"))
    return f"{row['verdict']} {scale * float(row['estimate']) + 0.0:+.{0 if scale == 1 else 1}f}{unit} [{low}, {high}]"


def sensitivity_table(frame: pd.DataFrame | None, kept: float | None = None) -> Table | None:
    """One row per matched comparison, one column per ``kept`` level (the run's own marked);
    None without ``sensitivity.csv``."""
    if frame is None or frame.empty:
        return None
    levels = sorted(frame["kept"].astype(float).unique())
    header = ["finding", "compares", "method", "forgotten on",
              *(f"kept {k:g}" + (" (run's)" if kept is not None and abs(k - kept) < 1e-9 else "") for k in levels)]
    t = Table("matched forgetting: sensitivity to the target",
              "Each comparison at matched forgetting again with the comparison target's kept share at each level "
              "(trajectory.compare: accuracy - chance <= kept x (start - chance)): verdict, estimate and Holm-level "
              "interval (points; finding 3: forget examples), decided over the comparisons at that level (one run's, "
              "or pooled over the runs: worlds, then people). "
              "'-': not compared there (a unit did not reach that target).", header)
    frame = frame.fillna("")
    for key, group in frame.groupby(list(KEY), sort=False):
        finding, scenarios, method, update, tm, _ = key
        by_level = {float(r["kept"]): r for r in group.to_dict("records")}
        label = method if update == "llm" else f"{method} ({update})"
        t.rows.append([str(finding), str(scenarios), label, str(tm) or "-",
                       *(_said(by_level[k]) if k in by_level else "-" for k in levels)])
    return t
