"""Huge inputs: time against size (is it linear?) and peak memory (is it bounded?).

Cases, each size in a fresh process so that its peak RSS is its own:

- ``line``: one line of N MB (English, Chinese and code text with the newlines
  replaced by spaces, so the whole line is a single chunk of the lattice)
  through ``Tokenizer.encode``;
- ``line-sample``: the same line through ``Tokenizer.encode(data, alpha=0.1)``
  (one exact sample of the whole lattice);
- ``stream``: an N MB file read in batches of lines through
  ``Tokenizer.encode_batch`` (what a data pipeline does), results dropped;
- ``cli``: ``bytepiece encode -m MODEL FILE > /dev/null`` on the same file;
- ``cli-line``: ``bytepiece encode`` on the one-line file of ``line``;
- ``worst``: the worst case for the kernels, in one fresh process: the 40k model
  with a 4,096-byte piece of spaces added (spaces already have 13 pieces of their
  own, so every position of a run is the end of 14 pieces) encoding one line of
  ``--worst-mb`` MB of spaces, against the same size of ordinary text (one line),
  Viterbi and sampling, interleaved ``--repeats`` times; CPU time per byte, medians
  with min..max, and the ratio to ordinary text (the target: at most 3x);
- ``train`` (asked for by name, ``--cases train``): ``bytepiece train`` with default
  settings but 2 workers and 32k pieces on the 200 MB slice and the whole ~1 GB corpus
  of ``build_gb_corpus.py`` (``--gb-corpus``, default /tmp/bytepiece-gb; run that
  script first), measured as ``bench_scale.py`` measures (peak PSS of the process).

For each case the script prints MB, seconds, MB/s, peak RSS and peak RSS minus
the process's RSS after loading the model, then a linearity verdict (the
largest size's MB/s within 35% of the smallest's) and a memory verdict.
Files go to a temporary directory (``--tmp``, default /tmp) and are deleted.

    python benchmarks/bench_huge.py                      # line, cli-line to 100 MB; stream, cli to 1 GB
    python benchmarks/bench_huge.py --quick              # line to 25 MB, stream and cli to 128 MB
    python benchmarks/bench_huge.py --cases line --line-sizes 10,20
    python benchmarks/bench_huge.py --cases worst --worst-mb 10
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
MODEL = REPO / "tests" / "data" / "bytepiece.plus.40k.zip"
MB = 1 << 20

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from bytepiece import Tokenizer

def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
case, path, model, batch = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
tok = Tokenizer(model)
tok.encode("warm up")
base = rss_mb()
tokens = 0
start = time.perf_counter()
if case in ("line", "line-sample"):
    with open(path, "rb") as f:
        data = f.read()
    start = time.perf_counter()
    tokens = len(tok.encode(data, alpha=0.1) if case == "line-sample" else tok.encode(data))
    del data
else:
    with open(path, "rb") as f:
        lines = []
        for line in f:
            lines.append(line)
            if len(lines) == batch:
                tokens += sum(map(len, tok.encode_batch(lines)))
                lines = []
        if lines:
            tokens += sum(map(len, tok.encode_batch(lines)))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "base_mb": base, "tokens": tokens}))
"""


WORST_CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from bytepiece import Tokenizer
from bytepiece.model import load_model, vocabulary_from_counts

model, size, repeats, normal_path = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
vocab = load_model(model)
counts = dict(zip(vocab.pieces, vocab.counts))
counts[b" " * 4096] = max(counts.values())
tok = Tokenizer(vocabulary_from_counts(counts), seed=1)
with open(normal_path, "rb") as f:
    texts = {"ordinary text": f.read()[:size], "spaces": b" " * size}
times = {}
for _ in range(repeats):
    for name, data in texts.items():
        for mode, alpha in (("viterbi", None), ("sampling 0.1", 0.1)):
            start = time.process_time()
            ids = tok.encode(data) if alpha is None else tok.encode(data, alpha=alpha)
            times.setdefault(name + "|" + mode, []).append((time.process_time() - start) / size * 1e9)
            assert len(tok.decode_bytes(ids)) == size
