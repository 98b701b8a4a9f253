"""`pulse report` and `pulse compare`: built from a small hand-written summary.csv, the tables say
what the CSV says, the comparison averages seeds, bad input is one line, and report.html opens
in headless Chromium with no console errors and visible plots."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import pytest

from pulse_unlearn.cli import main
from pulse_unlearn.progress import RunLog
from pulse_unlearn.report.build import build_compare, build_report

HEADER = "scenario,method,update,step,request,split,modality,n,accuracy,scoring"
COLUMNS = {"forget mm": ("forget", "multimodal"), "forget text": ("forget", "text"),
           "retain mm": ("retain", "multimodal"), "retain text": ("retain", "text"), "general": ("general", "all")}
# (scenario, method, step) -> accuracies of forget mm, forget text, retain mm, retain text, general mm, general text
HAND = {
    ("finetuned", "ga", 0): (0.78, 0.768, 0.80, 0.82, 0.60, 0.64),
    ("finetuned", "ga", 1): (0.096, 0.352, 0.55, 0.61, 0.52, 0.58),
    ("finetuned", "npo", 0): (0.78, 0.768, 0.80, 0.82, 0.60, 0.64),
    ("finetuned", "npo", 1): (0.30, 0.50, 0.70, 0.74, 0.57, 0.61),
    ("pretrained", "ga", 0): (0.90, 0.95, 0.92, 0.94, 0.60, 0.64),
    ("pretrained", "ga", 1): (0.40, 0.70, 0.30, 0.35, 0.05, 0.06),
    ("sequential", "ga", 0): (0.78, 0.768, 0.80, 0.82, 0.60, 0.64),
    ("sequential", "ga", 1): (0.50, 0.70, 0.60, 0.70, 0.40, 0.44),
    ("sequential", "ga", 2): (0.10, 0.20, 0.20, 0.25, 0.10, 0.12),
}
# sequential forget accuracy per request (all modalities): (step, request) -> accuracy
REQUESTS = {(0, "1"): 0.8, (0, "2"): 0.7, (1, "1"): 0.1, (1, "2"): 0.65, (2, "1"): 0.12, (2, "2"): 0.08,
            (1, "done"): 0.1, (1, "pending"): 0.65, (2, "done"): 0.1, (0, "pending"): 0.75}


def summary_csv(shift: float = 0.0) -> str:
    """The hand-written summary; ``shift`` moves every accuracy after step 0 (another seed)."""
    lines = [HEADER]
    for (scenario, method, step), acc in HAND.items():
        acc = [a + (shift if step else 0.0) for a in acc]
        cells = [("forget", "multimodal", acc[0]), ("forget", "text", acc[1]), ("retain", "multimodal", acc[2]),
                 ("retain", "text", acc[3]), ("general", "multimodal", acc[4]), ("general", "text", acc[5])]
        for split in ("forget", "retain", "general"):
            mm, txt = [a for s, _, a in cells if s == split]
            cells.append((split, "all", (mm + txt) / 2))
        for split, modality, a in cells:
            lines.append(f"{scenario},{method},llm,{step},all,{split},{modality},50,{a:.6f},likelihood")
        if scenario == "sequential":
            for (k, request), a in REQUESTS.items():
                for modality in ("multimodal", "text", "all") if k == step else ():
                    lines.append(f"sequential,ga,llm,{step},{request},forget,{modality},20,"
                                 f"{a + (shift if step else 0):.6f},likelihood")
    return "\n".join(lines) + "\n"


def make_run(folder: Path, seed: int = 0, shift: float = 0.0, lr: float = 5e-4, operations: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.csv").write_text(summary_csv(shift))
    (folder / "config.yaml").write_text(f"name: {folder.name}\nseed: {seed}\nunlearn: {{lr: {lr}, seed: {seed}}}\n")
    (folder / "environment.json").write_text(json.dumps({"versions": {"torch": "2.x"},
                                                         "fingerprints": {"config": "abc123"}}))
    if operations is not None:
        (folder / "operations.csv").write_text(operations)
    return folder


def md_tables(text: str) -> dict[str, list[dict]]:
    """tables.md as {title: [row as {column: cell}]}."""
    out, title, header = {}, None, None
    for line in text.splitlines():
        if line.startswith("## "):
            title, header = line[3:], None
            out[title] = []
        elif line.startswith("|") and title:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header is None:
                header = cells
            elif not set(line) <= set("|-: "):
                out[title].append(dict(zip(header, cells)))
    return out


def csv_acc(text: str) -> dict[tuple, float]:
    return {(r["scenario"], r["method"], int(r["step"]), r["request"], r["split"], r["modality"]): float(r["accuracy"])
            for r in csv.DictReader(io.StringIO(text))}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    ops = ("scenario,method,update,operation,steps,first_loss,last_loss,diverged_at,top_answer,top_share,collapsed,"
           "seconds\nfinetuned,ga,llm,1,10,0.1,-3.0,,C,0.3,0,1.0\nsequential,ga,llm,2,10,-1.0,nan,7,A,0.4,0,1.0\n"
           "sequential,ga,llm,3,10,-1.0,-9.0,,B,0.97,1,1.0\n")
    run = make_run(tmp_path_factory.mktemp("runs") / "hand", operations=ops)
    return run, build_report(run)


def test_report_files(report):
    run, html_path = report
    out = run / "report"
    assert html_path == out / "report.html"
    for name in ("tables.md", "tables.tex", "sequential.png", "sequential.svg", "requests.png", "requests.svg",
                 "selectivity.png", "selectivity.svg", "modality.png", "modality.svg", "tradeoff.png", "tradeoff.svg"):
        assert (out / name).stat().st_size > 0, name
    from PIL import Image

    with Image.open(out / "sequential.png") as im:
        assert im.size[0] > 500
    assert (out / "tradeoff.svg").read_text(encoding="utf-8").lstrip().startswith("<?xml")
    tex = (out / "tables.tex").read_text(encoding="utf-8")
    assert r"\begin{tabular}" in tex and "& 78.0 &" in tex and "9.6 ($-$68.4)" in tex


def test_tables_md_numbers_equal_the_csv(report):
    run, _ = report
    acc = csv_acc((run / "summary.csv").read_text(encoding="utf-8"))
    tables = md_tables((run / "report" / "tables.md").read_text(encoding="utf-8"))
    checked = 0
    for scenario, method, end in (("finetuned", "ga", 1), ("finetuned", "npo", 1), ("pretrained", "ga", 1),
                                  ("sequential", "ga", 2)):
        rows = tables[f"{scenario}: after unlearning"]
        assert rows[0]["method"] == "start model"
        row = next(r for r in rows if r["method"] == method)
        assert row["ops"] == str(end)
        for col, (split, modality) in COLUMNS.items():
            start, after = acc[(scenario, method, 0, "all", split, modality)], acc[(scenario, method, end, "all", split,
                                                                                   modality)]
            assert rows[0][col] == f"{100 * start:.1f}"
            assert row[col] == f"{100 * after:.1f} ({100 * (after - start):+.1f})", (scenario, method, col)
            checked += 1
    seq = tables["sequential: ga / llm, after each operation"]
    assert [r["op"] for r in seq] == ["0", "1", "2"]
    assert seq[0]["forget done mm"] == "-" and seq[0]["forget pending"] == "75.0"
    assert seq[1]["forget pending"] == "65.0" and seq[2]["forget pending"] == "-"
    assert seq[2]["forget done mm"] == f"{100 * acc[('sequential', 'ga', 2, 'done', 'forget', 'multimodal')]:.1f}"
    assert seq[1]["forget done text"] == "10.0"
    assert seq[2]["general"] == "11.0 (-51.0)"
    assert checked == 20


def test_report_shows_divergence_and_findings(report):
    run, html_path = report
    md = (run / "report" / "tables.md").read_text(encoding="utf-8")
    assert "## Divergence" in md and "sequential / ga / llm, operation 2: loss nan at step 7" in md
    assert "sequential / ga / llm, operation 3: answers collapsed: 97% 'B'" in md
    page = html_path.read_text(encoding="utf-8")
    assert "2 operation(s) diverged or collapsed" in page and "answers collapsed: 97% &#x27;B&#x27;" in page
    assert "reproduced" in page and "78.0% -&gt; 9.6%" in page  # the paper's numbers next to ours
    assert "abc123" in page and "summary.csv sha256" in page
    # self-contained: no scripts, no external resources
    assert "<script" not in page and not re.search(r"(src|href)=['\"]?(https?:)?//", page)
    assert page.count("data:image/png;base64,") == 5


def test_compare_mean_and_std(tmp_path):
    runs = [make_run(tmp_path / f"seed{i}", seed=i, shift=s) for i, s in enumerate((0.0, 0.02, 0.07))]
    other = make_run(tmp_path / "lr", seed=0, lr=1e-3, shift=-0.05)
    out = build_compare([*runs, other, runs[0]], tmp_path / "cmp")  # a folder twice counts once
    tables = md_tables((tmp_path / "cmp" / "tables.md").read_text(encoding="utf-8"))
    rows = tables["finetuned: after unlearning"]
    pooled = next(r for r in rows if r["method"] == "ga [unlearn.lr=0.0005]")
    single = next(r for r in rows if r["method"] == "ga [unlearn.lr=0.001]")
    assert pooled["runs"] == "3" and single["runs"] == "1"
    values = [HAND[("finetuned", "ga", 1)][0] + s for s in (0.0, 0.02, 0.07)]
    mean, std = statistics.mean(values), statistics.stdev(values)
    delta = mean - HAND[("finetuned", "ga", 0)][0]
    assert pooled["forget mm"] == f"{100 * mean:.1f} ± {100 * std:.1f} ({100 * delta:+.1f})"
    assert single["forget mm"] == f"{100 * (values[0] - 0.05):.1f} ({100 * (values[0] - 0.05 - 0.78):+.1f})"
    assert rows[0]["method"] == "start model" and rows[0]["forget mm"] == "78.0 ± 0.0"  # same start model
    page = out.read_text(encoding="utf-8")
    assert "Runs" in page and "seed2" in page
    assert r"$\pm$" in (tmp_path / "cmp" / "tables.tex").read_text(encoding="utf-8")


def test_partial_summary_builds(tmp_path):
    """A run of one scenario with forget rows only (e.g. cut short) still gives a report, with the
    plots it has data for."""
    run = tmp_path / "partial"
    run.mkdir()
    (run / "summary.csv").write_text(HEADER + "\n" + "".join(
        f"pretrained,npo,llm,{k},all,forget,{m},5,{a},logits\n"
        for k, m, a in ((0, "multimodal", 0.0), (0, "text", 0.6), (1, "multimodal", 0.0), (1, "text", 0.2))))
    page = build_report(run).read_text(encoding="utf-8")
    assert sorted(p.name for p in (run / "report").glob("*.png")) == ["modality.png"]
    assert "0.0 (+0.0)" in (run / "report" / "tables.md").read_text(encoding="utf-8") and "logits scoring" in page


def one_error_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("text, message", [
    ("scenario,method\nfinetuned,ga\n", "missing column(s) update, step"),
    (HEADER + "\nfinetuned,ga,llm,0,all,forget,text,5,high,likelihood\n", "summary.csv:2: step must be an integer"),
    (HEADER + "\nfinetuned,ga,llm,0,all,forget,text,5,1.5,likelihood\n", "accuracy 1.5 is outside [0, 1]"),
    (HEADER + "\nfinetuned,ga,llm,0,all,forget\n", "summary.csv:2: wrong number of fields"),
    (HEADER + "\n", "no rows"),
])
def test_malformed_summary_is_one_line_exit_2(tmp_path, capsys, text, message):
    (tmp_path / "summary.csv").write_text(text)
    assert message in one_error_line(capsys, ["report", str(tmp_path)])
    assert not (tmp_path / "report").exists()


def test_missing_run_is_one_line_exit_2(tmp_path, capsys):
    assert "no such run folder" in one_error_line(capsys, ["report", str(tmp_path / "nope")])
    assert "no summary.csv" in one_error_line(capsys, ["report", str(tmp_path)])
    make_run(tmp_path / "a")
    line = one_error_line(capsys, ["compare", str(tmp_path / "a"), str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert "nope: no such run folder" in line


def test_cli_report_prints_the_path(tmp_path, capsys):
    run = make_run(tmp_path / "r")
    assert main(["report", str(run), "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "o" / "report.html")


def test_run_log_waits_for_the_run_folder(tmp_path):
    shown = []
    log = RunLog(tmp_path / "run", shown.append)
    log("world: built")
    assert not (tmp_path / "run").exists()  # a run folder is only made by the run itself
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("name: x\n")
    log("[finetuned] done")
    lines = (tmp_path / "run" / "run.log").read_text(encoding="utf-8").splitlines()
    assert shown == ["world: built", "[finetuned] done"]
    assert [ln.split(" ", 2)[2] for ln in lines] == shown


# --- headless Chromium -----------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """Just enough of the DevTools protocol, over --remote-debugging-pipe (fds 3 and 4)."""

    def __init__(self, profile: Path):
        import fcntl

        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        ends = [fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)]
        os.close(to_r)
        os.close(from_w)

        def child():
            os.dup2(ends[0], 3)
            os.dup2(ends[1], 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-pipe",
             f"--user-data-dir={profile}", "--window-size=1280,900", "about:blank"],
            pass_fds=(3, 4), preexec_fn=child, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for fd in ends:
            os.close(fd)
        self.w, self.r, self.buf, self.id, self.events = to_w, from_r, b"", 0, []

    def _read(self) -> dict:
        while b"\0" not in self.buf:
            ready, _, _ = select.select([self.r], [], [], 60)
            chunk = os.read(self.r, 1 << 20) if ready else b""
            if not chunk:
                raise RuntimeError("chromium stopped answering")
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def wait(self, pred) -> dict:
        while True:
            m = self._read()
            if pred(m):
                return m
            self.events.append(m)

    def send(self, method: str, session: str | None = None, **params) -> dict:
        self.id += 1
        msg = {"id": self.id, "method": method, "params": params, **({"sessionId": session} if session else {})}
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        reply = self.wait(lambda m, i=self.id: m.get("id") == i)
        assert "error" not in reply, reply
        return reply["result"]

    def close(self):
        try:
            self.send("Browser.close")
            self.proc.wait(10)
        except Exception:
            self.proc.kill()
        os.close(self.w)
        os.close(self.r)


def problems(events: list[dict]) -> list[str]:
    """Console errors and warnings, uncaught exceptions, browser log errors, and any request that
    leaves the file (a self-contained page loads nothing but itself and data: URLs)."""
    out = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            out.append(f"console.{p['type']}: {p.get('args')}")
        elif method == "Runtime.exceptionThrown":
            out.append(f"exception: {p.get('exceptionDetails')}")
        elif method == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
            out.append(f"log: {p['entry'].get('text')}")
        elif method == "Network.requestWillBeSent" and not p["request"]["url"].startswith(("file:", "data:")):
            out.append(f"request: {p['request']['url']}")
        elif method == "Network.loadingFailed":
            out.append(f"failed: {p.get('errorText')}")
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium); "
                    ".ci/run installs it")
def test_report_html_in_headless_chromium(report):
    from PIL import Image, ImageStat

    _, html_path = report
    with tempfile.TemporaryDirectory() as profile:
        browser = Chromium(Path(profile))
        try:
            target = browser.send("Target.createTarget", url="about:blank")["targetId"]
            session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            for domain in ("Runtime", "Log", "Page", "Network"):
                browser.send(f"{domain}.enable", session)
            browser.send("Page.navigate", session, url=html_path.as_uri())
            browser.wait(lambda m: m.get("method") == "Page.loadEventFired")
            check = "JSON.stringify([...document.images].map(i => [i.complete && i.naturalWidth, " \
                    "i.getBoundingClientRect().left + scrollX, i.getBoundingClientRect().top + scrollY, " \
                    "i.getBoundingClientRect().width, i.getBoundingClientRect().height]))"
            images = json.loads(browser.send("Runtime.evaluate", session, expression=check)["result"]["value"])
            size = browser.send("Page.getLayoutMetrics", session)["cssContentSize"]
            shot = browser.send("Page.captureScreenshot", session, format="png", captureBeyondViewport=True,
                                clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
            events = list(browser.events)
        finally:
            browser.close()
    assert problems(events) == []
    assert len(images) == 5 and all(i[0] > 0 for i in images), images  # every plot decoded
    png = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("RGB")
    assert png.size[1] > 2000  # the whole page, not just the first screen
    for _, x, y, w, h in images:  # where each plot is on the page, the screenshot is not blank
        crop = png.crop((int(x), int(y), int(x + w), int(y + h)))
        assert w > 300 and h > 150
        colours = len(set(crop.resize((200, 100)).getdata()))
        assert colours > 20 and max(ImageStat.Stat(crop).stddev) > 20, (x, y, colours)


def parity_run(folder: Path, seed: int = 0, r1_end: float = 0.15) -> Path:
    """A scoring=mllmu run: forget_test rows, cloze hits and a generation row with ROUGE/BLEU."""
    head = HEADER + ",rouge1,rouge2,rougeL,bleu\n"
    rows = []
    for step, (f_mm, test_mm, r1, bleu, cloze) in enumerate([(0.8, 0.7, 0.6, 0.3, 0.9), (0.2, 0.4, r1_end, 0.05, 0.1)]):
        cells = (("forget", "multimodal", f_mm), ("forget", "text", 0.7), ("retain", "multimodal", 0.8),
                 ("retain", "text", 0.8), ("general", "all", 0.5), ("forget_test", "multimodal", test_mm),
                 ("forget_cloze", "all", cloze))
        for split, modality, acc in cells:
            rows.append(f"finetuned,ga,llm,{step},all,{split},{modality},10,{acc},mllmu,,,,")
        rows.append(f"finetuned,ga,llm,{step},all,forget_generation,all,10,{r1 / 2},mllmu,{r1},0.1,{r1 / 2},{bleu}")
    folder.mkdir()
    (folder / "summary.csv").write_text(head + "\n".join(rows) + "\n")
    (folder / "config.yaml").write_text(f"name: parity\nseed: {seed}\n")
    return folder


def test_report_shows_forget_test_and_generation_metrics(tmp_path):
    """A parity run's extra rows: the forget_test split as a column of the scenario table, cloze hits
    and ROUGE-1/2/L F and BLEU in their own table, each after the last operation with its change."""
    run = parity_run(tmp_path / "parity")
    build_report(run)
    tables = md_tables((run / "report" / "tables.md").read_text(encoding="utf-8"))
    main_row = tables["finetuned: after unlearning"][1]
    assert main_row["forget test mm"] == "40.0 (-30.0)" and main_row["forget mm"] == "20.0 (-60.0)"
    (row,) = tables["finetuned: cloze and generation (scoring=mllmu)"]
    assert row == {"method": "ga", "update": "llm", "ops": "1", "forget cloze": "10.0 (-80.0)",
                   "forget rouge1": "15.0 (-45.0)", "forget rouge2": "10.0 (+0.0)", "forget rougeL": "7.5 (-22.5)",
                   "forget bleu": "5.0 (-25.0)"}
    html = (run / "report" / "report.html").read_text(encoding="utf-8")
    assert "forget test mm" in html and "cloze and generation" in html
    plain = make_run(tmp_path / "plain")  # a run without those rows has neither the column nor the table
    build_report(plain)
    text = (plain / "report" / "tables.md").read_text(encoding="utf-8")
    assert "forget test mm" not in text and "cloze and generation" not in text


def test_compare_averages_generation_metrics(tmp_path):
    """``pulse compare`` pools ROUGE/BLEU over seeds like accuracy: mean ± sample std."""
    runs = [parity_run(tmp_path / f"s{i}", seed=i, r1_end=r1) for i, r1 in enumerate((0.15, 0.25))]
    build_compare(runs, tmp_path / "cmp")
    tables = md_tables((tmp_path / "cmp" / "tables.md").read_text(encoding="utf-8"))
    (row,) = tables["finetuned: cloze and generation (scoring=mllmu)"]
    mean, std = statistics.mean((0.15, 0.25)), statistics.stdev((0.15, 0.25))
    assert row["forget rouge1"] == f"{100 * mean:.1f} ± {100 * std:.1f} ({100 * (mean - 0.6):+.1f})"
    assert row["forget rouge2"] == "10.0 ± 0.0 (+0.0)" and row["forget cloze"] == "10.0 ± 0.0 (-80.0)"


def test_the_general_benchmark_per_category_is_a_table_with_its_change():
    """Start 80 then 60 on world_city (-20 points), 50 then 50 on colour; rows over all are not in it."""
    from pulse_unlearn.report.findings import Summary
    from pulse_unlearn.report.tables import category_tables, to_markdown

    def row(step, category, acc, low, high):
        return {"scenario": "pretrained", "method": "ga", "update": "llm", "step": step, "request": "all",
                "split": "general", "category": category, "modality": "all", "accuracy": acc,
                "ci_low": low, "ci_high": high}

    s = Summary([row(0, "all", 0.7, 0.6, 0.8), row(1, "all", 0.55, 0.45, 0.65), row(0, "world_city", 0.8, 0.7, 0.9),
                 row(1, "world_city", 0.6, 0.5, 0.7), row(0, "colour", 0.5, 0.4, 0.6), row(1, "colour", 0.5, 0.4, 0.6)])
    assert s.get(("pretrained", "ga", "llm"), 1, "general", "all") == 0.55
    tables = md_tables(to_markdown(category_tables(s)))
    rows = tables["pretrained: general per category"]
    assert rows[0]["world_city"] == "80.0 [70.0, 90.0]"
    assert rows[1]["world_city"] == "60.0 [50.0, 70.0] (-20.0)" and rows[1]["colour"] == "50.0 [40.0, 60.0] (+0.0)"
    assert "all" not in rows[0]
