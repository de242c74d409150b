"""Training side by side: bytepiece (EM and 0.6.3 mode), BytePiece 0.6.3, SentencePiece
Unigram and BPE, HF tokenizers Unigram (no pre-tokenisation).

    python benchmarks/bench_train.py                       # bundled corpora, 16k pieces
    python benchmarks/bench_train.py --vocab-size 8000 --peers bytepiece,spm-unigram
    python benchmarks/bench_train.py --peers bytepiece,spm-unigram --repeats 5  # medians of 5
    python benchmarks/bench_train.py --train a.txt b.txt --heldout en=x.txt zh=y.txt

With --repeats N the peers run N times in turn and the table shows each one's
medians; a ratio is the median of the N ratios within a repetition (machines
shared with other work drift over minutes: a ratio of back-to-back runs is
steadier than a ratio of medians).

Every trainer runs in its own subprocess; the parent samples the memory of
that whole process tree (workers included) every 20 ms (less often for a big tree,
so that sampling takes at most 5% of one core): "peak MB" is the peak
of the summed PSS (proportional set size, so pages that forked workers share
with their parent count once; RSS where PSS is unavailable). Wall time and
the CPU time of the tree (user + sys) are both reported: on a busy machine
the CPU time is the steadier number. Compression is UTF-8 bytes of held-out text per
token (higher is better): BytePiece models are measured with our Tokenizer
(0.6.3-compatible), SentencePiece and HF with their own encoders, one line at
a time (so newlines cost them nothing -- a small advantage to them). bytepiece's
modules are byte-compiled first, as the peers' were when pip installed them.

Peers: `pip install sentencepiece tokenizers`; BytePiece 0.6.3 from the venv
given by --bp063-python (default /tmp/bp063/bin/python). A peer that is not
installed is skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = [
    "bytepiece",
    "bytepiece-process",
    "bytepiece-063mode",
    "bytepiece-0.6.3",
    "spm-unigram",
    "spm-bpe",
    "hf-unigram",
]


# ---------------------------------------------------------------------------
# Memory of a process tree, from /proc


def _tree_rss(root: int) -> int:
    """Summed PSS of root and its descendants. Children come from
    /proc/PID/task/TID/children (a few small reads: a scan of every /proc/PID/stat took
    about 4 ms, a fifth of a core at one sample every 20 ms, taken from the trainer
    being measured); the scan is the fallback where those files do not exist."""
    total, todo, seen = 0, [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += _pss(str(pid))
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
            except FileNotFoundError:
                if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                    continue  # the thread ended meanwhile
                return _tree_rss_by_scan(root)  # no children files on this kernel
            except OSError:
                continue
    return total


def _tree_rss_by_scan(root: int) -> int:
    children: dict = {}
    rss: dict = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ppid = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
        pid = int(name)
        children.setdefault(ppid, []).append(pid)
        rss[pid] = name
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in rss:
            total += _pss(rss[pid])
        todo.extend(children.get(pid, []))
    return total


def _pss(pid: str) -> int:
    """Proportional set size: pages shared between forked workers count once in all."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def run_measured(cmd, env=None, cwd=None):
    """(wall seconds, peak tree RSS bytes, stdout) of a subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before = before.ru_utime + before.ru_stime
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, text=True)
    peak = 0
    out: dict = {}

    def reader():
        out["stdout"], out["stderr"] = proc.communicate()

    t = threading.Thread(target=reader)
    t.start()
    while t.is_alive():
        sampled = time.perf_counter()
        peak = max(peak, _tree_rss(proc.pid))
        cost = time.perf_counter() - sampled
        # A sample walks page tables and thread lists (1 ms per GB and more; HF's trainer
        # with its thread pool cost half a core at 20 ms intervals): sampling every 20 ms
        # would take a quarter of a core from a big trainer on a 2-core machine. Sleep
        # 20 times as long as the sample took, so sampling costs at most 5% of one core.
        time.sleep(max(0.02, 20 * cost))
    t.join()
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["cpu"] = usage.ru_utime + usage.ru_stime - cpu_before
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{out['stderr'][-3000:]}")
    return (wall, out["cpu"]), peak, out["stdout"]


# ---------------------------------------------------------------------------
# The trainers, as scripts run in a subprocess

BYTEPIECE = """
import sys
from bytepiece.trainer import Trainer
out, size, workers, em, engine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
files = sys.argv[6:]
t = Trainer(max_vocab_size=size, em=em, verbose=False, **({} if engine == "default" else {"engine": engine}))
t.train_files(files, workers=workers)
t.save(out)
"""

BP063 = """
import sys
from bytepiece.bytepiece import Trainer

