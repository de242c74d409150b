"""The research lattice API against our own calls, in one run (issue #20's targets).

    python benchmarks/bench_lattice.py                 # bundled held-out texts, 7 repeats
    python benchmarks/bench_lattice.py --repeats 11 --alpha 0.3

Every comparison is between two calls of this checkout on the same texts, run in turn
within each repeat (a drift of the machine touches both), reported as the median
ratio over the repeats with its min-max:

- ``sample n=8`` / ``sample n=64``: ``tok.sample(text, n, alpha, key=k)`` against one
  keyed draw ``tok.encode(text, alpha=alpha, key=k)`` (targets: at most 3x and 15x);
- ``constraints, Viterbi`` / ``constraints, sampling``: ``encode`` with required
  boundaries at every whitespace run (a boolean mask, built once) against ``encode``
  unconstrained (target: at most 1.10x);
- ``piece_marginals``: against ``boundary_marginals`` (target: at most 2x).

Two text sets: ``lines`` (one call per non-empty line of corpora/*.heldout.txt, as a
data loader calls) and ``paragraphs`` (the same files cut into texts of about 4 KB,
where Python's per-call work no longer hides the kernels). Constraints have a fixed
cost per call in Python (checking and slicing the masks); the kernels' own cost is
what the paragraph rows show.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import statistics
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bytepiece import Tokenizer  # noqa: E402

TARGETS = {
    "sample n=8": 3.0,
    "sample n=64": 15.0,
    "constraints, Viterbi": 1.10,
    "constraints, sampling": 1.10,
    "piece_marginals": 2.0,
}


def texts(paragraph_bytes: int) -> dict[str, list[str]]:
    lines: list[str] = []
    paragraphs: list[str] = []
    for path in sorted(glob.glob(os.path.join(REPO, "corpora", "*.heldout.txt"))):
        with open(path, encoding="utf-8") as f:
            body = f.read()
        lines += [line for line in body.splitlines() if line.strip()]
        block: list[str] = []
        size = 0
        for line in body.splitlines(keepends=True):
            block.append(line)
            size += len(line.encode())
            if size >= paragraph_bytes:
                paragraphs.append("".join(block))
                block, size = [], 0
    return {"lines": lines, "paragraphs": paragraphs}


def word_masks(tok: Tokenizer, items: list[str]) -> list[np.ndarray]:
    """A required boundary at both ends of every run of whitespace, as boolean masks."""
    out = []
    for text in items:
        data = tok.normalize_bytes(text.encode())
        mask = np.zeros(len(data) + 1, dtype=bool)
        for m in re.finditer(rb"\s+", data):
            mask[m.start()] = mask[m.end()] = True
        out.append(mask)
    return out


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def each(call, items, masks=None):
    """A loop that calls ``call(i, text[, mask])`` for every text and keeps no result (a
    caller consumes each result; keeping them all would time the cycle collector)."""
    if masks is None:

        def run() -> None:
            for i, t in enumerate(items):
                call(i, t)

    else:

        def run() -> None:
            for i, (t, m) in enumerate(zip(items, masks)):
                call(i, t, m)

    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "tests", "data", "bytepiece.plus.40k.zip"))
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--paragraph-bytes", type=int, default=4096)
    args = ap.parse_args(argv)
    tok = Tokenizer(args.model, seed=0)
    a = args.alpha
    rows = []
    for set_name, items in texts(args.paragraph_bytes).items():
        masks = word_masks(tok, items)
        size = sum(len(t.encode()) for t in items) / 1e6
        print(f"{set_name}: {len(items)} texts, {size:.2f} MB", file=sys.stderr)
        one_draw = each(lambda i, t: tok.encode(t, alpha=a, key=i), items)
        pairs = {
            "sample n=8": (each(lambda i, t: tok.sample(t, 8, a, key=i), items), one_draw),
            "sample n=64": (each(lambda i, t: tok.sample(t, 64, a, key=i), items), one_draw),
            "constraints, Viterbi": (
                each(lambda i, t, m: tok.encode(t, required_boundaries=m), items, masks),
                each(lambda i, t: tok.encode(t), items),
            ),
            "constraints, sampling": (
                each(lambda i, t, m: tok.encode(t, alpha=a, key=i, required_boundaries=m), items, masks),
                one_draw,
            ),
            "piece_marginals": (
                each(lambda i, t: tok.piece_marginals(t, a), items),
                each(lambda i, t: tok.boundary_marginals(t, a), items),
            ),
        }
        for name, (ours, base) in pairs.items():
            ours(), base()  # warm up
            ratios, base_times = [], []
            for _ in range(args.repeats):
                t_ours, t_base = timed(ours), timed(base)
                ratios.append(t_ours / t_base)
                base_times.append(t_base)
            rows.append(
                (set_name, name, statistics.median(ratios), min(ratios), max(ratios), statistics.median(base_times))
            )
    print(f"alpha {a}, {args.repeats} repeats, model {os.path.basename(args.model)}")
    print("| texts | comparison | median ratio | min-max | baseline s | target | |")
    print("|---|---|---|---|---|---|---|")
    failed = 0
    for set_name, name, median, low, high, base in rows:
        target = TARGETS[name]
        ok = median <= target
        failed += not ok
        mark = "PASS" if ok else "FAIL"
        print(f"| {set_name} | {name} | {median:.2f} | {low:.2f}-{high:.2f} | {base:.3f} | <= {target:g} | {mark} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
