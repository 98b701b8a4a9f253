"""Sequential requests without collapse (issue 15): every method, one shot and as 5 sequential
requests, on the embedded world; what is left of retain and general after the 5th operation, the
forget accuracy of every request, and how much relearning and 4-bit quantization bring back.

Each variant is one ``pulse run`` of the sequential scenario (which brings the one-shot unit on the
same forget set along), under the demo's stopping rule (every operation trains until its request's
training facts keep at most 20% of their starting answer-token accuracy on both modalities, or 5
epochs), with ``relearn`` (20 steps) and ``quantize`` (4 bits) after each unit's last operation.

Variants: ``plain`` (every method, merged adapters), ``gru`` (GRU's projection), ``stack`` and
``orthogonal`` (per-request adapters), ``ours`` (simnpo_replay with orthogonal adapters) and its
ablation, each changing one part: ``ours-npo-forget`` (NPO's forget term: npo_replay),
``ours-no-replay`` (rho 0: simnpo with orthogonal adapters), ``ours-retain-kl`` (a KL on retain
for the NLL), ``ours-no-retain`` (alpha 0), ``ours-merge`` (merged adapters); plain simnpo is
ours with no replay and merged adapters. Every variant holds the same 60 general items out of
evaluation (``data.replay``), so general accuracy is on the same 240 questions throughout.

    python benchmarks/sequential.py [--preset default|tiny] [--seeds 0 1] [--variants plain gru ...]
                                    [--methods ga npo ...] [--cache DIR] [--out DIR]

Prints one table per seed and the goal check: after the 5th operation retain and general at least
90% of the starting model's on each modality, every request's forget accuracy at most the one-shot
NPO's, relearn recovery at most the one-shot NPO's. ``--preset tiny`` is a smoke test of the script
(2 requests, a fixed epoch), not a result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pulse_runs import pulse_run, read

METHODS = ["ga", "ga_klr", "npo", "grad_diff", "npo_rt", "simnpo", "idk", "rmu", "mmunlearner", "npo_replay"]
# variant -> (unlearn options, method_params, the methods it runs by default). "ours" is
# simnpo_replay with orthogonal adapters; the ours-* variants each change one part of it.
ORTHOGONAL = {"adapters": "orthogonal"}
VARIANTS = {
    "plain": ({}, {}, METHODS),
    "gru": ({"projection": "gru"}, {}, ["ga", "npo", "ga_klr"]),
    "stack": ({"adapters": "stack"}, {}, ["npo", "ga_klr"]),
    "orthogonal": (ORTHOGONAL, {}, ["npo", "ga_klr"]),
    "ours": (ORTHOGONAL, {}, ["simnpo_replay"]),
    "ours-npo-forget": (ORTHOGONAL, {}, ["npo_replay"]),  # NPO's forget term for SimNPO's
    "ours-no-replay": (ORTHOGONAL, {"simnpo_replay": {"rho": 0.0}}, ["simnpo_replay"]),
    "ours-retain-kl": (ORTHOGONAL, {"simnpo_replay": {"retain": "kl"}}, ["simnpo_replay"]),
    "ours-no-retain": (ORTHOGONAL, {"simnpo_replay": {"alpha": 0.0}}, ["simnpo_replay"]),
    "ours-merge": ({}, {}, ["simnpo_replay"]),  # adapters merged, as every plain method's
}
REPLAY = {"tiny": 8, "default": 60}  # general items held out of evaluation in every variant (npo_replay's replay)
ATTACKS = [{"name": "relearn", "steps": 20},
           {"name": "quantize", "bits": [4], "splits": ["forget"]}]


def config(preset: str, seed: int, variant: str, methods: list[str]) -> dict:
    options, params, _ = VARIANTS[variant]
    if preset == "tiny":
        splits = {"finetune_people": 10, "forget": 4, "requests": 2, "probe_threshold": 0.4,
                  "pretrained_forget": 3, "pretrained_retain": 3}
        unlearn = {"lr": 3e-3, "batch_size": 8, "lora": {"rank": 8, "alpha": 16}}
        attacks = [{**a, "steps": 3} if a["name"] == "relearn" else a for a in ATTACKS]
    else:
        splits = {"finetune_people": 100, "forget": 50, "requests": 5, "probe_threshold": 0.8,
                  "pretrained_forget": 20, "pretrained_retain": 25}
        unlearn = {"lr": 1.5e-3, "batch_size": 16, "lora": {"rank": 16, "alpha": 32}, "stop": "target",
                   "max_epochs": 5, "eval_every": 0.34,
                   "target": {"sees": "training", "rule": "kept", "kept": 0.2, "modality": "both"}}
        attacks = ATTACKS
    return {"name": f"sequential-{variant}-seed{seed}", "seed": seed,
            "model": {"source": "world", "preset": preset, "world_seed": seed}, "splits": splits,
            "grid": [{"scenarios": ["sequential"], "methods": methods, "updates": ["llm"]}],
            "data": {"replay": REPLAY[preset]}, "method_params": params,
            "unlearn": {**unlearn, **options}, "scoring": "likelihood",
            "trajectory": {"splits": ["forget", "retain", "general"], "subset": 50}, "attacks": attacks}


def acc(summary, scenario, method, step, split, modality, request="all") -> float | None:
    for r in summary:
        if (r["scenario"], r["method"], r["step"], r["split"], r["modality"], r["request"]) == \
                (scenario, method, str(step), split, modality, request):
            return float(r["accuracy"])
    return None


def recovery(attacks, scenario, method, attack) -> float | None:
    last = max((int(r["operation"]) for r in attacks if (r["scenario"], r["method"]) == (scenario, method)),
               default=None)
    vals = [float(r["recovery"]) for r in attacks if (r["scenario"], r["method"], r["attack"]) ==
            (scenario, method, attack) and r["operation"] == str(last) and r["modality"] == "all"
            and r["recovery"] != ""]
    return sum(vals) / len(vals) if vals else None


def rows_of(run: Path, variant: str) -> list[dict]:
    summary, attacks, timed = read(run / "summary.csv"), read(run / "attacks.csv"), read(run / "timings.csv")
    out = []
    for scenario in ("finetuned", "sequential"):
        for method in dict.fromkeys(r["method"] for r in timed):
            mine = [o for o in timed if (o["scenario"], o["method"]) == (scenario, method)]
            if not mine:
                continue
            last = max(int(o["operation"]) for o in mine)
            row = {"variant": variant, "method": method, "mode": "one shot" if scenario == "finetuned" else
                   f"{last} sequential", "seconds/op": sum(float(o["seconds"]) for o in mine) / len(mine)}
            requests = sorted({r["request"] for r in summary if r["scenario"] == scenario and r["split"] == "forget"
                               and r["request"].isdigit()}, key=int) or ["all"]
            row["forget (worst request)"] = max(acc(summary, scenario, method, last, "forget", "all", q) or 0
                                                for q in requests)
            for split in ("retain", "general"):
                for modality in ("multimodal", "text"):
                    start = acc(summary, scenario, method, 0, split, modality)
                    end = acc(summary, scenario, method, last, split, modality)
                    row[f"{split} {modality[:4]} kept"] = end / start if start else None
            row["relearn recovery"] = recovery(attacks, scenario, method, "relearn")
            row["quantize recovery"] = recovery(attacks, scenario, method, "quantize")
            out.append(row)
    return out


def goal(rows: list[dict]) -> None:
    npo = next((r for r in rows if r["method"] == "npo" and r["mode"] == "one shot" and r["variant"] == "plain"),
               None)
    if npo is None:
        print("goal: needs the plain variant's one-shot npo as the yardstick")
        return
    print(f"goal (vs one-shot npo: forget {npo['forget (worst request)']:.3f}, relearn recovery "
          f"{_f(npo['relearn recovery'])}):")
    for r in rows:
        if r["mode"] == "one shot":
            continue
        kept = [r[k] for k in r if k.endswith(" kept")]
        checks = {"retain/general >= 90%": all(v is not None and v >= 0.9 for v in kept),
                  "forget <= npo": r["forget (worst request)"] <= npo["forget (worst request)"],
                  "relearn <= npo": None not in (r["relearn recovery"], npo["relearn recovery"])
                  and r["relearn recovery"] <= npo["relearn recovery"]}
        print(f"  {r['variant']:>17} {r['method']:<12} min kept {min(v or 0 for v in kept):.2f}  " +
              "  ".join(f"{k}: {'yes' if v else 'no'}" for k, v in checks.items()))


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def table(rows: list[dict]) -> None:
    cols = list(rows[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(_f(r[c]) if isinstance(r[c], float) or r[c] is None else str(r[c]) for c in cols)
              + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default", choices=["default", "tiny"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--methods", nargs="+", help="only these methods (each variant's own list otherwise)")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/benchmark-sequential"))
    args = ap.parse_args()
    for seed in args.seeds:
        rows = []
        for variant in args.variants:
            methods = [m for m in VARIANTS[variant][2] if not args.methods or m in args.methods]
            if not methods:
                continue
            out, seconds = pulse_run(config(args.preset, seed, variant, methods), args.out, args.cache)
            print(f"[seed {seed}] {variant}: {', '.join(methods)} in {seconds:.0f} s", flush=True)
            rows += rows_of(out, variant)
        print(f"\nworld seed {seed}, preset {args.preset}")
        table(rows)
        goal(rows)


if __name__ == "__main__":
    main()
