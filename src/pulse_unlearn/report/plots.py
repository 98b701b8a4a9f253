"""The report's figures, drawn with matplotlib's Agg backend (no display needed).

Each function takes a ``Summary`` (one run, or the mean of several with its spread) and returns
a figure, or None when the run has no data for it (e.g. no sequential scenario). Accuracies
are plotted in percent; error bars are the standard deviation over runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .findings import Summary  # noqa: E402
from ..protocol.scenarios.declared import is_sequential, marker, one_shot_of  # noqa: E402
from ..records import ORACLE, ORACLE_UPDATE  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

matplotlib.rcParams.update({"svg.hashsalt": "pulse", "figure.dpi": 100, "font.size": 9})
MODS = (("multimodal", "multimodal"), ("text", "text-only"))


@dataclass
class Plot:
    name: str  # file stem
    title: str
    caption: str
    figure: object


def _pct(s: Summary, unit, step, split, modality, request="all"):
    """(accuracy %, (below, above)): the error bar's extent under and over the value, from the
    bootstrap interval where one run gave it, else ± the standard deviation over pooled runs."""
    v = s.get(unit, step, split, modality, request)
    if v is None:
        return None, (0.0, 0.0)
    ci = s.interval(unit, step, split, modality, request)
    if ci is not None:
        return 100 * v, (100 * max(v - ci[0], 0.0), 100 * max(ci[1] - v, 0.0))
    spread = s.spread(unit, step, split, modality, request)
    e = 0.0 if spread is None else 100 * spread[0]
    return 100 * v, (e, e)


def _bars(extents) -> list[list[float]]:
    """errorbar's 2 x N ``yerr`` from (below, above) pairs."""
    return [[e[0] for e in extents], [e[1] for e in extents]]


def _label(unit) -> str:
    return unit[1] if unit[2] == "llm" else f"{unit[1]} ({unit[2]})"


def _colors(s: Summary) -> dict[str, object]:
    cmap = plt.get_cmap("tab10")
    methods = list(dict.fromkeys(u[1] for u in s.units()))
    return {m: cmap(i % 10) for i, m in enumerate(methods)}


def sequential_curves(s: Summary):
    """Forget / retain / general accuracy after each sequential operation, multimodal and
    text-only, one line per method; the one-shot run on the same people as a star."""
    units = [u for u in s.units() if is_sequential(u[0])]
    if not units:
        return None
    colors = _colors(s)
    fig, axes = plt.subplots(2, 3, figsize=(11, 6.4), sharex=True, sharey=True, squeeze=False,
                             layout="constrained")
    for row, (mod, mod_title) in enumerate(MODS):
        for col, split in enumerate(("forget", "retain", "general")):
            ax = axes[row][col]
            for u in units:
                steps = list(range(s.last_step[u] + 1))
                pts = [(k, *_pct(s, u, k, split, mod)) for k in steps]
                pts = [p for p in pts if p[1] is not None]
                if not pts:
                    continue
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=_bars([p[2] for p in pts]), marker="o",
                            ms=3, capsize=2, color=colors[u[1]], ls="-" if u[2] == "llm" else "--", label=_label(u))
                one = (one_shot_of(u[0]), u[1], u[2])
                if one in s.last_step:
                    y, e = _pct(s, one, s.last_step[one], split, mod)
                    if y is not None:
                        ax.errorbar([steps[-1]], [y], yerr=_bars([e]), marker="*", ms=11, color=colors[u[1]],
                                    mec="black", mew=0.6, ls="none")
            ax.set_title(f"{split}, {mod_title}")
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("operation (0 = start)")
            if col == 0:
                ax.set_ylabel("accuracy (%)")
    axes[0][0].plot([], [], marker="*", ms=11, color="grey", mec="black", ls="none", label="one-shot (same people)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize=8)
    fig.suptitle("Sequential unlearning: accuracy after each operation")
    return fig


def request_heatmap(s: Summary):
    """Forget accuracy on each request (rows) after each operation (columns), per method: a
    request's row should turn dark at its own operation and stay dark after it."""
    units = [u for u in s.units() if is_sequential(u[0]) and s.requests(u)]
    if not units:
        return None
    fig, axes = plt.subplots(1, len(units), figsize=(3.2 * len(units) + 1.2, 3.6), squeeze=False,
                             layout="constrained")
    image = None
    for ax, u in zip(axes[0], units):
        reqs, steps = s.requests(u), list(range(s.last_step[u] + 1))
        grid = [[(_pct(s, u, k, "forget", "all", r)[0]) for k in steps] for r in reqs]
        image = ax.imshow([[float("nan") if v is None else v for v in row] for row in grid], vmin=0, vmax=100,
                          cmap="viridis", aspect="auto")
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                if v is not None:
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7,
                            color="white" if v < 55 else "black")
        ax.set_xticks(range(len(steps)), [str(k) for k in steps])
        ax.set_yticks(range(len(reqs)), reqs)
        ax.set_xlabel("after operation")
        ax.set_ylabel("request")
        ax.set_title(_label(u))
    fig.colorbar(image, ax=axes[0].tolist(), label="forget accuracy (%)", shrink=0.9)
    fig.suptitle("Sequential unlearning: forget accuracy per request")
    return fig


