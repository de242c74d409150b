"""Empirical against exact segmentation frequencies, as a markdown table.

    python benchmarks/sampling_table.py                 # one example (docs/exact-sampling.md)
    python benchmarks/sampling_table.py --power         # the statistical suite's p-values per sampler

The example: a short text under a vocabulary cut from the vendored real model
(the pieces that occur inside the text, plus all 256 bytes, with the model's
log-probabilities). Every segmentation is listed by the pure-Python oracle
with its exact probability exp(alpha * score) / Z; the exact sampler and the
legacy v1 sampler each draw --draws keyed samples (keys 0 .. N-1), and the
table shows how often each segmentation came out.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
import time

import numpy as np
from scipy import stats

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bytepiece import Tokenizer  # noqa: E402
from bytepiece._core.batch import encode_lists  # noqa: E402
from bytepiece._core.lattice import SAMPLERS, Lattice  # noqa: E402
from bytepiece.reference import ReferenceLattice  # noqa: E402

MODEL = REPO / "tests" / "data" / "bytepiece.plus.40k.zip"


def frequencies(lattice, text, alpha, sampler, draws, index, seed_word=2024):
    out = encode_lists(
        lattice,
        [text] * draws,
        alpha=alpha,
        seed_words=np.full(draws, seed_word, dtype=np.uint64),
        key_words=np.arange(draws, dtype=np.uint64),
        sampler=sampler,
    )
    counts = np.zeros(len(index), dtype=np.int64)
    for ids in out:
        counts[index[tuple(ids)]] += 1
    return counts


def chi_square(p, counts):
    """Pearson's chi-square p-value, cells with expected count < 5 pooled."""
    n = counts.sum()
    expected = n * p
    small = expected < 5
    e = list(expected[~small])
    o = list(counts[~small])
    if small.any():
        e.append(expected[small].sum())
        o.append(counts[small].sum())
    e, o = np.array(e), np.array(o)
    return float(stats.chi2.sf(((o - e) ** 2 / e).sum(), len(e) - 1))


def show(pieces):
    """Pieces joined by a middle dot, spaces shown as ␣, bytes that are not UTF-8 escaped."""
    text = " · ".join(p.decode("utf-8", "backslashreplace").replace(" ", "␣") for p in pieces)
    return text.replace("|", "\\|")


def example(text: str, alpha: float, draws: int, rows: int) -> None:
    tok = Tokenizer(MODEL)
    data = text.encode()
    logp = dict(zip(tok.vocabulary.pieces, tok._logprobs.tolist()))
    vocab = {p: lp for p, lp in logp.items() if len(p) == 1 or p in data}
    pieces = list(vocab)
    lattice = Lattice(pieces, [vocab[p] for p in pieces], np.arange(len(pieces)))
    ids = {p: i for i, p in enumerate(pieces)}
    dist = ReferenceLattice(vocab).distribution(data, alpha)
    paths = sorted(dist, key=lambda path: -dist[path])
    index = {tuple(ids[p] for p in path): i for i, path in enumerate(paths)}
    p = np.array([dist[path] for path in paths])
    start = time.perf_counter()
    exact = frequencies(lattice, data, alpha, SAMPLERS["exact"], draws, index)
    legacy = frequencies(lattice, data, alpha, SAMPLERS["legacy-v1"], draws, index)
    seconds = time.perf_counter() - start

    print(
        f"Text {text!r}, alpha = {alpha}, {len(paths)} segmentations, {draws:,} draws per sampler "
        f"(vocabulary: the {len(vocab) - 256} pieces of bytepiece.plus.40k inside the text + 256 bytes).\n"
    )
    print("| segmentation | exact P | exact sampler | legacy v1 |")
    print("| --- | ---: | ---: | ---: |")
    for i, path in enumerate(paths[:rows]):
        print(f"| {show(path)} | {p[i]:.4f} | {exact[i] / draws:.4f} | {legacy[i] / draws:.4f} |")
    if len(paths) > rows:
        rest = slice(rows, None)
        print(
            f"| *the other {len(paths) - rows}* | {p[rest].sum():.4f} | {exact[rest].sum() / draws:.4f} "
            f"| {legacy[rest].sum() / draws:.4f} |"
        )
    tv_exact = 0.5 * np.abs(exact / draws - p).sum()
    tv_legacy = 0.5 * np.abs(legacy / draws - p).sum()
    print(f"| **total variation distance** | 0 | {tv_exact:.4f} | {tv_legacy:.4f} |")
    pe, pl = chi_square(p, exact), chi_square(p, legacy)
    fmt = lambda v: f"{v:.3g}" if v > 0 else "< 1e-300"
    print(f"| **chi-square p-value** | | {fmt(pe)} | {fmt(pl)} |")
    print(f"\n({2 * draws:,} draws in {seconds:.2f} s.)")


