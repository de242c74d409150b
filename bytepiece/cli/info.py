"""``bytepiece info``: what a model holds, and how well it compresses a text.

A report for people (or ``--json`` for scripts): sizes, special ids, the
distribution of piece lengths, the model's normalisation and default alpha, and
bytes and characters per token on the ``--text`` files, which are read as
``encode`` reads its inputs (line batches, the same normalisation).
"""

from __future__ import annotations

import json
import os

import click

from ..model import FIRST_PIECE_ID, SPECIAL_PIECES
from .common import TextOut, line_batches, load_tokenizer, model_option, normalized, require_stdout


@click.command("info")
@model_option
@click.option(
    "--text",
    "text_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="Also measure bytes per token (best segmentation) on this text file; repeatable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a report.")
@click.option("--no-normalize", is_flag=True, help="Measure the --text files without the model's normalisation.")
def info_command(model_path, text_paths, as_json, no_normalize):
    """Describe a model: sizes, special ids, piece lengths, compression on a text.

    \b
    Examples:
      bytepiece info -m my.model
      bytepiece info -m my.model --text corpora/en.heldout.txt
    """
    require_stdout("the report")
    tok = load_tokenizer(model_path, normalize=False if no_normalize else None)
    report = _model_report(tok, model_path)
    measured = [_measure_text(tok, path) for path in text_paths]
    if measured:
        report["texts"] = measured
    out = TextOut()
    if as_json:
        out.write(json.dumps(report, ensure_ascii=False) + "\n")
    else:
        _write_text_report(out, model_path, report)
    out.flush()


def _model_report(tok, model_path: str) -> dict:
    """What ``--json`` prints about the model (the keys are the report's wording)."""
    import zipfile

    vocab = tok.vocabulary
    lengths: dict = {}
    for piece in vocab.pieces:
        lengths[len(piece)] = lengths.get(len(piece), 0) + 1
    split = starts_inside = ends_inside = not_utf8 = 0
    multi_digit = 0
    for piece in vocab.pieces:
        if len(piece) < 2:
            continue  # (single bytes: all 256 are in every model)
        starts, ends, well_formed = utf8_shape(piece)
        if not well_formed:
            not_utf8 += 1
        elif starts or ends:
            split += 1
            starts_inside += starts
            ends_inside += ends
        if sum(48 <= b <= 57 for b in piece) > 1:
            multi_digit += 1
    return {
        "model": model_path,
        "file format": "zip" if zipfile.is_zipfile(model_path) else "json",
        "file bytes": os.path.getsize(model_path),
        "vocabulary size": tok.vocab_size,
        "pieces": len(vocab),
        "special ids": {name: i for i, name in enumerate(SPECIAL_PIECES)},
        "longest piece (bytes)": max(lengths),
        "piece lengths (bytes: pieces)": dict(sorted(lengths.items())),
        "multi-byte pieces that split a character": split,
        "multi-byte pieces that start inside a character": starts_inside,
        "multi-byte pieces that end inside a character": ends_inside,
        "multi-byte pieces that are not UTF-8 at all": not_utf8,
        "pieces with two or more digits": multi_digit,
        "total count": sum(vocab.counts),
        "normalization": tok.normalization,
        "default alpha": tok.alpha,
        "special tokens": tok.special_tokens,
    }


# The second byte of a character, by its first byte (RFC 3629): what rules out
# overlong forms, surrogates and code points above U+10FFFF.
_SECOND_BYTE = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}


