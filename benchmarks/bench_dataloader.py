#!/usr/bin/env python
"""DataLoader throughput with subword regularisation: bytepiece against SentencePiece.

Both contenders run in the *same* loader: a map-style dataset over the same documents
(consecutive lines of the corpora joined into documents of ``--doc-bytes`` bytes, 2 KB by
default; ``--doc-bytes 0`` makes every line a document, where per-item loader overhead,
the same for both, dominates),
``DataLoader(batch_size=--batch-size, num_workers=--workers, persistent_workers=True)``
with a seeded random sampler, whose batches are encoded in the worker
(``__getitems__``) and collated into flat (ids, offsets) arrays by the same function.
Only the tokenizer differs:

* ours - ``bytepiece.data.TokenizedDataset`` with ``EncodeTransform(alpha=--alpha)``:
         each document keyed by (epoch, index), one core thread per worker;
* sp   - SentencePiece Unigram sampling, ``encode(batch, enable_sampling=True,
         alpha=--alpha, nbest_size=-1, num_threads=1)`` (exact sampling over the full
         lattice), from a model with the same pieces and log-probabilities:
         ``PeerVocab`` of ``bench_encode.py`` (byte fallback, identity normaliser,
         no dummy prefix, no whitespace/script/digit splitting).

After one unmeasured warm-up epoch each (worker start-up), each repeat runs one full
epoch of each contender, alternating; the table reports medians over
``--repeats`` of MB/s (10**6 bytes of UTF-8 input per second), tokens/s, and MB per
CPU-second (main process plus workers, read from /proc: the figure that other
processes on the machine do not distort), and the ratios. The target is ours >= 5x
SentencePiece in tokens/s.

    pip install sentencepiece protobuf
    python benchmarks/bench_dataloader.py                       # corpora/*.train.txt
    python benchmarks/bench_dataloader.py --text some.txt --repeats 7 --workers 2
"""

from __future__ import annotations

import argparse
import glob
import os
import platform
import statistics
import sys
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]  # this checkout, bench_encode
MODEL = ROOT / "tests" / "data" / "bytepiece.plus.40k.zip"  # vendored (tests/data/NOTICE)
TARGET = 5.0


def collate_flat(samples):
    """The one collate function both contenders use: flat int32 ids + offsets."""
    from bytepiece.data import flatten

    return flatten(samples)


class SentencePieceDataset:
    """Map-style dataset sampling with SentencePiece; batches encoded in one call.
    The processor is built lazily in each worker from the serialised model."""

    def __init__(self, lines, model_proto: bytes, alpha: float):
        self.lines = lines
        self.model_proto = model_proto
        self.alpha = alpha
        self._sp = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_sp"] = None
        return state

    def _processor(self):
        if self._sp is None:
            import sentencepiece as spm

            self._sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        return self._sp

    def __len__(self):
        return len(self.lines)

    def __getitem__(self, i):
        return self.__getitems__([i])[0]

    def __getitems__(self, indices):
        texts = [self.lines[i] for i in indices]
        return self._processor().encode(texts, enable_sampling=True, alpha=self.alpha, nbest_size=-1, num_threads=1)


def load_documents(paths, limit_bytes, doc_bytes):
    """Documents of at least ``doc_bytes`` bytes of UTF-8, made of consecutive non-empty
    lines joined by newlines (one line each when ``doc_bytes`` is 0), NFC-normalised."""
    docs, current, size, total = [], [], 0, 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = unicodedata.normalize("NFC", line.rstrip("\n"))
                if not line:
                    continue
                current.append(line)
                size += len(line.encode()) + 1
                if size >= doc_bytes:
                    docs.append("\n".join(current))
                    total += size
                    current, size = [], 0
                    if limit_bytes and total >= limit_bytes:
                        return docs
        if current:  # documents do not span files
            docs.append("\n".join(current))
            current, size = [], 0
    return docs