def load_suite():
    """tests/core/test_sampling_exact.py as a module (its cases, statistics and constants)."""
    # The test module imports its neighbours (tests/strategies.py) as pytest would find them.
    sys.path.insert(0, str(REPO / "tests"))
    spec = importlib.util.spec_from_file_location("suite", REPO / "tests" / "core" / "test_sampling_exact.py")
    suite = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(suite)
    return suite


def power(draw_counts) -> None:
    """The suite's own cases and statistics, for each sampler."""
    suite = load_suite()
    samplers = [
        ("exact", suite.SAMPLER_EXACT, suite.RNG_XOSHIRO),
        ("legacy v1", suite.SAMPLER_LEGACY_V1, suite.RNG_XOSHIRO),
        ("exact + coarse4 RNG", suite.SAMPLER_EXACT, suite.RNG_COARSE4),
        ("exact + lcg31 RNG", suite.SAMPLER_EXACT, suite.RNG_LCG31),
    ]
    print(
        f"Family-wise level {suite.FAMILY_ALPHA}, Bonferroni over {suite.FAMILY_SIZE} tests: "
        f"reject when p < {suite.THRESHOLD:.3g}. {suite.N_DRAWS:,} draws per (case, alpha), "
        f"{suite.N_LONG:,} per long case. Each cell: min(chi-square p, TV p-bound); for the long "
        "texts, the Bonferroni-adjusted smallest binomial p-value of the boundary frequencies.\n"
    )
    alphas = suite.ALPHAS
    for name, sampler, rng in samplers:
        print(f"**{name}**\n")
        print("| case | " + " | ".join(f"alpha={a:g}" for a in alphas) + " |")
        print("| --- |" + " ---: |" * len(alphas))
        for case in suite.CASES:
            cells = []
            for a in alphas:
                pc, pt, _, _ = suite.run(case, a, sampler, rng)
                cells.append(f"{min(pc, pt):.2g}")
            print(f"| {case} | " + " | ".join(cells) + " |")
        for case in suite.LONG_CASES:
            cells = [f"{suite.run_long(case, a, sampler, rng)[0]:.2g}" for a in alphas]
            print(f"| {case} (marginals) | " + " | ".join(cells) + " |")
        print()
    print(
        "The family's verdict on the enumerated cases by number of draws per (case, alpha) "
        "(the smallest p-value in parentheses):\n"
    )
    print("| sampler | " + " | ".join(f"{n:,}" for n in draw_counts) + " |")
    print("| --- |" + " :---: |" * len(draw_counts))
    for name, sampler, rng in samplers:
        marks = []
        for n in draw_counts:
            pvals = [min(suite.run(case, a, sampler, rng, n)[:2]) for case in suite.CASES for a in alphas]
            marks.append(f"reject ({min(pvals):.1g})" if min(pvals) < suite.THRESHOLD else f"pass ({min(pvals):.2g})")
        print(f"| {name} | " + " | ".join(marks) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--text", default="hello world")
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--draws", type=int, default=200_000)
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--power", action="store_true", help="print the statistical suite's power table")
    args = parser.parse_args()
    if args.power:
        power([50, 100, 200, 500, 1000, 2000, 5000, 20000])
    else:
        example(args.text, args.alpha, args.draws, args.rows)


if __name__ == "__main__":
    main()
