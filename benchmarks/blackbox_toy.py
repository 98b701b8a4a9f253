"""Black-box suffix searches on a toy black box (issue 17): how often each search finds a hidden
word pair within the same query budget. Pure Python, seconds; no model.

The toy answers 10 forget and 10 retain two-option questions. It answers a forget question wrongly
when the suffix holds both words of a hidden pair; with ``--partial s``, also when it holds one of
them and the question is among the first ``s`` share (each word alone then gives a signal).
Found: the best suffix's forget accuracy is 0.

    python benchmarks/blackbox_toy.py [--tries 30] [--suffixes 150] [--words 40] [--length 4]
"""

from __future__ import annotations

import argparse

import numpy as np

from pulse_unlearn.blackbox import SEARCHES, Feedback, FeedbackItem

ITEMS = ([FeedbackItem(f"f{i}", {"A": "x", "B": "y"}, "A", None, "forget") for i in range(10)]
         + [FeedbackItem(f"r{i}", {"A": "x", "B": "y"}, "A", None, "retain") for i in range(10)])


def toy(pair: set[str], partial: float):
    def ask(queries):
        out = []
        for q in queries:
            head, *words = q.text.split()
            shared = len(pair & set(words))
            wrong = head.startswith("f") and (shared == 2 or (shared == 1 and int(head[1:]) < partial * 10))
            out.append("B" if wrong else "A")
        return out
    return ask


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tries", type=int, default=30)
    ap.add_argument("--suffixes", type=int, default=150, help="the budget, in suffixes of 20 questions")
    ap.add_argument("--words", type=int, default=40)
    ap.add_argument("--length", type=int, default=4)
    args = ap.parse_args()
    vocabulary = [f"w{i}" for i in range(args.words)]
    print(f"hidden pair found in {args.tries} tries ({args.suffixes} suffixes, {args.words} words, "
          f"length {args.length}):")
    for partial in (0.0, 0.2):
        counts = {}
        for name in sorted(SEARCHES):
            found = 0
            for seed in range(args.tries):
                a, b = np.random.default_rng(seed + 100).choice(args.words, 2, replace=False)
                feedback = Feedback(toy({vocabulary[a], vocabulary[b]}, partial), ITEMS, 20 * args.suffixes)
                found += SEARCHES[name](length=args.length)(feedback, vocabulary, seed).forget == 0.0
            counts[name] = found
        print(f"  one word's signal {partial:.1f}: " + "  ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
