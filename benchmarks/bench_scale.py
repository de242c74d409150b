"""Training at scale: time, peak memory and held-out compression of default runs on the
~1 GB corpus of build_gb_corpus.py and on its 200 MB slice, against runs with other
n-gram budgets (0: none, the unbudgeted reference).

    python benchmarks/build_gb_corpus.py                   # ~1 GB in /tmp/bytepiece-gb
    python benchmarks/bench_scale.py                       # slice: default vs no budget; whole: default
    python benchmarks/bench_scale.py --sets slice --budgets default,0,250,100 --repeats 3
    python benchmarks/bench_scale.py --sets whole --budgets default

Each run is ``bytepiece train`` (the command line, default settings but --workers and
--vocab-size) in a process of its own, measured as bench_train.py measures: wall and CPU
time, peak PSS of the process tree sampled every 20 ms. Compression is UTF-8 bytes of
held-out text per token (higher is better) per group (en, eu, zh, ja, code) and over
all of it; "vs none" is the ratio to the unbudgeted run's. The summary line of each run
says whether the n-gram budget was hit. Runs are sequential (the machine has 2 cores).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import REPO, byte_compile_bytepiece, run_measured

GROUPS = ("en", "eu", "zh", "ja", "code")


def train(files, budget: str, size: int, workers: int, out: str):
    """(wall s, CPU s, peak MB, the command's summary) of one run."""
    cmd = [sys.executable, "-m", "bytepiece", "train", "-o", out, "--force", "--vocab-size", str(size)]
    cmd += ["--workers", str(workers)]
    if budget != "default":
        cmd += ["--ngram-memory", budget]
    (wall, cpu), peak, stdout = run_measured(cmd + files, env=dict(os.environ, PYTHONPATH=REPO))
    return wall, cpu, peak / 1e6, stdout


def compression(model: str, heldout: dict[str, str]) -> dict[str, float]:
    sys.path.insert(0, REPO)
    from bytepiece import Tokenizer

    tok = Tokenizer(model)
    out, total_bytes, total_tokens = {}, 0, 0
    for group, path in heldout.items():
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        nbytes = len(text.encode("utf-8"))
        tokens = sum(len(ids) for ids in tok.encode_batch(text.splitlines(keepends=True)))
        out[group] = nbytes / max(tokens, 1)
        total_bytes += nbytes
        total_tokens += tokens
    out["all"] = total_bytes / max(total_tokens, 1)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="/tmp/bytepiece-gb", help="build_gb_corpus.py's output (default %(default)s)")
    ap.add_argument("--sets", default="slice,whole", help="slice (the 200 MB slice), whole (~1 GB), or both")
    ap.add_argument(
        "--budgets", default="default,0", help="--ngram-memory values in MB (0: none; default: the machine's default)"
    )
    ap.add_argument("--whole-budgets", default="default", help="the budgets of the whole corpus (default: default)")
    ap.add_argument("--vocab-size", type=int, default=32000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1, help="runs of each budget, in turn; medians are shown")
    args = ap.parse_args(argv)
    byte_compile_bytepiece()
    heldout = {g: os.path.join(args.corpus, f"{g}.heldout.txt") for g in GROUPS}
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for which in args.sets.split(","):
            files = [os.path.join(args.corpus, f"{g}.{'slice' if which == 'slice' else 'train'}.txt") for g in GROUPS]
            size_mb = sum(os.path.getsize(f) for f in files) / 1e6
            budgets = (args.budgets if which == "slice" else args.whole_budgets).split(",")
            runs: dict[str, list] = {b: [] for b in budgets}
            for repeat in range(args.repeats):
                for budget in budgets:
                    out = os.path.join(work, f"{which}-{budget}.model")
                    wall, cpu, peak, summary = train(files, budget, args.vocab_size, args.workers, out)
                    hit = "budget" in summary and "hit" in summary
                    print(
                        f"{which} ({size_mb:.0f} MB), budget {budget}, run {repeat + 1}: {wall:.1f} s wall, "
                        f"{cpu:.1f} s CPU, {peak:.0f} MB peak{', n-gram budget hit' if hit else ''}",
                        flush=True,
                    )
                    runs[budget].append((wall, cpu, peak, hit, out))
            for budget in budgets:
                done = runs[budget]
                ratios = compression(done[-1][4], heldout)
                rows.append(
                    (
                        f"{which} {size_mb:.0f} MB",
                        budget,
                        statistics.median(r[0] for r in done),
                        (min(r[0] for r in done), max(r[0] for r in done)),
                        statistics.median(r[1] for r in done),
                        statistics.median(r[2] for r in done),
                        any(r[3] for r in done),
                        ratios,
                    )
                )
    reference = {row[0]: row[7]["all"] for row in rows if row[1] == "0"}
    head = "| corpus | --ngram-memory | wall s (min-max) | CPU s | peak MB | budget hit | "
    head += " | ".join(f"{g} B/tok" for g in (*GROUPS, "all")) + " | vs none |"
    print()
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for corpus, budget, wall, spread, cpu, peak, hit, ratios in rows:
        versus = f"{ratios['all'] / reference[corpus]:.4f}" if corpus in reference else ""
        print(
            f"| {corpus} | {budget} | {wall:.1f} ({spread[0]:.1f}-{spread[1]:.1f}) | {cpu:.1f} | {peak:.0f} | "
            f"{'yes' if hit else 'no'} | " + " | ".join(f"{ratios[g]:.3f}" for g in (*GROUPS, "all")) + f" | {versus} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
