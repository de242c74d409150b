"""``bytepiece lattice``: every edge of a text's segmentation lattice, as JSON lines.

For tools outside Python (finite-state libraries, a language model's scorer) and for
looking at what the model could do with a text: each line is one place a piece of the
vocabulary may stand, with its log-probability, and with ``--alpha`` the posterior
probability that a segmentation drawn at that alpha puts that piece there. Everything
comes from the Tokenizer's ``lattice`` and ``piece_marginals``.
"""

from __future__ import annotations

import base64
import json

import click

from .common import (
    Boundaries,
    CliError,
    TextOut,
    boundary_options,
    check_alpha,
    load_tokenizer,
    model_option,
    require_stdout,
)
from .encode import OutputLines


@click.command("lattice")
@model_option
@click.argument("text")
@click.option(
    "--alpha",
    type=float,
    default=None,
    callback=check_alpha,
    help='Also give each edge\'s posterior probability ("prob") under sampling at this alpha '
    "(>= 0): the chance that a drawn segmentation has that piece there. Edges whose chance "
    "is 0 (no segmentation allowed by the constraints uses them, or, at a large alpha, the "
    "chance is below the smallest double) are then left out.",
)
@boundary_options
@click.option(
    "--no-normalize",
    is_flag=True,
    help="Take TEXT's bytes as they are; by default it gets the model's normalisation (NFC for a 0.6.3 model).",
)
def lattice_command(model_path, text, alpha, split_digits, boundary_regex, no_normalize):
    """Print every edge of TEXT's lattice as a JSON line.

    Each line has "start" and "end" (byte offsets in TEXT's UTF-8, after
    normalisation), "id", "piece" (its text, or null when its bytes are not
    UTF-8 on their own, with "bytes" in base64 then) and "logp" (the piece's
    log-probability: a segmentation's score is the sum of its edges' logp).
    Edges come by end position, the shortest piece first.

    \b
    Examples:
      bytepiece lattice -m my.model "unbelievable"
      bytepiece lattice -m my.model "in 1234567 ways" --alpha 0.1 --split-digits 3
    """
    if alpha is not None and alpha < 0:
        raise click.BadParameter("must be >= 0 (posterior probabilities are those of sampling)", param_hint="'--alpha'")
    require_stdout("the edges")
    tok = load_tokenizer(model_path, normalize=False if no_normalize else None)
    data = tok.normalize_bytes(text.encode("utf-8", "surrogateescape"))
    if not data:
        raise CliError("TEXT is empty: it has no lattice")
    required = Boundaries(split_digits, boundary_regex).positions(data)
    edges = tok.lattice(data, required_boundaries=required)
    probs = None
    if alpha is not None:
        marginals = tok.piece_marginals(data, alpha, required_boundaries=required)
        probs = {(int(s), int(e), int(i)): float(p) for s, e, i, p in marginals.tolist()}
    names = OutputLines(tok, "jsonl")
    out = TextOut()
    for start, end, piece_id, logp in edges.tolist():
        record: dict = {"start": start, "end": end, "id": piece_id}
        shown = names.json_text(piece_id)
        record["piece"] = shown
        if shown is None:
            record["bytes"] = base64.b64encode(tok.id_bytes[piece_id]).decode("ascii")
        record["logp"] = logp
        if probs is not None:
            prob = probs.get((start, end, piece_id))
            if prob is None:
                continue
            record["prob"] = prob
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    out.flush()