def utf8_shape(piece: bytes) -> tuple[bool, bool, bool]:
    """How a piece sits in UTF-8 text: (starts inside a character, ends inside one,
    well-formed).

    Well-formed means that the bytes occur in some valid UTF-8 text: whole characters,
    possibly preceded by the last 1-3 bytes of one (the piece starts inside a
    character: its first byte is a continuation byte, which the trainer's
    ensure_unicode forbids) and followed by the first bytes of one (the piece ends
    inside a character, which nothing forbids: pieces such as the first two bytes of
    a three-byte character are common). A piece that is not well-formed holds bytes
    that no UTF-8 text has in that order: 0xC0, 0xC1, 0xF5-0xFF, an overlong form, a
    surrogate, a lead byte without its continuation bytes, four continuation bytes
    in a row. A piece of continuation bytes only counts as starting inside a
    character (where it ends cannot be told).
    """
    n = len(piece)
    i = 0
    while i < n and 0x80 <= piece[i] < 0xC0:
        i += 1
    starts = i > 0
    if i > 3:  # a character has at most three continuation bytes
        return starts, False, False
    while i < n:
        lead = piece[i]
        if lead < 0x80:
            i += 1
            continue
        if 0xC2 <= lead <= 0xDF:
            need = 1
        elif 0xE0 <= lead <= 0xEF:
            need = 2
        elif 0xF0 <= lead <= 0xF4:
            need = 3
        else:  # 0xC0, 0xC1, 0xF5-0xFF, or a continuation byte where a character starts
            return starts, False, False
        low, high = _SECOND_BYTE.get(lead, (0x80, 0xBF))
        for j in range(1, need + 1):
            if i + j == n:
                return starts, True, True  # the character goes on past the piece's end
            if not (low <= piece[i + j] <= high if j == 1 else 0x80 <= piece[i + j] <= 0xBF):
                return starts, False, False
        i += need + 1
    return starts, False, True


def _measure_text(tok, path: str) -> dict:
    """Bytes, characters and tokens (best segmentation) of one --text file."""
    total_bytes = tokens = chars = 0
    for _name, _first, batch in line_batches([path], option=False):
        datas = normalized(tok, batch)
        for ids in tok.encode_batch(datas, alpha=-1.0):  # (the best, whatever alpha the model records)
            tokens += len(ids)
        total_bytes += sum(len(d) for d in datas)
        chars += sum(len(d.decode("utf-8", "replace")) for d in datas)
    return {
        "text": "<stdin>" if path == "-" else path,
        "bytes": total_bytes,
        "characters": chars,
        "tokens": tokens,
        "bytes per token": round(total_bytes / tokens, 4) if tokens else None,
        "characters per token": round(chars / tokens, 4) if tokens else None,
    }


def _write_text_report(out: TextOut, model_path: str, report: dict) -> None:
    """The report for people: the same facts as ``--json``, with a bar chart of piece lengths."""
    lengths = report["piece lengths (bytes: pieces)"]
    out.write(f"model:               {model_path} ({report['file format']}, {report['file bytes']} bytes)\n")
    out.write(
        f"vocabulary size:     {report['vocabulary size']} ({report['pieces']} pieces + {FIRST_PIECE_ID} special ids)\n"
    )
    out.write("special ids:         " + ", ".join(f"{n}={i}" for n, i in report["special ids"].items()) + "\n")
    out.write(f"longest piece:       {report['longest piece (bytes)']} bytes\n")
    out.write(
        f"split a character:   {report['multi-byte pieces that split a character']} multi-byte pieces "
        f"(start inside one: {report['multi-byte pieces that start inside a character']}, "
        f"end inside one: {report['multi-byte pieces that end inside a character']})\n"
    )
    out.write(f"not UTF-8 at all:    {report['multi-byte pieces that are not UTF-8 at all']} multi-byte pieces\n")
    out.write(f"with 2+ digits:      {report['pieces with two or more digits']} pieces\n")
    form = report["normalization"]
    meaning = "text encoded as it is, decoded back exactly" if form == "none" else "applied before encoding"
    out.write(f"normalization:       {form} ({meaning})\n")
    alpha = report["default alpha"]
    out.write(f"default alpha:       {alpha:g}" + (" (Viterbi)" if alpha < 0 else "") + "\n")
    specials = report["special tokens"]
    out.write("special tokens:      " + (", ".join(f"{t}={i}" for t, i in specials.items()) or "none") + "\n")
    out.write("piece lengths (bytes, pieces):\n")
    widest = max(lengths.values())
    for length, n in lengths.items():
        bar = "#" * max(1, round(40 * n / widest))
        out.write(f"  {length:>3} {n:>7}  {bar}\n")
    for m in report.get("texts", []):
        if not m["tokens"]:
            out.write(f"text {m['text']}: empty\n")
            continue
        out.write(
            f"text {m['text']}: {m['bytes']} bytes, {m['tokens']} tokens, "
            f"{m['bytes per token']} bytes/token, {m['characters per token']} characters/token\n"
        )
