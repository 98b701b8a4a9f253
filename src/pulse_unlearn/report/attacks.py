"""The residual-knowledge section: what the recovery attacks bring back (``attacks.csv``).

Per scenario a table (method x update x operation; per attack, setting and split: the attacked
accuracy and its recovery, or the attack's metric), a plot of the recoveries, and a finding per
unit, read after its last attacked operation from the recoveries on the forget split:

- *hidden*: some attack brings back at least ``HIDDEN`` of what was forgotten (named, with how
  much), and its interval lies above ``REMOVED``;
- *removed*: no attack brings back more than ``REMOVED``, and every counted attack's interval lies
  below ``HIDDEN``;
- *inconclusive*: an estimate in one zone whose interval reaches the other;
- *unclear*: in between, or no recovery is defined (nothing was forgotten, or no attack scored).

The intervals are each run's recovery intervals (people resampled together, ``attacks.csv``);
pooled over runs there is none, and the finding is read from the mean recoveries and says so.

Only attacks under which the starting model stands at least ``MIN_FORGOTTEN`` above the unlearned
model count: with a smaller gap a recovery is a ratio of noise (the world's neighbours questions,
which its starting model answers barely above chance, gave "100%" from 2.4 points); the finding
names the attacks it left out.

``consistency`` adds *broken alignment* where the forget pairs answered by name but not with the
image grew by at least ``ALIGNMENT`` (absolute share) from the starting model: the knowledge is
reached by name, the image no longer leads to it. ``pulse compare`` pools the runs (mean ± std).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .tables import Cell, Table

if TYPE_CHECKING:
    import pandas as pd

HIDDEN = 0.5
REMOVED = 0.2
ALIGNMENT = 0.10
MIN_FORGOTTEN = 0.10  # start - unlearned (accuracy) below this: the attack's recovery is not counted
KEY = ("scenario", "method", "update", "operation", "attack", "setting", "split", "modality", "metric")
INTERVALS = ("ci_low", "ci_high", "recovery_ci_low", "recovery_ci_high")


def pool_attacks(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    """attacks.csv rows of one or more runs (a ``run`` column) averaged per key: ``value``,
    ``unlearned``, ``start``, ``recovery`` means, their ``*_std`` across runs, and ``runs``; the
    value's and the recovery's intervals are kept where one run gave the row."""
    if frame is None or frame.empty:
        return None
    import pandas as pd

    frame = frame.assign(run=frame["run"] if "run" in frame else 0)
    for c in INTERVALS:
        if c not in frame:
            frame[c] = float("nan")  # attacks.csv of an older run
    for c in ("value", "unlearned", "start", "recovery", *INTERVALS):
        frame[c] = pd.to_numeric(frame[c], errors="coerce")
    grouped = frame.groupby(list(KEY), sort=False, dropna=False)
    out = grouped[["value", "unlearned", "start", "recovery", *INTERVALS]].mean()
    spread = grouped[["value", "recovery"]].std().rename(columns=lambda c: f"{c}_std")
    out = out.join(spread).join(grouped["run"].nunique().rename("runs")).reset_index()
    out.loc[out.runs > 1, list(INTERVALS)] = float("nan")  # the mean of intervals is none
    return out


def _headline(pooled: pd.DataFrame) -> pd.DataFrame:
    """One row per unit, operation, attack, setting, split and metric: modality ``all`` where the
    attack scored both, else its one modality (image attacks: multimodal; consistency: pair)."""
    rank = pooled.modality.map({"all": 0}).fillna(1)
    return (pooled.assign(_rank=rank).sort_values("_rank", kind="stable")
            .drop_duplicates([k for k in KEY if k != "modality"]).drop(columns="_rank"))


def _label(row) -> str:
    setting = f" {row.setting}" if isinstance(row.setting, str) and row.setting else ""
    metric = "" if row.metric == "accuracy" else f" {row.metric}"
    return f"{row.attack}{setting}{metric} ({row.split})"


@dataclass
class AttackCell(Cell):
    recovery: float | None = None
    recovery_std: float | None = None
    recovery_interval: tuple[float, float] | None = None
    share: bool = True  # a share/accuracy in 0..1 shown in percent; an AUC as it is

    def text(self, pm: str = "±", minus: str = "-") -> str:
        if self.value is None:
            return "-"
        out = f"{100 * self.value:.1f}" if self.share else f"{self.value:.3f}"
        if self.interval is not None and self.share:
            out += f" [{100 * self.interval[0]:.1f}, {100 * self.interval[1]:.1f}]"
        if self.std is not None:
            out += f" {pm} {100 * self.std:.1f}" if self.share else f" {pm} {self.std:.3f}"
        if self.recovery is not None:
            r = f"{self.recovery:.2f}".replace("-", minus)
            if self.recovery_interval is not None:
                r += " [" + ", ".join(f"{x:.2f}".replace("-", minus) for x in self.recovery_interval) + "]"
            out += f" (rec {r}" + (f" {pm} {self.recovery_std:.2f}" if self.recovery_std is not None else "") + ")"
        return out


def _num(x) -> float | None:
    return None if x != x else float(x)  # NaN -> None


def _interval(row, prefix: str = "") -> tuple[float, float] | None:
    low, high = _num(getattr(row, f"{prefix}ci_low")), _num(getattr(row, f"{prefix}ci_high"))
    return None if low is None or high is None else (low, high)


def attack_tables(pooled: pd.DataFrame | None) -> list[Table]:
    """Per scenario, method x update x operation rows, one column per attack, setting, split and metric."""
    if pooled is None:
        return []
    head = _headline(pooled)
    tables = []
    for scenario, rows in head.groupby("scenario", sort=False):
        columns = list(dict.fromkeys(_label(r) for r in rows.itertuples()))
        t = Table(f"{scenario}: residual knowledge (recovery attacks)",
                  "Accuracy (%) under each attack [its bootstrap interval, one run's] (an AUC for mia; shares of "
                  "question pairs for consistency), "
                  "and its recovery = (attacked - unlearned) / (starting model under the same attack - unlearned) "
                  "[its interval, the same people drawn for all three]: "
                  "0 nothing comes back, 1 all of it. Operation 0 is the starting model.",
                  ["method", "update", "op", *columns])
        for (method, update, op), unit in rows.groupby(["method", "update", "operation"], sort=False):
            cells = {_label(r): AttackCell(_num(r.value), _num(r.value_std), recovery=_num(r.recovery),
                                           recovery_std=_num(r.recovery_std), share=r.metric != "auc",
                                           interval=_interval(r), recovery_interval=_interval(r, "recovery_"))
                     for r in unit.itertuples()}
            t.rows.append([method, update, str(op)] + [cells.get(c, AttackCell(None)) for c in columns])
        tables.append(t)
    return tables


def _name(row) -> str:
    return f"{row.attack}" + (f" {row.setting}" if isinstance(row.setting, str) and row.setting else "")


def _unit_finding(unit: pd.DataFrame, start: pd.DataFrame) -> str:
    defined = [r for r in unit.itertuples()
               if r.split == "forget" and r.metric == "accuracy" and r.recovery == r.recovery]
    recs = [(r, r.recovery) for r in defined if r.start - r.unlearned >= MIN_FORGOTTEN]
    small = [r for r in defined if r.start - r.unlearned < MIN_FORGOTTEN]
    if not recs:
        verdict = "unclear (no recovery is defined on the forget split)"
    else:
        best, value = max(recs, key=lambda x: x[1])
        name, ci = _name(best), _interval(best, "recovery_")
        pooled = int(best.runs) > 1
        said = f"{value:.0%}" + (f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else "")
        if value >= HIDDEN and (pooled or (ci is not None and ci[0] > REMOVED)):
            verdict = (f"hidden: {name} brings back {said} of what was forgotten "
                       f"({100 * best.unlearned:.1f}% -> {100 * best.value:.1f}%; the starting model under it "
                       f"{100 * best.start:.1f}%)")
        elif value >= HIDDEN:
            verdict = f"inconclusive: {name} brings back {said}, its interval reaches {REMOVED:.0%}"
        elif value <= REMOVED:
            highs = [_interval(r, "recovery_") for r, _ in recs]
            reach = [f"{_name(r)} up to {h[1]:.0%}" for (r, _), h in zip(recs, highs) if h and h[1] >= HIDDEN]
            if not pooled and (reach or any(h is None for h in highs)):
                verdict = (f"inconclusive: no attack brings back more than {max(value, 0):.0%} (most: {name}), "
                           + ("but " + ", ".join(reach) if reach else "but some recovery has no interval"))
            else:
                verdict = f"removed: no attack brings back more than {max(value, 0):.0%} (most: {name}" + \
                    (f" {said})" if ci else ")")
        else:
            verdict = f"unclear: {name} brings back {said}"
        if pooled:
            verdict += f" (the mean over {int(best.runs)} runs; no interval)"
    if small:
        verdict += "; not counted (the starting model under it is less than " + f"{100 * MIN_FORGOTTEN:.0f}" + \
            " points above the unlearned model): " + ", ".join(
                f"{_name(r)} ({100 * (r.start - r.unlearned):.1f} points)" for r in small)

    def misaligned(rows):
        pick = (rows.attack == "consistency") & (rows.split == "forget")
        return rows[pick & (rows.metric == "image_wrong_text_right")]

    split, base = misaligned(unit), misaligned(start)
    if len(split) and len(base) and split.value.iloc[0] - base.value.iloc[0] >= ALIGNMENT:
        verdict += (f"; broken alignment: forget facts answered by name but not with the image "
                    f"{100 * base.value.iloc[0]:.0f}% -> {100 * split.value.iloc[0]:.0f}% of pairs")
    return verdict


def residual_findings(pooled: pd.DataFrame | None) -> str:
    """The finding per unit after its last attacked operation, as a findings block."""
    if pooled is None:
        return ""
    head = _headline(pooled)
    lines = [f"# Residual knowledge (hidden: an attack brings back >= {HIDDEN:.0%} of what was forgotten, "
             f"its interval above {REMOVED:.0%}; removed: none brings back more than {REMOVED:.0%}, every "
             f"interval below {HIDDEN:.0%}; inconclusive otherwise)"]
    for scenario, rows in head.groupby("scenario", sort=False):
        lines.append(f"{scenario}: after the last attacked operation")
        for (method, update), unit in rows.groupby(["method", "update"], sort=False):
            last = unit[unit.operation == unit.operation.max()]
            if int(unit.operation.max()) == 0:
                continue
            lines.append(f"   {method}/{update}  -> {_unit_finding(last, unit[unit.operation == 0])}")
    return "\n".join(lines) + "\n"


def recovery_plot(pooled: pd.DataFrame | None):
    """Bars: the recovery of each attack (forget split) per unit after its last operation, with
    its interval where one run gave it, one panel per scenario; None without any defined recovery."""
    if pooled is None:
        return None
    head = _headline(pooled)
    head = head[(head.split == "forget") & head.recovery.notna() & (head.operation > 0)]
    if head.empty:
        return None
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys(head.scenario))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(5 * len(scenarios), 3.6), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios):
        rows = head[head.scenario == scenario]
        rows = rows[rows["operation"] == rows.groupby(["method", "update"])["operation"].transform("max")]
        units = list(dict.fromkeys(f"{m}/{u}" for m, u in zip(rows["method"], rows["update"])))
        attacks = list(dict.fromkeys(_label(r) for r in rows.itertuples()))
        width = 0.8 / max(len(attacks), 1)
        for j, a in enumerate(attacks):
            mine = {f"{r.method}/{r.update}": r for r in rows.itertuples() if _label(r) == a}
            heights = [mine[u].recovery if u in mine else 0.0 for u in units]
            spans = [_interval(mine[u], "recovery_") if u in mine else None for u in units]
            errors = [[max(h - s[0], 0.0) if s else 0.0 for h, s in zip(heights, spans)],  # a ratio's
                      [max(s[1] - h, 0.0) if s else 0.0 for h, s in zip(heights, spans)]]  # interval may miss it
            ax.bar([i + j * width for i in range(len(units))], heights, width, label=a,
                   yerr=errors if any(spans) else None, capsize=2, error_kw={"lw": 0.8})
        ax.axhline(HIDDEN, color="#a33", lw=0.8, ls="--")
        ax.axhline(REMOVED, color="#262", lw=0.8, ls=":")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(units))], units, rotation=20)
        ax.set_title(scenario)
        ax.set_ylabel("recovery")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig
