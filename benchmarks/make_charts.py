"""The two pictures the README shows, made from measurements (matplotlib: the bench extra).

    python benchmarks/bench_encode.py --no-bp063 --json encode.json
    python benchmarks/make_charts.py --encode-json encode.json      # both charts
    python benchmarks/make_charts.py --only sampling                # the second one alone

- ``docs/images/throughput.png``: encoding speed on the bundled held-out texts (MB/s,
  one call per line; batches on 2 threads), ours against SentencePiece Unigram and
  Hugging Face tokenizers with the same vocabulary, from a ``bench_encode.py --json``
  report (the medians it printed).
- ``docs/images/sampling.png``: for a real text, how often each of its segmentations was
  drawn against its exact probability (``bytepiece.reference`` lists them all), for the
  exact sampler and, as the control, the legacy v1 sampler; 200,000 keyed draws each.
  On the diagonal is exact; the legacy sampler's points leave it.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

IMAGES = REPO / "docs" / "images"
MODEL = REPO / "tests" / "data" / "bytepiece.plus.40k.zip"

#: (label, bench_encode key) of each bar group, ours first, in the order shown.
GROUPS = [
    (
        "Viterbi, one call per line",
        [("bytepiece", "ours_viterbi"), ("SentencePiece", "sp_viterbi"), ("HF tokenizers", "hf_viterbi")],
    ),
    ("sampling (alpha 0.1), one call per line", [("bytepiece", "ours_sample"), ("SentencePiece", "sp_sample")]),
    (
        "batch, 2 threads",
        [("bytepiece", "ours_batch_n"), ("SentencePiece", "sp_batch_n"), ("HF tokenizers", "hf_batch_n")],
    ),
]
COLOURS = {"bytepiece": "#1f6feb", "SentencePiece": "#8b949e", "HF tokenizers": "#d29922"}


def throughput(report_path: pathlib.Path, out: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    report = json.loads(report_path.read_text(encoding="utf-8"))
    speeds = report["mb_per_s"]
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=150)
    labels, values, colours, ticks = [], [], [], []
    y = 0.0
    for group, bars in GROUPS:
        present = [(name, speeds[key]) for name, key in bars if key in speeds]
        if not present:
            continue
        ticks.append((y + (len(present) - 1) / 2, group))
        for name, value in present:
            labels.append((y, name))
            values.append(value)
            colours.append(COLOURS[name])
            y += 1
        y += 0.8
    positions = [p for p, _ in labels]
    ax.barh(positions, values, color=colours, height=0.8)
    for (p, name), value in zip(labels, values):
        ax.text(value, p, f" {name} {value:.1f}", va="center", fontsize=8)
    ax.set_yticks([p for p, _ in ticks], [g for _, g in ticks], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("MB/s of UTF-8 input (higher is better)", fontsize=8)
    ax.set_xlim(0, max(values) * 1.35)
    ax.tick_params(axis="x", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    lines = report.get("lines")
    ax.set_title(f"Encoding the bundled held-out texts ({lines:,} lines, one 40k vocabulary)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    print(f"wrote {out}")


def sampling(out: pathlib.Path, text: str, alpha: float, draws: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sampling_table import frequencies

    from bytepiece import Tokenizer
    from bytepiece._core.lattice import SAMPLERS, Lattice
    from bytepiece.reference import ReferenceLattice

    tok = Tokenizer(MODEL)
    data = text.encode()
    logp = dict(zip(tok.vocabulary.pieces, tok.piece_log_probs.tolist()))
    vocab = {p: lp for p, lp in logp.items() if len(p) == 1 or p in data}
    pieces = list(vocab)
    lattice = Lattice(pieces, [vocab[p] for p in pieces], np.arange(len(pieces)))
    ids = {p: i for i, p in enumerate(pieces)}
    dist = ReferenceLattice(vocab).distribution(data, alpha)
    paths = sorted(dist, key=lambda path: -dist[path])
    index = {tuple(ids[p] for p in path): i for i, path in enumerate(paths)}
    p = np.array([dist[path] for path in paths])
    exact = frequencies(lattice, data, alpha, SAMPLERS["exact"], draws, index) / draws
    legacy = frequencies(lattice, data, alpha, SAMPLERS["legacy-v1"], draws, index) / draws
    floor = 0.5 / draws  # where a segmentation drawn 0 times is shown
    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=150)
    seen = np.concatenate([exact[exact > 0], legacy[legacy > 0]])
    lo = min(p.min(), seen.min() if len(seen) else floor) / 1.5
    ax.plot([lo, 1], [lo, 1], color="#8b949e", linewidth=1, label="exact probability")
    ax.scatter(p, np.maximum(legacy, floor), s=10, color="#d29922", alpha=0.8, label="legacy v1 sampler")
    ax.scatter(p, np.maximum(exact, floor), s=10, color="#1f6feb", alpha=0.8, label="bytepiece (exact)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, 1)
    ax.set_ylim(lo, 1)
    ax.set_xlabel("exact probability of a segmentation", fontsize=8)
    ax.set_ylabel(f"frequency in {draws:,} draws", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.set_title(f"All {len(paths)} segmentations of {text!r}, alpha {alpha:g}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out)
    tv = lambda f: 0.5 * np.abs(f - p).sum()
    print(f"wrote {out}: total variation {tv(exact):.4f} (exact), {tv(legacy):.4f} (legacy v1)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encode-json", type=pathlib.Path, help="a bench_encode.py --json report")
    ap.add_argument("--only", choices=("throughput", "sampling"))
    ap.add_argument("--text", default="hello world")
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--draws", type=int, default=200_000)
    args = ap.parse_args(argv)
    IMAGES.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "throughput"):
        if args.encode_json is None:
            ap.error("the throughput chart needs --encode-json (from bench_encode.py --json)")
        throughput(args.encode_json, IMAGES / "throughput.png")
    if args.only in (None, "sampling"):
        sampling(IMAGES / "sampling.png", args.text, args.alpha, args.draws)
    return 0


if __name__ == "__main__":
    sys.exit(main())