def selectivity_curves(s: Summary):
    """After each sequential operation k: forget accuracy on request k (just unlearned), on the
    requests still pending, and retain accuracy, one panel per unit: selective forgetting takes
    the first down and leaves the other two where they started (dotted: the pending people's start)."""
    units = [u for u in s.units() if is_sequential(u[0]) and len(s.requests(u)) > 1]
    if not units:
        return None
    fig, axes = plt.subplots(1, len(units), figsize=(3.4 * len(units) + 0.6, 3.4), sharey=True, squeeze=False,
                             layout="constrained")
    for ax, u in zip(axes[0], units):
        ops = list(range(1, s.last_step[u] + 1))
        for label, color, point in (("request k (just unlearned)", "#a33", lambda k: ("forget", str(k))),
                                    ("pending requests", "#c80", lambda k: ("forget", "pending")),
                                    ("retain", "#262", lambda k: ("retain", "all"))):
            pts = [(k, *_pct(s, u, k, point(k)[0], "all", point(k)[1])) for k in ops]
            pts = [p for p in pts if p[1] is not None]
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=_bars([p[2] for p in pts]), marker="o",
                            ms=3, capsize=2, color=color, label=label)
        start, _ = _pct(s, u, 0, "forget", "all", "pending")
        if start is not None:
            ax.axhline(start, color="#c80", lw=0.8, ls=":")
        ax.set_title(_label(u))
        ax.set_xlabel("after operation k")
        ax.set_xticks(ops)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("accuracy (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle("Selectivity: what forgetting one request takes from the others")
    return fig


def modality_bars(s: Summary):
    """How much forget accuracy each unlearning removed, multimodal vs text-only questions: the
    paper's finding that text-only questions resist unlearning."""
    units = [u for u in s.units() if s.get(u, 0, "forget", "multimodal") is not None]
    if not units:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 0.9 * len(units) + 2), 4.2), squeeze=False,
                             layout="constrained")
    x = range(len(units))
    for i, (mod, mod_title) in enumerate(MODS):
        drops, errs, kept = [], [], []
        for u in units:
            start, _ = _pct(s, u, 0, "forget", mod)
            end, err = _pct(s, u, s.last_step[u], "forget", mod)
            ok = start is not None and end is not None
            drops.append(start - end if ok else 0.0)
            errs.append(err[::-1])  # the drop is start - end: the end's upper extent lowers it
            kept.append(100 * end / start if ok and start else 0.0)
        offset = [v + (i - 0.5) * 0.38 for v in x]
        axes[0][0].bar(offset, drops, 0.38, yerr=_bars(errs) if any(map(any, errs)) else None, capsize=2,
                       label=mod_title, color=f"C{i}")
        axes[0][1].bar(offset, kept, 0.38, label=mod_title, color=f"C{i}")
    labels = [f"{u[0]}\n{_label(u)}" for u in units]
    for ax, title in zip(axes[0], ("forget accuracy removed (points)", "forget accuracy kept (% of start)")):
        ax.set_xticks(list(x), labels, rotation=45, ha="right", fontsize=7)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Multimodal vs text-only forgetting")
    return fig


