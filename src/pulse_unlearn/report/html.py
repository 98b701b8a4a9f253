"""``report.html``: one self-contained file (inline CSS, plots as base64 PNG, no scripts, no
external URLs), so it can be mailed or archived and still open anywhere."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable

import yaml

from .runs import RunFiles
from .tables import Table, to_html

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
 padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}th{background:#f3f3f3}
td.label{text-align:left}td.bad{color:#a33}td.good{color:#262}
.note{color:#555;font-size:.9em;margin:.2em 0}
figure{margin:1em 0 2em}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
.oracle{background:#fbe3c0;border:1px solid #d08a2a;padding:.4em .6em;font-weight:600}
.verdict{font-weight:600;padding:0 .4em;border-radius:3px}
.ok{background:#d9f2d9}.no{background:#f7d4d4}.unclear{background:#eee}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
nav a{margin-right:1em}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _kv_table(d: dict, head=("", "")) -> str:
    rows = "".join(f"<tr><td class='label'>{_e(k)}</td><td class='label'>{_e(v)}</td></tr>" for k, v in d.items())
    return f"<table><thead><tr><th>{_e(head[0])}</th><th>{_e(head[1])}</th></tr></thead><tbody>{rows}</tbody></table>"


def findings_html(text: str) -> str:
    """The findings text (``matched_findings.both_findings``) with each verdict marked: ``# `` lines
    head a block, other header lines hold the paper's numbers, indented lines ours and, after the
    last ``->``, the verdict."""
    out, items = [], []

    def close():
        if items:
            out.append("<ul>" + "".join(items) + "</ul>")
            items.clear()

    for line in text.splitlines():
        if line.startswith("# "):
            close()
            out.append(f"<h3>{_e(line[2:])}</h3>")
            continue
        if not line.startswith(" "):
            close()
            out.append(f"<p><b>{_e(line)}</b></p>")
            continue
        body, _, verdict = line.strip().rpartition("  -> ")
        if not body:
            items.append(f"<li>{_e(line.strip())}</li>")
            continue
        cls = ("ok" if verdict.startswith(("reproduced", "removed")) else
               "no" if verdict.startswith(("not reproduced", "the opposite", "hidden")) else "unclear")
        items.append(f"<li><code>{_e(body)}</code> <span class='verdict {cls}'>{_e(verdict)}</span></li>")
    close()
    return "".join(out)


def _divergence(runs: list[RunFiles]) -> str:
    have = [r for r in runs if r.operations]
    if not have:
        return "<p class='note'>No operations.csv: divergence not known.</p>"
    bad = [(r, op, what) for r in have for op, what in r.troubled()]
    if not bad:
        return ("<p>No unlearning operation diverged (no NaN/inf loss in operations.csv) and no model's answers "
                "collapsed onto one letter.</p>")
    cols = ("scenario", "method", "update", "operation")
    head = "".join(f"<th>{c}</th>" for c in ("run", *cols, "what happened"))
    rows = "".join("<tr>" + "".join(f"<td class='label'>{_e(x)}</td>" for x in (r.name, *(op.get(c) for c in cols),
                                                                                 what)) + "</tr>"
                   for r, op, what in bad)
    return (f"<p><b>{len(bad)} operation(s) diverged or collapsed</b> (NaN/inf loss: training stopped at that step; "
            "collapse: one answer for at least 90% of the questions). Their results are still in the tables; the "
            f"run went on with the other units.</p><table><tr>{head}</tr>{rows}</table>")


def _provenance(runs: list[RunFiles]) -> str:
    out = []
    for r in runs:
        title = f"<h3>{_e(r.name)} <span class='note'>({_e(r.folder)})</span></h3>" if len(runs) > 1 else ""
        out.append(title)
        hashes = {"summary.csv sha256": r.summary_sha256}
        hashes.update({f"fingerprint: {k}": v for k, v in r.environment.get("fingerprints", {}).items()})
        out.append(_kv_table(hashes, ("what", "hash")))
        if r.environment.get("versions"):
            out.append(_kv_table(r.environment["versions"], ("package", "version")))
        if r.environment.get("models"):
            out.append(_kv_table(r.environment["models"], ("model", "path")))
        if r.config:
            text = _e(yaml.safe_dump(r.config, sort_keys=False))
            out.append(f"<details open><summary>config.yaml</summary><pre>{text}</pre></details>")
        else:
            out.append("<p class='note'>No config.yaml in the run folder.</p>")
    return "".join(out)


def page(title: str, subtitle: str, tables: list[Table], plots: Iterable[tuple[str, str, bytes]],
         findings_text: str, runs: list[RunFiles], runs_table: str = "", stopping: str = "") -> str:
    """``plots``: (title, caption, PNG bytes); ``stopping``: the stopping rules, shown under the
    title (marked when an oracle rule is among them)."""
    figs = "".join(
        f"<figure><img alt='{_e(t)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<figcaption><b>{_e(t)}.</b> {_e(c)}</figcaption></figure>" for t, c, png in plots)
    sections = [
        ("runs", "Runs", runs_table) if runs_table else None,
        ("tables", "Tables", "".join(to_html(t) for t in tables)),
        ("plots", "Plots", figs or "<p>No plots: the summary has no data for them.</p>"),
        ("findings", "The paper's findings, and ours", findings_html(findings_text)),
        ("divergence", "Divergence", _divergence(runs)),
        ("provenance", "Config, versions and hashes", _provenance(runs)),
    ]
    sections = [s for s in sections if s]
    nav = "".join(f"<a href='#{i}'>{_e(t)}</a>" for i, t, _ in sections)
    body = "".join(f"<section id='{i}'><h2>{_e(t)}</h2>{content}</section>" for i, t, content in sections)
    stop = "" if not stopping else f"<p class='{'oracle' if 'ORACLE' in stopping else 'note'}'>{_e(stopping)}</p>"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1><p class='note'>{_e(subtitle)}</p>{stop}"
            f"<nav>{nav}</nav>{body}</body></html>\n")
