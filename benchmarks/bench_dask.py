"""Training and encoding on Dask: 1 worker against 2, time per stage.

    python benchmarks/bench_dask.py                          # bundled corpora/*.train.txt
    python benchmarks/bench_dask.py --vocab-size 16000 --blocksize 131072 --repeats 3
    python benchmarks/bench_dask.py --train big.txt --json out.json

For each worker count (default 1 and 2) a LocalCluster of that many worker
processes (one thread each) is started; startup is timed on its own and not
counted. Each run trains with :class:`bytepiece.distributed.DaskTrainer` and
reports the stages separately: "count n-grams" and "count pieces" run on the
workers (read blocks, Cython map kernels, tree of merges, result to the
driver), "prune+EM" runs on the driver (``--driver-threads`` threads) and does
not depend on the worker count. Then the same corpus is encoded into token
shards (:func:`bytepiece.distributed.encode_files`, Viterbi). The local
``Trainer.train_files`` (``workers=1``) is the baseline, and every model must
be byte-identical to it (checked; a mismatch is printed as FAIL).

Wall times are the median of ``--repeats``. The CPU of the whole machine is
also sampled (busy fraction from /proc/stat) so that a run on a shared
machine can be judged: on 2 cores, 2 workers cannot scale if other
programs already use one of them. For the same reason the CPU seconds each
worker process used are reported: the busiest worker's CPU time is what the
wall time of the worker stages would be with a free core per worker.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import statistics
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _cpu_times():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields), idle


class CpuMeter:
    """Fraction of the machine's CPU time that was busy between start and stop."""

    def __enter__(self):
        self.t0 = _cpu_times()
        return self

    def __exit__(self, *exc):
        total, idle = _cpu_times()
        dt = total - self.t0[0]
        self.busy = 1 - (idle - self.t0[1]) / dt if dt else 0.0


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    import dask
    import distributed
    import numpy

    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "dask": dask.__version__,
        "distributed": distributed.__version__,
        "numpy": numpy.__version__,
        "load_average": os.getloadavg(),
    }


def _process_cpu() -> float:
    return time.process_time()


def worker_cpu(client) -> dict:
    """CPU seconds each worker process has used so far (all its threads)."""
    return client.run(_process_cpu)


def cpu_delta(before: dict, after: dict) -> list:
    return [after[w] - before.get(w, 0.0) for w in after]


def model_bytes(trainer, folder, name):
    path = os.path.join(folder, name)
    trainer.save(path)
    with open(path, "rb") as f:
        return f.read()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", nargs="+", default=sorted(glob.glob(os.path.join(REPO, "corpora", "*.train.txt"))))
    ap.add_argument("--vocab-size", type=int, default=8000)
    ap.add_argument("--blocksize", type=int, default=256 << 10, help="bytes per task (default 256 KiB)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--driver-threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", help="write all measurements here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_dask.") as tmp:  # (models and shards: removed after)
        return run(args, tmp)


def run(args, tmp: str) -> int:
    from distributed import Client, LocalCluster

    from bytepiece import Tokenizer
    from bytepiece.distributed import DaskTrainer, encode_files
    from bytepiece.trainer import Trainer

    size = sum(os.path.getsize(p) for p in args.train)
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(
        f"corpus: {len(args.train)} file(s), {size / 1e6:.2f} MB; vocab {args.vocab_size}; "
        f"blocksize {args.blocksize} ({-(-size // args.blocksize)} blocks at most)"
    )
    options = {"max_vocab_size": args.vocab_size, "verbose": False}
    results = {"machine": info, "corpus_bytes": size, "runs": []}

    base_times = []
    for _ in range(args.repeats):
        t = Trainer(**options)
        with CpuMeter() as cpu:
            t0 = time.perf_counter()
            t.train_files(args.train, workers=args.driver_threads)
            base_times.append(time.perf_counter() - t0)
    reference = model_bytes(t, tmp, "local.model")
    tok = Tokenizer(os.path.join(tmp, "local.model"))
    base = statistics.median(base_times)
    print(f"\nlocal Trainer.train_files: {base:.2f} s (machine CPU busy {100 * cpu.busy:.0f}%)")
    results["local_seconds"] = base_times

    rows = []
    for n in args.workers:
        t0 = time.perf_counter()
        with (
            LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                scheduler_kwargs={"dashboard": False},
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(n, timeout=120)
            startup = time.perf_counter() - t0
            stages = {"count_ngrams": [], "count_pieces": [], "prune_em": [], "train": [], "encode": []}
            work = {"train": [], "encode": []}  # CPU seconds of each worker process
            busy = []
            same = True
            for r in range(args.repeats):
                with CpuMeter() as cpu:
                    d = DaskTrainer(**options, client=client, blocksize=args.blocksize)
                    c0 = worker_cpu(client)
                    t1 = time.perf_counter()
                    d.train_files(args.train, workers=args.driver_threads)
                    stages["train"].append(time.perf_counter() - t1)
                    c1 = worker_cpu(client)
                    work["train"].append(cpu_delta(c0, c1))
                    for k, v in d.stats["stage_seconds"].items():
                        stages[k].append(v)
                    same &= model_bytes(d, tmp, f"dask{n}.model") == reference
                    t1 = time.perf_counter()
                    encode_files(
                        args.train, tok, os.path.join(tmp, f"shards-{n}-{r}"), client=client, blocksize=args.blocksize
                    )
                    stages["encode"].append(time.perf_counter() - t1)
                    work["encode"].append(cpu_delta(c1, worker_cpu(client)))
                busy.append(cpu.busy)
        row = {
            "workers": n,
            "startup": startup,
            "identical": same,
            "cpu_busy": busy,
            "worker_cpu": work,
            **{k: statistics.median(v) for k, v in stages.items()},
            "all": stages,
        }
        rows.append(row)
        results["runs"].append(row)

    print(
        f"\n{'workers':>7} {'count n-grams':>14} {'count pieces':>13} {'prune+EM':>9} {'train':>7} "
        f"{'encode':>7} {'startup':>8} {'CPU busy':>9}  model"
    )
    for row in rows:
        print(
            f"{row['workers']:>7} {row['count_ngrams']:>13.2f}s {row['count_pieces']:>12.2f}s "
            f"{row['prune_em']:>8.2f}s {row['train']:>6.2f}s {row['encode']:>6.2f}s {row['startup']:>7.2f}s "
            f"{100 * statistics.median(row['cpu_busy']):>8.0f}%  "
            f"{'identical to local' if row['identical'] else 'FAIL: differs from local'}"
        )
    print(
        "\nCPU seconds used by the workers (all workers / the busiest one); the busiest one is the"
        "\nwall time the work needs when every worker has a core of its own:"
    )
    for row in rows:
        w = row["worker_cpu"]
        text = []
        for k, label in (("train", "counting (train)"), ("encode", "encode")):
            per = w[k][len(w[k]) // 2]
            text.append(f"{label} {sum(per):.2f} / {max(per):.2f} s")
        print(f"{row['workers']:>7} workers: " + ", ".join(text))
    if len(rows) >= 2:
        a, b = rows[0], rows[-1]
        print(
            f"\nspeed-up {a['workers']} -> {b['workers']} workers: "
            + ", ".join(
                f"{k} x{a[k] / b[k]:.2f}" for k in ("count_ngrams", "count_pieces", "train", "encode") if b[k] > 0
            )
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