print(json.dumps(times))
"""


def _worst_case(workdir: pathlib.Path, size_mb: float, repeats: int) -> dict:
    """The ``worst`` case: a run of one byte under a model with a 4,096-byte piece of
    it, against ordinary text of the same size, in one fresh process."""
    normal = workdir / "normal-line.txt"
    _write_file(normal, int(size_mb * MB), one_line=True)
    out = subprocess.run(
        [sys.executable, "-c", WORST_CHILD, str(REPO), str(MODEL), str(int(size_mb * MB)), str(repeats), str(normal)],
        capture_output=True,
        text=True,
        check=True,
    )
    times = json.loads(out.stdout)
    print(f"\nworst case: {size_mb:g} MB, one line, CPU ns per byte over {repeats} interleaved repeats")
    print(f"{'text':14} {'mode':13} {'median (min..max)':>22} {'x ordinary':>11}")
    for mode in ("viterbi", "sampling 0.1"):
        base = statistics.median(times["ordinary text|" + mode])
        for name in ("ordinary text", "spaces"):
            t = times[name + "|" + mode]
            med = statistics.median(t)
            verdict = "" if name == "ordinary text" else ("  <= 3x: met" if med / base <= 3 else "  > 3x: NOT met")
            print(f"{name:14} {mode:13} {med:8.1f} ({min(t):5.1f}..{max(t):5.1f}) {med / base:11.2f}{verdict}")
    return times


def _text_block() -> bytes:
    parts = [(REPO / "corpora" / name).read_bytes() for name in ("en.train.txt", "zh.train.txt", "code.train.txt")]
    return b"".join(parts)


def _write_file(path: pathlib.Path, size: int, one_line: bool) -> None:
    block = _text_block()
    if one_line:
        block = block.replace(b"\n", b" ")
    with open(path, "wb") as f:
        written = 0
        while written < size:
            piece = block[: size - written]
            f.write(piece)
            written += len(piece)
        if not one_line:
            f.write(b"\n")


def _run_child(case: str, path: pathlib.Path, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO), case, str(path), str(MODEL), str(batch)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def _run_cli(path: pathlib.Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = subprocess.run(
        [
            sys.executable,
            "-c",
            "import resource; from bytepiece import Tokenizer; "
            f"Tokenizer({str(MODEL)!r}).encode('x'); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bytepiece", "encode", "-m", str(MODEL), str(path)],
            stdout=sink,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"bytepiece encode failed: {proc.stderr.read()[-2000:]!r}")
    proc.stderr.close()
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024, "base_mb": int(base.stdout) / 1024, "tokens": None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="line,line-sample,cli-line,stream,cli,worst")
    parser.add_argument("--line-sizes", default="12.5,25,50,100", help="MB, comma-separated")
    parser.add_argument("--file-sizes", default="128,256,512,1024", help="MB, comma-separated")
    parser.add_argument("--batch", type=int, default=10000, help="lines per encode_batch call (stream)")
    parser.add_argument("--worst-mb", type=float, default=10.0, help="MB of each text of the worst case")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats of the worst case")
    parser.add_argument("--tmp", default=tempfile.gettempdir())
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--gb-corpus", default="/tmp/bytepiece-gb", help="build_gb_corpus.py's output (train)")
    args = parser.parse_args()
    if "train" in args.cases.split(","):
        return _train_at_scale(pathlib.Path(args.gb_corpus), args.json)
    if args.quick:
        args.line_sizes, args.file_sizes, args.worst_mb = "6.25,12.5,25", "32,64,128", 4.0
    cases = args.cases.split(",")
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="bench_huge.", dir=args.tmp))
    results = []
    worst = None
    try:
        if "worst" in cases:
            worst = _worst_case(workdir, args.worst_mb, args.repeats)
            print()
        if set(cases) - {"worst"}:
            print(f"{'case':11} {'MB':>7} {'seconds':>8} {'MB/s':>7} {'peak RSS MB':>12} {'- model MB':>11}")
        plans = []
        for size in args.line_sizes.split(","):  # both one-line cases on a file before the next size
            plans += [(case, float(size)) for case in ("line", "line-sample", "cli-line") if case in cases]
        for case in ("stream", "cli"):
            if case in cases:
                plans += [(case, float(s)) for s in args.file_sizes.split(",")]
        files = {}
        for case, size in plans:
            one_line = case in ("line", "line-sample", "cli-line")
            key = (one_line, size)
            if key not in files:
                for old in list(files.values()):
                    old.unlink()
                files.clear()
                path = workdir / f"{'line' if one_line else 'file'}-{size:g}MB.txt"
                _write_file(path, int(size * MB), one_line)
                files[key] = path
            path = files[key]
            r = _run_cli(path) if case.startswith("cli") else _run_child(case, path, args.batch)
            r.update(case=case, mb=size, mb_per_s=size / r["seconds"], extra_mb=r["peak_mb"] - r["base_mb"])
            results.append(r)
            print(
                f"{case:11} {size:7g} {r['seconds']:8.2f} {r['mb_per_s']:7.2f} "
                f"{r['peak_mb']:12.0f} {r['extra_mb']:11.0f}",
                flush=True,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    for case in cases:
        rows = [r for r in results if r["case"] == case]
        if len(rows) < 2:
            continue
        first, last = rows[0], rows[-1]
        ratio = last["mb_per_s"] / first["mb_per_s"]
        linear = "linear" if ratio > 0.65 else "NOT linear"
        per_mb = last["extra_mb"] / last["mb"]
        growth = (last["extra_mb"] - first["extra_mb"]) / (last["mb"] - first["mb"])
        print(
            f"{case}: throughput {first['mb_per_s']:.1f} -> {last['mb_per_s']:.1f} MB/s over "
            f"{first['mb']:g}..{last['mb']:g} MB ({linear}); extra memory {first['extra_mb']:.0f} -> "
            f"{last['extra_mb']:.0f} MB ({per_mb:.1f} MB per input MB at the largest; "
            f"{growth:.2f} MB per added input MB)"
        )
        if case in ("line", "line-sample"):  # the child holds the input bytes too
            print(f"  {case}: beyond the input itself, {per_mb - 1:.1f} bytes per input byte at the largest")
        if case == "line-sample" and any(r["case"] == "line" for r in results):
            for r in rows:
                vit = next(v for v in results if v["case"] == "line" and v["mb"] == r["mb"])
                print(f"  line-sample / line time at {r['mb']:g} MB: {r['seconds'] / vit['seconds']:.2f}x")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"cases": results, "worst": worst}, indent=1))
    return 0


def _train_at_scale(corpus: pathlib.Path, json_path: str | None) -> int:
    """The ``train`` case: the slice, then the whole corpus; time and peak memory against
    size (bench_scale.py's runs)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    import bench_scale

    if not (corpus / "code.train.txt").exists():
        print(f"train: no corpus in {corpus}; run benchmarks/build_gb_corpus.py first")
        return 1
    bench_scale.byte_compile_bytepiece()
    results = []
    print(f"{'case':8} {'MB':>7} {'seconds':>8} {'MB/s':>7} {'peak MB':>8}  budget hit")
    with tempfile.TemporaryDirectory() as work:
        for which in ("slice", "train"):
            files = [str(corpus / f"{group}.{which}.txt") for group in bench_scale.GROUPS]
            size = sum(os.path.getsize(f) for f in files) / 1e6
            wall, cpu, peak, summary = bench_scale.train(files, "default", 32000, 2, os.path.join(work, "m.model"))
            hit = "budget" in summary and "hit" in summary
            results.append({"case": "train", "mb": size, "seconds": wall, "cpu": cpu, "peak_mb": peak, "hit": hit})
            print(f"{'train':8} {size:7.0f} {wall:8.1f} {size / wall:7.2f} {peak:8.0f}  {'yes' if hit else 'no'}")
    first, last = results[0], results[-1]
    print(
        f"\ntrain: {first['mb'] / first['seconds']:.1f} -> {last['mb'] / last['seconds']:.1f} MB/s over "
        f"{first['mb']:.0f}..{last['mb']:.0f} MB; peak {first['peak_mb']:.0f} -> {last['peak_mb']:.0f} MB"
    )
    if json_path:
        pathlib.Path(json_path).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
