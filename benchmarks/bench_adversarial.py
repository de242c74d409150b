"""Worst-case inputs against normal text: time per byte, Viterbi and sampling.

The lattice has one edge per (position, piece ending there), so a text costs its
length plus its edges. Adversarial texts maximise the edges: a run of the byte with
the most pieces made of it alone (every position is the end of one piece of each of
those lengths), runs of the most repeated two-byte pattern, random bytes (no long
pieces: the automaton's failure links at every byte). Each text is one line of
``--mb`` MB (one chunk); normal text is the bundled held-out corpora with newlines
replaced by spaces. Each case runs ``--repeats`` times, interleaved with the others;
the median CPU time per byte is reported with min..max, and its ratio to normal text.

    python benchmarks/bench_adversarial.py                 # --mb 4 --repeats 7
"""

from __future__ import annotations

import argparse
import pathlib
import random
import statistics
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bytepiece import Tokenizer  # noqa: E402

MODEL = REPO / "tests" / "data" / "bytepiece.plus.40k.zip"


def texts(tok: Tokenizer, size: int) -> dict[str, bytes]:
    pieces = [tok.id_to_piece(i) for i in range(tok.vocab_size)]
    pieces = [p for p in pieces if isinstance(p, bytes)]  # (not '<pad>', '<bos>', ...)
    runs: dict[int, int] = {}
    pairs: dict[bytes, int] = {}
    for p in pieces:
        if len(p) > 1 and len(set(p)) == 1:
            runs[p[0]] = runs.get(p[0], 0) + 1
        if len(p) > 2 and len(p) % 2 == 0 and p == p[:2] * (len(p) // 2) and p[0] != p[1]:
            pairs[p[:2]] = pairs.get(p[:2], 0) + 1
    byte = max(runs, key=runs.get)
    normal = b"".join((REPO / "corpora" / f"{n}.heldout.txt").read_bytes() for n in ("en", "zh", "code"))
    normal = normal.replace(b"\n", b" ")
    rnd = random.Random(1)
    out = {
        "normal text": (normal * (size // len(normal) + 1))[:size],
        f"run of {bytes([byte])!r} ({runs[byte]} pieces of it)": bytes([byte]) * size,
        "random bytes": rnd.randbytes(size),
    }
    if pairs:
        pair = max(pairs, key=pairs.get)
        out[f"run of {pair!r} ({pairs[pair]} pieces of it)"] = pair * (size // 2)
    # The longest piece, repeated: its suffixes and prefixes are pieces where the vocabulary allows.
    longest = max(pieces, key=len)
    out[f"longest piece repeated ({len(longest)} bytes)"] = (longest * (size // len(longest) + 1))[:size]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--alpha", type=float, default=0.1)
    args = ap.parse_args()
    tok = Tokenizer(str(MODEL), seed=1)
    cases = texts(tok, int(args.mb * 1e6))
    modes = {"viterbi": None, f"sample alpha={args.alpha}": args.alpha}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeats):
        for name, data in cases.items():
            for mode, alpha in modes.items():
                start = time.process_time()
                tok.encode(data) if alpha is None else tok.encode(data, alpha=alpha)
                times.setdefault((name, mode), []).append((time.process_time() - start) / len(data) * 1e9)
    print(f"{'text':44} {'mode':18} {'ns/byte (median, min..max)':>30} {'x normal':>9}")
    for mode in modes:
        base = statistics.median(times["normal text", mode])
        for name in cases:
            t = times[name, mode]
            med = statistics.median(t)
            print(f"{name:44} {mode:18} {med:12.1f} ({min(t):6.1f}..{max(t):6.1f}) {med / base:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
