"""Cold start: a new process imports the tokenizer, loads the 80k compat model and encodes
one line; bytepiece against SentencePiece with the same vocabulary.

    python benchmarks/bench_cold_start.py                     # 9 alternating runs each
    python benchmarks/bench_cold_start.py --model M.zip --runs 15

bytepiece runs twice: as every process after a machine's first with a model runs (the
pieces' scores read from the score cache, so numpy is not imported; the cache is a
folder of the benchmark's own, filled by a first run), and with the cache turned off
(``BYTEPIECE_CACHE_DIR=``), as that first process runs.

The model is BytePiece's published 80k model (tests/data/bytepiece_80k.zip, or
--model); it is converted once
with ``Tokenizer.convert_to_sentencepiece`` into a temporary folder. Each run is a
process of its own (``python -c``), bytepiece and SentencePiece alternating; the table
gives the median (and range) of the whole process's wall time and peak memory (the
child's ru_maxrss, from wait4). A second table splits bytepiece's cold start into its
steps, timed inside the process (medians of the same number of runs): the interpreter
alone, import, reading and checking the model, building the tokenizer (the trie), the
first encode. bytepiece's modules are byte-compiled first, as pip installs them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_train import REPO, byte_compile_bytepiece

LINE = "Hello world, this is one line of text to encode. 你好，世界。"

# Each process reports its own peak (VmHWM) as it ends: a child's ru_maxrss starts from
# its parent's RSS (it survives the fork and the exec), so wait4's says nothing here.
PEAK = "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])"

BYTEPIECE = f"""
import sys
import bytepiece
tok = bytepiece.Tokenizer(sys.argv[1])
tok.encode(sys.argv[2])
{PEAK}
"""

SENTENCEPIECE = f"""
import sys
import sentencepiece
sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])
sp.encode(sys.argv[2])
{PEAK}
"""

BARE = PEAK

STEPS = """
import sys, time
t0 = time.perf_counter()
import bytepiece
from bytepiece.model import load_model
t1 = time.perf_counter()
vocab = load_model(sys.argv[1])
t2 = time.perf_counter()
tok = bytepiece.Tokenizer(vocab)
t3 = time.perf_counter()
tok.encode(sys.argv[2])
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def find_model() -> str | None:
    candidate = os.path.join(REPO, "tests", "data", "bytepiece_80k.zip")
    return candidate if os.path.exists(candidate) else None


BYTEPIECE_PATH = REPO  # (--repo: another built checkout, to compare versions)

# bytepiece with its score cache (a folder of the benchmark's own, filled by a first run)
# and with the cache turned off, as a process runs the first time a machine sees a model.
NAMES = ("bytepiece", "bytepiece, scores not kept")


def run_process(code: str, *args: str, cache: str = "") -> tuple[float, float]:
    """(wall seconds, peak MB) of a new interpreter running code (which prints its peak),
    with bytepiece's score cache in the folder `cache` ("": turned off)."""
    env = dict(os.environ, PYTHONPATH=BYTEPIECE_PATH, BYTEPIECE_CACHE_DIR=cache)
    start = time.perf_counter()
    # (from a neutral folder: `python -c` puts the current folder first on sys.path)
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, cwd=tempfile.gettempdir()
    )
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{code.strip().splitlines()[:2]} ... failed:\n{out.stderr[-2000:]}")
    return wall, int(out.stdout.split()[-1]) / 1024


def spread(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="bytepiece_80k.zip (default: found beside the tests)")
    ap.add_argument("--runs", type=int, default=9, help="runs of each, alternating (default %(default)s)")
    ap.add_argument("--repo", default=REPO, help="the bytepiece checkout to run (built in place; default this one)")
    args = ap.parse_args(argv)
    global BYTEPIECE_PATH
    BYTEPIECE_PATH = os.path.abspath(args.repo)
    model = args.model or find_model()
    if model is None:
        sys.exit("tests/data/bytepiece_80k.zip not found: pass --model PATH (a BytePiece model)")
    byte_compile_bytepiece()
    sys.path.insert(0, REPO)
    from bytepiece import Tokenizer

    with tempfile.TemporaryDirectory() as work:
        spm_model = os.path.join(work, "bp80k.spm.model")
        Tokenizer(model).convert_to_sentencepiece(spm_model)
        cache = os.path.join(work, "scores")
        run_process(BYTEPIECE, model, LINE, cache=cache)  # (keeps the scores; warms the page cache)
        run_process(SENTENCEPIECE, spm_model, LINE)
        results: dict[str, list[tuple[float, float]]] = {NAMES[0]: [], NAMES[1]: [], "sentencepiece": []}
        steps = []
        for _ in range(args.runs):
            results[NAMES[0]].append(run_process(BYTEPIECE, model, LINE, cache=cache))
            results["sentencepiece"].append(run_process(SENTENCEPIECE, spm_model, LINE))
            results[NAMES[1]].append(run_process(BYTEPIECE, model, LINE))
            out = subprocess.run(
                [sys.executable, "-c", STEPS, model, LINE],
                env=dict(os.environ, PYTHONPATH=BYTEPIECE_PATH, BYTEPIECE_CACHE_DIR=cache),
                cwd=tempfile.gettempdir(),
                capture_output=True,
                text=True,
                check=True,
            )
            steps.append([float(x) for x in out.stdout.split()])
        bare = [run_process(BARE) for _ in range(args.runs)]
    print(f"cold start, {args.runs} alternating runs each: import, load {os.path.basename(model)}, encode one line")
    print()
    print("| process | wall ms | peak MB |")
    print("|---|---|---|")
    for name, runs in (*results.items(), ("python alone", bare)):
        walls = [1000 * w for w, _ in runs]
        peaks = [p for _, p in runs]
        print(f"| {name} | {spread(walls, '{:.0f}')} | {spread(peaks, '{:.1f}')} |")
    for name in NAMES:
        ratio_wall = [b[0] / s[0] for b, s in zip(results[name], results["sentencepiece"])]
        ratio_peak = [b[1] / s[1] for b, s in zip(results[name], results["sentencepiece"])]
        print(f"| {name} / sentencepiece | {spread(ratio_wall, '{:.2f}')} | {spread(ratio_peak, '{:.2f}')} |")
    print()
    print("| bytepiece step (in process) | ms |")
    print("|---|---|")
    for i, name in enumerate(
        ("import bytepiece", "load_model (read, parse, check)", "Tokenizer (scores, trie)", "first encode")
    ):
        print(f"| {name} | {spread([1000 * s[i] for s in steps], '{:.1f}')} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