class Docs:
    # each file in pieces of about 1 MB cut where a run of newlines ends: the same chunks as the whole file
    def __init__(self, files):
        self.files = files
    def __iter__(self):
        for f in self.files:
            text = open(f, encoding="utf-8", newline="").read()
            start = 0
            while start < len(text):
                end = min(len(text), start + 1000000)
                while end < len(text) and not (text[end - 1] == "\\n" and text[end] != "\\n"):
                    end += 1
                yield text[start:end]
                start = end

out, size, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = Trainer(max_vocab_size=size)
t.train(Docs(sys.argv[4:]), workers=workers)
t.save(out)
"""

SPM = """
import sys, sentencepiece as spm
out, size, workers, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
spm.SentencePieceTrainer.train(
    input=",".join(sys.argv[5:]), model_prefix=out, vocab_size=size, model_type=kind,
    num_threads=workers, byte_fallback=True, character_coverage=0.9995,
    input_sentence_size=0, max_sentence_length=1 << 16, minloglevel=2)
"""

HF = """
import sys
from tokenizers import Tokenizer, models, trainers
out, size = sys.argv[1], int(sys.argv[2])
tok = Tokenizer(models.Unigram())
trainer = trainers.UnigramTrainer(vocab_size=size, special_tokens=["<unk>"], unk_token="<unk>",
                                  max_piece_length=16, show_progress=False)
def lines():
    for f in sys.argv[3:]:
        with open(f, encoding="utf-8") as h:
            for line in h:
                line = line.rstrip("\\n")
                if line:
                    yield line
