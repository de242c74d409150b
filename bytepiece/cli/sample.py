"""``bytepiece sample``: sampled segmentations of a text with their exact probabilities.

A sample's probability is computed on the lattice (its score and log Z, through the
Tokenizer's public queries), not estimated from the draws. ``--check`` goes further:
it lists every segmentation by brute force and compares the frequencies of many
draws with the exact probabilities by a chi-square test, both from
:mod:`bytepiece.reference`, so the sampler is checked against something that does
not share its code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import click

from ..model import FIRST_PIECE_ID, PieceTable

# (much as lattice.py's: each command imports by name what it uses from .common)
from .common import (
    MAX_DRAWS,
    MAX_THREADS,
    Boundaries,
    CliError,
    TextOut,
    boundary_options,
    check_alpha,
    load_tokenizer,
    model_option,
    require_stdout,
)

#: --check draws its samples in batches of at most this many ids in all.
CHECK_IDS_PER_BATCH = 1 << 20


@click.command("sample")
@model_option
@click.argument("text")
@click.option(
    "-n",
    "--samples",
    "count",
    type=click.IntRange(min=1, max=MAX_DRAWS),
    default=10,
    show_default=True,
    help="How many segmentations to draw and show (with --check: none unless given).",
)
@click.option(
    "--alpha",
    type=float,
    default=0.1,
    show_default=True,
    callback=check_alpha,
    help="Sharpness: segmentations are drawn with probability proportional to "
    "exp(alpha * score); 0 is uniform, larger is closer to the best one.",
)
@click.option("--seed", type=int, default=None, help="Seed; the same seed shows the same samples.")
@click.option(
    "--check",
    "check",
    type=click.IntRange(min=1, max=MAX_DRAWS),
    default=None,
    metavar="N",
    help="Draw N samples and compare their frequencies with the exact probabilities "
    "of every segmentation (chi-square test); prints only that report unless -n is given. "
    "TEXT must be short enough to enumerate.",
)
@click.option(
    "--log-prob",
    is_flag=True,
    help="Show each sample's exact log-probability (natural log) instead of its probability: what "
    "importance sampling over segmentations needs, and readable where probabilities underflow.",
)
@boundary_options
@click.option(
    "--no-normalize",
    is_flag=True,
    help="Take TEXT's bytes as they are; by default it gets the model's normalisation (NFC for a 0.6.3 model).",
)
@click.option(
    "--threads", type=click.IntRange(min=1, max=MAX_THREADS), default=None, help="Threads for drawing the samples."
)
@click.pass_context
def sample_command(
    ctx, model_path, text, count, alpha, seed, check, log_prob, split_digits, boundary_regex, no_normalize, threads
):
    """Show sampled segmentations of TEXT with their exact probabilities.

    Each line is: probability (with --log-prob its natural log), `*` when it
    is the best (Viterbi) segmentation, then the pieces (written as in `encode
    --format pieces`). Probabilities are exact: exp(alpha * score) over the sum
    of that over every segmentation, computed on the lattice. With
    --split-digits or --boundary-regex only the segmentations that keep those
    boundaries count, and the probabilities are exact among them.

    \b
    Examples:
      bytepiece sample -m my.model "unbelievable" --alpha 0.1 -n 5 --seed 1
      bytepiece sample -m my.model "in 1234567 ways" -n 8 --log-prob --split-digits 3
      bytepiece sample -m my.model "tokenizer" --check 100000
    """
    if alpha < 0:
        raise click.BadParameter("must be >= 0 to sample", param_hint="'--alpha'")
    require_stdout("the samples")
    if check is not None and ctx.get_parameter_source("count") is not click.core.ParameterSource.COMMANDLINE:
        count = 0  # --check alone: the check's report, not also samples nobody asked for
    tok = load_tokenizer(model_path, seed=seed, normalize=False if no_normalize else None)
    data = tok.normalize_bytes(text.encode("utf-8", "surrogateescape"))
    if not data:
        raise CliError("TEXT is empty: nothing to segment")
    required = Boundaries(split_digits, boundary_regex).positions(data)
    shown = PieceTable(tok.id_bytes, spaces=True)
    segmentations = _enumerate_for_check(tok, data, required) if check is not None else None
    logz = tok.log_partition(data, alpha, required_boundaries=required)
    best = tok.encode(data, required_boundaries=required)
    out = TextOut()

    def chance(ids) -> str:
        logp = min(0.0, alpha * tok.score(data, list(ids)) - logz)  # (exact; rounding kept <= 0)
        # (+ 0.0: a value that rounds to zero is shown 0.000000, not -0.000000)
        return f"{round(logp, 6) + 0.0:.6f}" if log_prob else f"{math.exp(logp):.6g}"

    if count:
        name = "log p" if log_prob else "p"
        out.write(
            f"# {len(data)} bytes, alpha={alpha:g}, log Z={logz:.6f}; best (*): "
            f"{name}={chance(best)}, {' '.join(shown[i] for i in best)}\n"
        )
        batch = max(1, min(100_000, CHECK_IDS_PER_BATCH // max(1, len(best))))  # (bounded memory)
        for first in range(0, count, batch):
            keys = range(first, min(count, first + batch))
            texts = [data] * len(keys)
            bounds = None if required is None else [required] * len(keys)
            for ids in tok.encode_batch(texts, alpha=alpha, keys=keys, num_threads=threads, required_boundaries=bounds):
                mark = "*" if ids == best else " "
                out.write(f"{chance(ids)}\t{mark}\t{' '.join(shown[i] for i in ids)}\n")
    if check is not None:
        _check_sampler(tok, data, alpha, logz, segmentations, check, threads, shown, out, required)
    out.flush()


def _enumerate_for_check(tok, data: bytes, required: Sequence[int] | None) -> list[tuple[int, ...]]:
    """Every segmentation of ``data`` (as ids) that keeps the required boundaries, or a
    CliError when there are too many."""
    from ..reference import enumerate_segmentations, keeps_constraints  # (only --check needs the oracle)

    # (the model's pieces only: a special token's text is ordinary text to the sampler)
    pieces = {p: i for i, p in enumerate(tok.vocabulary.pieces, FIRST_PIECE_ID)}
    max_len = max(map(len, pieces))
    try:
        found = enumerate_segmentations(data, pieces, max_len)
    except ValueError as error:
        raise CliError(f"--check needs a text short enough to list every segmentation of: {error}") from None
    if required:
        cuts = set(required)
        found = [seg for seg in found if keeps_constraints([tok.id_bytes[i] for i in seg], cuts)]
    return found


def _check_sampler(tok, data, alpha, logz, segmentations, draws, threads, shown, out, required=None) -> None:
    """Draw ``draws`` samples and write their frequencies next to the exact probabilities
    (from the enumeration: each segmentation's score is the exact sum of its pieces'
    log-probabilities) with a chi-square test."""
    from ..reference import chi_square, chi_square_sf

    log_probs = tok.piece_log_probs
    log_weights = [alpha * math.fsum(float(log_probs[i - FIRST_PIECE_ID]) for i in seg) for seg in segmentations]
    top = max(log_weights)
    logz_enum = top + math.log(math.fsum(math.exp(w - top) for w in log_weights))
    exact = {seg: math.exp(w - logz_enum) for seg, w in zip(segmentations, log_weights)}
    observed: dict = {}
    done = 0
    # Draws in batches that hold at most CHECK_IDS_PER_BATCH ids, however long the text.
    longest = max((len(seg) for seg in segmentations), default=1)
    batch = max(1, min(100_000, CHECK_IDS_PER_BATCH // max(1, longest)))
    while done < draws:
        step = min(batch, draws - done)
        bounds = None if required is None else [required] * step
        keys = range(done, done + step)
        for ids in tok.encode_batch(
            [data] * step, alpha=alpha, keys=keys, num_threads=threads, required_boundaries=bounds
        ):
            key = tuple(ids)
            observed[key] = observed.get(key, 0) + 1
        done += step
    unknown = [seg for seg in observed if seg not in exact]
    if unknown:
        raise CliError(
            f"--check: the sampler produced a segmentation that enumeration did not find: "
            f"{' '.join(shown[i] for i in unknown[0])}"
        )
    statistic, dof, pooled = chi_square([(exact[seg] * draws, observed.get(seg, 0)) for seg in segmentations])
    p_value = chi_square_sf(statistic, dof) if dof > 0 else 1.0
    out.write(
        f"# check: {draws} draws, {len(segmentations)} segmentations, "
        f"log Z by enumeration={logz_enum:.6f} (lattice {logz:.6f})\n"
    )
    out.write("# exact\tempirical\tcount\tpieces\n")
    ranked = sorted(segmentations, key=lambda seg: -exact[seg])
    for seg in ranked[:20]:
        c = observed.get(seg, 0)
        out.write(f"{exact[seg]:.6g}\t{c / draws:.6g}\t{c}\t{' '.join(shown[i] for i in seg)}\n")
    if len(ranked) > 20:
        rest = ranked[20:]
        c = sum(observed.get(seg, 0) for seg in rest)
        out.write(f"{math.fsum(exact[s] for s in rest):.6g}\t{c / draws:.6g}\t{c}\t({len(rest)} more segmentations)\n")
    note = f", {pooled} rare ones pooled" if pooled else ""
    out.write(f"# chi-square={statistic:.4f} df={dof} p-value={p_value:.4g}{note}\n")