def tradeoff_scatter(s: Summary):
    """Forget vs retain accuracy after unlearning, one point per scenario x method x update; the
    starting models in grey. Down-right of the start is a good trade (forget dropped, retain kept)."""
    units = [u for u in s.units() if s.get(u, s.last_step[u], "retain", "all") is not None]
    if not units:
        return None
    colors = _colors(s)
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    starts = {}
    for u in units:
        fx, fe = _pct(s, u, s.last_step[u], "forget", "all")
        ry, re_ = _pct(s, u, s.last_step[u], "retain", "all")
        if fx is None:
            continue
        ax.errorbar([fx], [ry], xerr=_bars([fe]), yerr=_bars([re_]), marker=marker(u[0]), ms=7,
                    color=colors[u[1]], mfc=colors[u[1]] if u[2] == "llm" else "white", ls="none", capsize=2)
        starts.setdefault(u[0], (_pct(s, u, 0, "forget", "all")[0], _pct(s, u, 0, "retain", "all")[0]))
    for scenario, (fx, ry) in starts.items():
        if fx is not None and ry is not None:
            ax.plot([fx], [ry], marker=marker(scenario), ms=9, color="grey", ls="none",
                    alpha=0.7)
    for m, c in colors.items():
        ax.plot([], [], marker="o", color=c, ls="none", label=m)
    for scenario in starts:
        ax.plot([], [], marker=marker(scenario), color="black", mfc="none", ls="none",
                label=scenario)
    ax.plot([], [], marker="o", color="grey", ls="none", label="start model")
    if any(u[2] != "llm" for u in units):
        ax.plot([], [], marker="o", color="black", mfc="white", ls="none", label="projector + LLM (hollow)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("forget accuracy after unlearning (%)  (lower: more forgotten)")
    ax.set_ylabel("retain accuracy after unlearning (%)  (higher: more kept)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    ax.set_title("Forget / retain trade-off")
    return fig


def _path(frame: pd.DataFrame, x_modality: str, split: str) -> tuple[list[float], list[float]]:
    """One operation's checkpoints as (forget accuracy on ``x_modality``, ``split`` accuracy on all
    questions), in %, in step order; checkpoints missing either are left out."""
    x = frame[(frame.split == "forget") & (frame.modality == x_modality)].set_index("step").accuracy
    y = frame[(frame.split == split) & (frame.modality == "all")].set_index("step").accuracy
    both = x.to_frame("x").join(y.to_frame("y"), how="inner").sort_index()
    return list(100 * both.x), list(100 * both.y)


def _matched_marks(ax, matched, scenario: str, x_modality: str, split: str, colors) -> None:
    """The comparison target as a vertical line (one per distinct target) and each unit's matched point as a star."""
    if matched is None:
        return
    rows = matched[(matched.scenario == scenario) & (matched.target_modality == x_modality)]
    for target in sorted({round(float(t), 4) for t in rows.target.dropna()}):
        ax.axvline(100 * target, color="grey", ls=":", lw=1)
    hit = rows[(rows.reached == 1) & (rows.split == split) & (rows.modality == "all")]
    for r in hit.itertuples():
        ax.plot([100 * r.target], [100 * r.accuracy], marker="*", ms=10, color=colors[r.method], mec="black",
                mew=0.5, ls="none")


def _oracle_marks(ax, s: Summary | None, scenario: str, x_modality: str, split: str) -> None:
    """The retrain oracle after each operation as a black cross at (its forget accuracy on the
    operation's request, its ``split`` accuracy), with both intervals as error bars: where
    forgetting that leaves the rest alone ends."""
    unit = (scenario, ORACLE, ORACLE_UPDATE)
    if s is None or unit not in s.last_step:
        return
    for k in range(1, s.last_step[unit] + 1):
        request = str(k) if is_sequential(scenario) else "all"
        (x, x_bar), (y, y_bar) = _pct(s, unit, k, "forget", x_modality, request), _pct(s, unit, k, split, "all")
        if x is not None and y is not None:
            ax.errorbar([x], [y], xerr=_bars([x_bar]), yerr=_bars([y_bar]), marker="X", ms=8, color="black",
                        ls="none", elinewidth=0.8, capsize=2)
            if is_sequential(scenario):
                ax.annotate(str(k), (x, y), fontsize=7, xytext=(3, -8), textcoords="offset points")


def trajectory_paths(paths: pd.DataFrame, matched: pd.DataFrame | None, x_modality: str, s: Summary | None = None):
    """Retain and general accuracy (rows; all questions) as forget accuracy on ``x_modality`` falls
    (x, inverted: unlearning moves a path to the right), one path per method (colour) and update
    (dashed: projector + LLM) and run, markers at the checkpoints, one panel per scenario; in the
    sequential scenario one path per operation (its own request's forget accuracy), numbered at
    its start. Dotted: the comparison target; stars: where each path reached it; black crosses:
    the retrain oracle (from the summary ``s``, where the runs have one)."""
    scenarios = list(dict.fromkeys(paths.scenario))
    methods = list(dict.fromkeys(paths.method))
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    several = paths.run.nunique() > 1
    fig, axes = plt.subplots(2, len(scenarios), figsize=(3.8 * len(scenarios) + 1.5, 6.4), squeeze=False,
                             sharex=True, sharey=True, layout="constrained")
    for col, scenario in enumerate(scenarios):
        for row, split in enumerate(("retain", "general")):
            ax = axes[row][col]
            for key, frame in paths[paths.scenario == scenario].groupby(["run", "method", "update", "operation"],
                                                                        sort=False):
                x, y = _path(frame, x_modality, split)
                if x:
                    ax.plot(x, y, marker="o", ms=3, color=colors[key[1]], ls="-" if key[2] == "llm" else "--",
                            alpha=0.6 if several else 1.0)
                    if is_sequential(scenario):
                        ax.annotate(str(key[3]), (x[0], y[0]), fontsize=7, xytext=(2, 2), textcoords="offset points")
            _matched_marks(ax, matched, scenario, x_modality, split, colors)
            _oracle_marks(ax, s, scenario, x_modality, split)
            ax.set_xlim(100, 0)
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
            ax.set_title(f"{scenario}: {split}")
            if row == 1:
                ax.set_xlabel(f"forget accuracy, {x_modality} (%)")
            if col == 0:
                ax.set_ylabel(f"{split} accuracy (%)")
    for m, c in colors.items():
        axes[0][0].plot([], [], marker="o", color=c, label=m)
    if (paths["update"] != "llm").any():
        axes[0][0].plot([], [], color="black", ls="--", label="projector + LLM")
    axes[0][0].plot([], [], color="grey", ls=":", label="comparison target")
    axes[0][0].plot([], [], marker="*", ms=10, color="grey", mec="black", ls="none", label="reached it")
    if s is not None and any(u[1] == ORACLE for u in s.units()):
        axes[0][0].plot([], [], marker="X", ms=8, color="black", ls="none", label="retrain oracle")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize=8)
    fig.suptitle(f"Unlearning trajectories: retain and general as {x_modality} forget accuracy falls")
    return fig


def trajectory_plots(paths: pd.DataFrame | None, matched: pd.DataFrame | None, s: Summary | None = None) -> list[Plot]:
    """One trajectory figure per target modality of ``matched`` (multimodal when there is none)."""
    if paths is None:
        return []
    held = set(paths[paths.split == "forget"].modality)
    wanted = list(dict.fromkeys(matched.target_modality)) if matched is not None else ["multimodal"]
    out = []
    for tm in [m for m in wanted if m in held]:
        caption = (f"Retain and general accuracy (all questions) against forget accuracy on {tm} questions, at each "
                   "checkpoint of each operation (markers), one colour per method; the x axis is inverted, so "
                   "unlearning moves right. Dotted: the comparison target; stars: the matched point. Sequential: one "
                   "path per operation, numbered, its x the forget accuracy of that operation's own request. "
                   "Black crosses: the retrain oracle (the starting model trained without the forgotten people), "
                   "where the runs have one, with its bootstrap intervals.")
        out.append(Plot(f"trajectory_{tm}", f"Trajectories ({tm} forget accuracy)", caption,
                        trajectory_paths(paths, matched, tm, s)))
    return out


def all_plots(s: Summary, paths: pd.DataFrame | None = None, matched: pd.DataFrame | None = None) -> list[Plot]:
    """The summary's plots and, where the runs have trajectories (``paths``: trajectory.csv rows
    with a ``run`` column; ``matched``: matched.csv rows alike), the trajectory plots."""
    bars = (" Error bars: the bootstrap interval (people resampled together), or ± the standard deviation over "
            "pooled runs.")
    made = [
        ("sequential", "Sequential unlearning", "Accuracy after each of the sequential operations (rows: multimodal "
         "and text-only questions); the star is the one-shot run on the same forget set." + bars, sequential_curves(s)),
        ("requests", "Forget accuracy per request", "Forget accuracy on each request (rows) after each operation "
         "(columns) of the sequential scenario.", request_heatmap(s)),
        ("selectivity", "Selectivity", "After each sequential operation k: forget accuracy on request k, on the "
         "requests not yet unlearned (pending) and on retain; dotted: the pending people's starting accuracy." + bars,
         selectivity_curves(s)),
        ("modality", "Multimodal vs text-only forgetting", "Forget accuracy removed by unlearning, and the share "
         "of the starting accuracy kept, on multimodal and on text-only questions." + bars, modality_bars(s)),
        ("tradeoff", "Forget / retain trade-off", "Forget vs retain accuracy after unlearning, per scenario, "
         "method and update strategy; grey: the starting models." + bars, tradeoff_scatter(s)),
    ]
    return ([Plot(name, title, caption, fig) for name, title, caption, fig in made if fig is not None]
            + trajectory_plots(paths, matched, s))


def close(plots: list[Plot]) -> None:
    for p in plots:
        plt.close(p.figure)