tok.train_from_iterator(lines(), trainer=trainer)
tok.save(out)
"""


def byte_compile_bytepiece():
    """Byte-compile bytepiece's modules, as pip does when it installs a package (the
    peers are installed that way). An editable install is not compiled, and where
    PYTHONDONTWRITEBYTECODE is set no run writes the cache either: each run would
    compile the package again, 70-90 ms of its time here."""
    import compileall

    if not compileall.compile_dir(os.path.join(REPO, "bytepiece"), quiet=1):
        raise RuntimeError("bytepiece's modules do not compile")


def train_peer(peer, files, size, workers, workdir, bp063_python):
    env = dict(os.environ, PYTHONPATH=REPO)
    if peer in ("bytepiece", "bytepiece-thread", "bytepiece-process", "bytepiece-063mode"):
        # "bytepiece" and "bytepiece-063mode": the default engine (threads); the others name theirs
        out = os.path.join(workdir, peer + ".model")
        engine = peer.split("-")[1] if peer in ("bytepiece-thread", "bytepiece-process") else "default"
        cmd = [
            sys.executable,
            "-c",
            BYTEPIECE,
            out,
            str(size),
            str(workers),
            "0" if peer.endswith("063mode") else "1",
            engine,
            *files,
        ]
        wall, peak, _ = run_measured(cmd, env=env)
        return wall, peak, ("bytepiece", out)
    if peer == "bytepiece-0.6.3":
        if not os.path.exists(bp063_python):
            raise FileNotFoundError(f"{bp063_python} not found")
        out = os.path.join(workdir, "bp063.model")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        cmd = [bp063_python, "-c", BP063, out, str(size), str(workers), *files]
        wall, peak, _ = run_measured(cmd, env=env, cwd=workdir)
        return wall, peak, ("bytepiece", out)
    if peer.startswith("spm-"):
        import sentencepiece  # noqa: F401  (skip early when missing)

        prefix = os.path.join(workdir, peer)
        cmd = [sys.executable, "-c", SPM, prefix, str(size), str(workers), peer[4:], *files]
        wall, peak, _ = run_measured(cmd)
        return wall, peak, ("spm", prefix + ".model")
    if peer == "hf-unigram":
        import tokenizers  # noqa: F401

        out = os.path.join(workdir, "hf.json")
        cmd = [sys.executable, "-c", HF, out, str(size), *files]
        wall, peak, _ = run_measured(cmd)
        return wall, peak, ("hf", out)
    raise ValueError(peer)


def bytes_per_token(kind, path, text):
    nbytes = len(text.encode("utf-8"))
    if kind == "bytepiece":
        sys.path.insert(0, REPO)
        from bytepiece import Tokenizer

        return nbytes / max(len(Tokenizer(path).encode(text)), 1)
    lines = [line for line in text.split("\n") if line]
    if kind == "spm":
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=path)
        return nbytes / max(sum(len(x) for x in sp.encode(lines)), 1)
    if kind == "hf":
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(path)
        return nbytes / max(sum(len(e.ids) for e in tok.encode_batch(lines)), 1)
    raise ValueError(kind)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", nargs="+", default=None, help="training files (default: corpora/*.train.txt)")
    ap.add_argument("--heldout", nargs="+", default=None, help="LANG=FILE pairs (default: corpora/*.heldout.txt)")
    ap.add_argument("--vocab-size", type=int, default=16000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset of " + ",".join(PEERS))
    ap.add_argument("--bp063-python", default="/tmp/bp063/bin/python")
    ap.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run the peers this many times, in turn; medians are reported (default 1)",
    )
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be at least 1")
    corpora = os.path.join(REPO, "corpora")
    langs = sorted(f.split(".")[0] for f in os.listdir(corpora) if f.endswith(".train.txt"))
    train = args.train or [os.path.join(corpora, f"{lang}.train.txt") for lang in langs]
    if args.heldout:
        heldout = dict(h.split("=", 1) for h in args.heldout)
    else:
        heldout = {lang: os.path.join(corpora, f"{lang}.heldout.txt") for lang in langs}
    texts = {lang: open(p, encoding="utf-8", newline="").read() for lang, p in heldout.items()}
    size_mb = sum(os.path.getsize(f) for f in train) / 1e6
    print(
        f"train: {len(train)} files, {size_mb:.1f} MB; vocab size {args.vocab_size}; {args.workers} workers/threads",
        file=sys.stderr,
    )
    byte_compile_bytepiece()
    runs: dict = {}  # peer -> one dict per repetition
    skipped = set()
    with tempfile.TemporaryDirectory() as workdir:
        for rep in range(args.repeats):
            for peer in args.peers.split(","):
                if peer in skipped:
                    continue
                try:
                    (wall, cpu), peak, (kind, path) = train_peer(
                        peer, train, args.vocab_size, args.workers, workdir, args.bp063_python
                    )
                except (ImportError, FileNotFoundError, RuntimeError) as error:
                    print(f"{peer}: skipped ({str(error).strip()[:300]})", file=sys.stderr)
                    skipped.add(peer)
                    continue
                bpt = {lang: bytes_per_token(kind, path, t) for lang, t in texts.items()}
                runs.setdefault(peer, []).append(
                    {"seconds": wall, "cpu_seconds": cpu, "peak_mb": peak / 1e6, "bytes_per_token": bpt}
                )
                print(
                    f"{peer} (run {rep + 1}): {wall:.1f}s ({cpu:.1f}s CPU), {peak / 1e6:.0f} MB, "
                    + ", ".join(f"{lang} {v:.3f}" for lang, v in bpt.items()),
                    file=sys.stderr,
                )
    # One row per peer: the median of its runs (the compression of its last run: a trainer
    # that is not deterministic shows it in the per-run lines above).
    results = [
        dict(
            peer=peer,
            runs=len(rs),
            **{key: statistics.median(r[key] for r in rs) for key in ("seconds", "cpu_seconds", "peak_mb")},
            bytes_per_token=rs[-1]["bytes_per_token"],
            per_run=rs,
        )
        for peer, rs in runs.items()
    ]
    head = ["trainer", "wall s", "CPU s", "peak MB"] + [f"{lang} B/tok" for lang in texts]
    rows = [
        [r["peer"], f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.1f}", f"{r['peak_mb']:.0f}"]
        + [f"{r['bytes_per_token'][lang]:.3f}" for lang in texts]
        for r in results
    ]
    ours = next((r for r in results if r["peer"] == "bytepiece"), None)
    if ours:
        # the median over the repetitions of the ratio within each (the peers of one
        # repetition ran back to back, on the same machine's mood)
        rows.append(["ratios (bytepiece / peer)", "", "", ""] + [""] * len(texts))
        for r in results:
            if r is ours:
                continue
            pairs = list(zip(runs["bytepiece"], runs[r["peer"]]))
            ratio = {
                key: statistics.median(a[key] / max(b[key], 1e-9) for a, b in pairs)
                for key in ("seconds", "cpu_seconds", "peak_mb")
            }
            r["ratios"] = ratio
            rows.append(
                [
                    f"  vs {r['peer']}",
                    f"{ratio['seconds']:.2f}",
                    f"{ratio['cpu_seconds']:.2f}",
                    f"{ratio['peak_mb']:.2f}",
                ]
                + [f"{ours['bytes_per_token'][lang] / r['bytes_per_token'][lang]:.3f}" for lang in texts]
            )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(x).ljust(w) for x, w in zip(row, widths)) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