def _worker_cpu(loader) -> float:
    """CPU seconds used so far by a loader's persistent workers (from /proc; 0 elsewhere)."""
    iterator = getattr(loader, "_iterator", None)
    total = 0.0
    for worker in getattr(iterator, "_workers", []):
        try:
            with open(f"/proc/{worker.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def run_epoch(loader):
    """(wall seconds, CPU seconds of this process and the workers, tokens) for one pass."""
    wall, cpu, workers = time.perf_counter(), time.process_time(), _worker_cpu(loader)
    tokens = 0
    for ids, _offsets in loader:
        tokens += len(ids)
    cpu = time.process_time() - cpu + _worker_cpu(loader) - workers
    return time.perf_counter() - wall, cpu, tokens


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a BytePiece model (default: the vendored 40k model)")
    parser.add_argument("--text", action="append", help="text file(s), one document per line")
    parser.add_argument("--limit-mb", type=float, default=4.0, help="use at most this many MB of text")
    parser.add_argument(
        "--doc-bytes",
        type=int,
        default=2000,
        help="join consecutive lines into documents of at least this many bytes (0: every line is a document)",
    )
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--start-method", default="fork", choices=["fork", "spawn", "forkserver"])
    args = parser.parse_args(argv)

    import sentencepiece as spm
    import torch
    from bench_encode import PeerVocab
    from torch.utils.data import DataLoader, RandomSampler

    from bytepiece import Tokenizer
    from bytepiece.data import EncodeTransform, EpochSampler, TokenizedDataset

    model = Path(args.model) if args.model else MODEL
    if not model.exists():
        sys.exit(f"no model at {model}: pass --model PATH")
    paths = args.text or sorted(glob.glob(str(ROOT / "corpora" / "*.train.txt")))
    if not paths:
        sys.exit("no text found: pass --text PATH")
    lines = load_documents(paths, int(args.limit_mb * 1e6), args.doc_bytes)
    size = sum(len(line.encode()) for line in lines)

    tok = Tokenizer(model)
    peer = PeerVocab(tok.vocabulary.pieces, tok.vocabulary.counts)
    proto = peer.sentencepiece_model()
    sp_pieces = spm.SentencePieceProcessor(model_proto=proto).get_piece_size()
    contenders = {
        "ours": TokenizedDataset(lines, EncodeTransform(tok, alpha=args.alpha, seed=0), output="numpy"),
        "sp": SentencePieceDataset(lines, proto, args.alpha),
    }

    # Persistent workers, as a long training run would use them: the epoch reaches ours
    # through EpochSampler; SentencePiece has no epochs (its workers just keep drawing).
    samplers = {
        "ours": EpochSampler(RandomSampler(lines, generator=torch.Generator().manual_seed(0))),
        "sp": RandomSampler(lines, generator=torch.Generator().manual_seed(0)),
    }
    loaders = {
        name: DataLoader(
            dataset,
            batch_size=args.batch_size,
            sampler=samplers[name],
            num_workers=args.workers,
            collate_fn=collate_flat,
            persistent_workers=args.workers > 0,
            multiprocessing_context=args.start_method if args.workers else None,
        )
        for name, dataset in contenders.items()
    }

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}, "
        f"torch {torch.__version__}, sentencepiece {spm.__version__}"
    )
    print(
        f"model: {model.name} ({tok.vocab_size} ids; SentencePiece copy: {sp_pieces} pieces, "
        f"{peer.dropped} non-UTF-8 pieces left to byte fallback)"
    )
    print(
        f"text: {len(lines)} documents (lines joined up to >= {args.doc_bytes} bytes), {size / 1e6:.2f} MB "
        f"from {', '.join(Path(p).name for p in paths)}"
    )
    print(
        f"loader: batch_size={args.batch_size}, num_workers={args.workers} (persistent), start method "
        f"{args.start_method}, alpha={args.alpha}, {args.repeats} epochs each after a warm-up\n"
    )

    for name in contenders:  # start the workers, warm up; not measured
        run_epoch(loaders[name])
    load_before = os.getloadavg()[0]
    results = {name: {"mbps": [], "tps": [], "cpu": []} for name in contenders}
    for epoch in range(1, args.repeats + 1):
        samplers["ours"].set_epoch(epoch)
        for name in contenders:
            wall, cpu, tokens = run_epoch(loaders[name])
            results[name]["mbps"].append(size / wall / 1e6)
            results[name]["tps"].append(tokens / wall)
            results[name]["cpu"].append(size / cpu / 1e6 if cpu > 0 else float("nan"))

    med = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}
    print(f"{'contender':<10}{'MB/s':>8}{'(min..max)':>16}{'tokens/s':>13}{'(min..max)':>26}{'MB/CPU-s':>11}")
    for name, r in results.items():
        print(
            f"{name:<10}{med[name]['mbps']:>8.2f}{min(r['mbps']):>8.2f}..{max(r['mbps']):<6.2f}"
            f"{med[name]['tps']:>13,.0f}{min(r['tps']):>13,.0f}..{max(r['tps']):<11,.0f}"
            f"{med[name]['cpu']:>11.2f}"
        )
    ratios = {k: med["ours"][k] / med["sp"][k] for k in ("mbps", "tps", "cpu")}
    print(
        f"\nload average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
        f"(on {os.cpu_count()} cpus; other processes make the wall-clock figures noisy,"
    )
    print("MB per CPU-second of the main process and workers is the load-independent figure)")
    verdict = {k: "PASS" if v >= TARGET else "FAIL" for k, v in ratios.items()}
    print(
        f"ratio ours/sp (target >= {TARGET:g}x): {ratios['tps']:.1f}x in tokens/s {verdict['tps']}, "
        f"{ratios['mbps']:.1f}x in MB/s {verdict['mbps']}, {ratios['cpu']:.1f}x in MB/CPU-s {verdict['cpu']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
