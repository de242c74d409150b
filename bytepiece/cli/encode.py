"""``bytepiece encode``, ``encode-shards`` and ``decode``: text to ids and back.

``encode`` writes one output line per input line, in one of three formats (ids,
readable pieces, JSON lines with offsets); ``decode`` reads any of the three back.
A line is encoded with its line ending, and decoding writes the bytes of each id
line back to back, so ``encode | decode`` gives back the input byte for byte.
Lines are encoded a batch per thread at a time, each keyed by its line number, so
samples do not depend on ``--threads`` or on the batching. ``encode-shards`` (and
``encode`` with a --dask option) hands the files to :mod:`bytepiece.distributed`,
which writes numpy shards with the same ids.
"""

from __future__ import annotations

import base64
import json
import os

import click

from ..model import FIRST_PIECE_ID, SPECIAL_PIECES, PieceTable, parse_piece
from .common import (
    MAX_THREADS,
    Boundaries,
    CliError,
    boundary_options,
    check_alpha,
    dask_options,
    dask_where,
    input_size,
    inputs_argument,
    line_batches,
    load_tokenizer,
    max_line_option,
    model_option,
    naming_input,
    normalized,
    open_input,
    open_output,
    output_option,
    progress_meter,
    progress_option,
    quiet_option,
    refuse_existing,
    refuse_missing_inputs,
    refuse_output_folder,
    require_stdout,
    too_long,
    usable_cores,
)


def format_option(text: str):
    """-f/--format: the form of the id lines, which encode writes and decode reads
    (``text`` is the option's help)."""
    choice = click.Choice(["ids", "pieces", "jsonl"])
    return click.option("-f", "--format", "fmt", type=choice, default="ids", show_default=True, help=text)


@click.command("encode")
@model_option
# (folders are taken here, for the --dask options; without one they are refused below)
@click.argument("inputs", nargs=-1, type=click.Path(exists=True, allow_dash=True))
@format_option(
    "ids: space-separated ids; pieces: readable pieces (see below); "
    "jsonl: one JSON object per line with ids, pieces, byte offsets and "
    "character offsets (within the line, as Tokenizer.encode_with_offsets); "
    "see below for its pieces."
)
@click.option(
    "--alpha",
    type=float,
    default=None,
    callback=check_alpha,
    help="Sample segmentations with probability proportional to exp(alpha * score) "
    "instead of the single best one (e.g. --alpha 0.1). Negative means best.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed for --alpha: the same seed gives the same samples (each line is keyed "
    "by its line number). Without it the samples are random.",
)
@click.option("--bos", is_flag=True, help="Start each line with <bos> (id 1).")
@click.option("--eos", is_flag=True, help="End each line with <eos> (id 2).")
@click.option(
    "--threads",
    type=click.IntRange(min=1, max=MAX_THREADS),
    default=None,
    help="Threads for encoding (default: as many as useful). Never changes the output.",
)
@click.option(
    "--no-normalize",
    is_flag=True,
    help="Encode the bytes as they are; by default text gets the model's normalisation first "
    "(NFC for a 0.6.3 model; none for a model trained with the default --normalize none).",
)
@boundary_options
@max_line_option
@output_option(folder_help="With a --dask option, the folder for the numpy shards (--force: replace them).")
@progress_option
@dask_options
def encode_command(
    model_path,
    inputs,
    fmt,
    alpha,
    seed,
    bos,
    eos,
    threads,
    no_normalize,
    split_digits,
    boundary_regex,
    max_line,
    output,
    force,
    progress,
    quiet,
    dask_scheduler,
    dask_scheduler_file,
    dask_local,
    dask_blocksize,
):
    """Encode text files (or stdin) to ids, one output line per input line.

    Each input line is encoded with its line ending, so the ids of a file
    decode back to exactly that file (`bytepiece decode`). Files are read in
    batches of lines: memory stays small on inputs of any size.

    With a --dask option the workers of a Dask cluster encode the files into
    numpy token shards in the folder -o (as `bytepiece encode-shards`; the same
    ids, whatever the cluster or block size).

    \b
    pieces format: pieces separated by spaces, shown as text with escapes:
      a space inside a piece is ▁ (and a real ▁ is \\u2581),
      a newline \\n (also \\r, \\t), a backslash \\\\,
      a byte that is not valid UTF-8 \\xNN.

    \b
    jsonl format: "pieces" holds each piece's text as a JSON string (a
      newline is a newline, no escapes of ours), <pad>/<bos>/<eos> their
      names, and null for a piece whose bytes are not valid UTF-8 on their
      own (e.g. part of a character). A line with such pieces also has
      "bytes": a list as long as "pieces", with the piece's bytes in
      base64 where "pieces" is null, and null elsewhere. "ids" is what
      `decode --format jsonl` reads.

    \b
    Examples:
      bytepiece encode -m my.model corpus.txt > corpus.ids
      cat corpus.txt | bytepiece encode -m my.model --format pieces | head
      bytepiece encode -m my.model --alpha 0.1 --seed 7 --eos -o train.ids corpus.txt
      bytepiece encode -m my.model --split-digits 3 --boundary-regex '\\S+' corpus.txt
      bytepiece encode -m my.model --dask-local 4 -o tokens/ corpus/
    """
    where = dask_where(dask_scheduler, dask_scheduler_file, dask_local, dask_blocksize)
    boundaries = Boundaries(split_digits, boundary_regex)
    if where:
        if boundaries.active:
            raise CliError("--split-digits and --boundary-regex are not available with --dask options")
        if output in (None, "-"):
            raise CliError("--dask options write numpy shards: give their folder with -o")
        if fmt != "ids" or not inputs or "-" in inputs:
            raise CliError("--dask options encode files (not stdin) into id shards: no --format pieces/jsonl")
        _encode_shards(model_path, inputs, output, alpha, seed, bos, eos, no_normalize, where, quiet, force)
        return
    for path in inputs:
        if os.path.isdir(path):
            raise CliError(f"{path}: is a folder; encode reads files (a folder of inputs needs a --dask option)")
    if output not in (None, "-"):
        if os.path.isdir(output):
            raise CliError(f"{output}: is a folder; -o names a file (a folder of shards needs a --dask option)")
        refuse_existing(output, force)
    else:
        require_stdout("the ids; give -o FILE")
    tok = load_tokenizer(model_path, seed=seed, normalize=False if no_normalize else None)
    if alpha is None:
        alpha = tok.alpha  # the model's own default (-1: Viterbi)
    sampling = alpha >= 0
    formatter = OutputLines(tok, fmt)
    meter = progress_meter(progress, "encode", input_size(inputs), quiet)
    with open_output(output, force) as out:
        line_number = 0
        # a batch per thread, so that threads have work; keys make batching invisible
        for _name, _first, batch in line_batches(inputs, threads=threads or usable_cores(), max_line=max_line):
            meter.advance(sum(len(line) for line in batch))
            datas = normalized(tok, batch)
            keys = range(line_number + 1, line_number + 1 + len(datas)) if sampling else None
            required = [boundaries.positions(d) for d in datas] if boundaries.active else None
            results = tok.encode_batch(
                datas,
                add_bos=bos,
                add_eos=eos,
                alpha=alpha if sampling else -1,
                keys=keys,
                num_threads=threads,
                required_boundaries=required,
            )
            out.write(formatter.text(line_number + 1, datas, results).encode("utf-8"))
            line_number += len(datas)
    meter.finish()


class OutputLines:
    """encode's output lines for a batch, in one of its formats (ids, pieces, jsonl)."""

    def __init__(self, tok, fmt: str):
        self.fmt = fmt
        self.id_bytes = tok.id_bytes
        self.id_text = [str(i) for i in range(tok.vocab_size)] if fmt == "ids" else []
        self.pieces = PieceTable(self.id_bytes, spaces=True)
        self._json_text: dict[int, str | None] = {}

    def json_text(self, i: int) -> str | None:
        """The text of id ``i`` in a jsonl record: the piece's own text (no escapes), the
        name of a special id, or None when the bytes are not valid UTF-8 on their own."""
        try:
            return self._json_text[i]
        except KeyError:
            pass
        text: str | None
        if i < FIRST_PIECE_ID:
            text = SPECIAL_PIECES[i]
        else:
            try:
                text = self.id_bytes[i].decode("utf-8")
            except UnicodeDecodeError:
                text = None
        self._json_text[i] = text
        return text

    def text(self, first_line: int, datas: list[bytes], results: list[list[int]]) -> str:
        """The lines for ``results``, the ids of ``datas`` (input lines ``first_line`` on)."""
        if self.fmt == "ids":
            id_text = self.id_text
            return "\n".join([" ".join([id_text[i] for i in ids]) for ids in results]) + "\n"
        pieces = self.pieces
        if self.fmt == "pieces":
            return "".join(" ".join([pieces[i] for i in ids]) + "\n" for ids in results)
        from ..tokenizer import char_spans  # the spans encode_with_offsets reports

        lines = []
        for k, (data, ids) in enumerate(zip(datas, results), first_line):
            starts, ends, at = [], [], 0
            for i in ids:
                starts.append(at)
                at += len(self.id_bytes[i])
                ends.append(at)
            texts = [self.json_text(i) for i in ids]
            record: dict = {"line": k, "ids": ids, "pieces": texts}
            if None in texts:  # those pieces' bytes, in base64, at the same places
                record["bytes"] = [
                    None if text is not None else base64.b64encode(self.id_bytes[i]).decode("ascii")
                    for i, text in zip(ids, texts)
                ]
            record["offsets"] = [list(span) for span in zip(starts, ends)]
            record["char_offsets"] = [list(span) for span in char_spans(data, starts, ends)]
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
        return "".join(lines)


# ---------------------------------------------------------------------------
# encode-shards


@click.command("encode-shards")
@model_option
@click.argument("inputs", nargs=-1, required=True)
@click.option(
    "-o", "--output", required=True, help="Folder for the shards (created; may be a URL the workers can write to)."
)
@click.option(
    "--alpha",
    type=float,
    default=None,
    callback=check_alpha,
    help="Sample segmentations (e.g. --alpha 0.1); each line is keyed by its line number. "
    "Default: the model's own (Viterbi unless the model file records one).",
)
@click.option("--seed", type=int, default=None, help="Seed for --alpha (default: random, kept in index.json).")
@click.option("--bos", is_flag=True, help="Start each line with <bos> (id 1).")
@click.option("--eos", is_flag=True, help="End each line with <eos> (id 2).")
@click.option("--no-normalize", is_flag=True, help="Encode the bytes as they are, without the model's normalisation.")
@click.option(
    "--force",
    is_flag=True,
    help="Write into a folder that is not empty: the new shards replace those of an earlier run "
    "(once they are all written); other files are left alone.",
)
@quiet_option(quiet_help="Do not print the closing line (lines, tokens, shards); errors still print.")
@dask_options
def encode_shards_command(
    model_path,
    inputs,
    output,
    alpha,
    seed,
    bos,
    eos,
    no_normalize,
    force,
    quiet,
    dask_scheduler,
    dask_scheduler_file,
    dask_local,
    dask_blocksize,
):
    """Encode files, folders or URLs into numpy token shards, on a Dask cluster.

    Writes OUTPUT/part-NNNNN-RUN.ids.npy and .rows.npy per block and, last,
    OUTPUT/index.json (see docs/distributed.md). Lines are encoded as `bytepiece
    encode` encodes them, with the same keys, so the ids do not depend on the
    cluster or the block size. Without a --dask option the blocks are encoded in
    this process. OUTPUT must be empty unless --force; an interrupted run leaves
    it as it was.

    \b
    Examples:
      bytepiece encode-shards -m my.model -o tokens/ --dask-local 4 corpus/
      bytepiece encode-shards -m my.model -o s3://bucket/tokens/ --dask-scheduler tcp://10.0.0.1:8786 s3://bucket/corpus/
    """
    where = dask_where(dask_scheduler, dask_scheduler_file, dask_local, dask_blocksize)
    _encode_shards(model_path, inputs, output, alpha, seed, bos, eos, no_normalize, where, quiet, force)


def _encode_shards(
    model_path, inputs, output, alpha, seed, bos, eos, no_normalize, where: dict, quiet: bool = False, force=False
) -> None:
    refuse_missing_inputs(inputs)  # before the model is loaded, the folder made or any block encoded
    refuse_output_folder(output, force)
    from ..distributed import encode_files

    index = encode_files(
        list(inputs),
        model_path,
        output,
        alpha=alpha,
        seed=seed,
        add_bos=bos,
        add_eos=eos,
        normalize=not no_normalize,
        overwrite=force,
        **where,
    )
    if not quiet:
        click.echo(f"{index['lines']} lines, {index['tokens']} tokens in {len(index['parts'])} shard(s) in {output}")


# ---------------------------------------------------------------------------
# decode


@click.command("decode")
@model_option
@inputs_argument
@format_option("What the input lines hold (as written by `bytepiece encode`).")
@max_line_option(what="jsonl")
@output_option
@progress_option
def decode_command(model_path, inputs, fmt, max_line, output, force, progress, quiet):
    """Decode id lines (or stdin) back to text.

    The bytes of each line's ids are written back to back, with nothing added:
    line endings come from the ids themselves, so `encode | decode` gives back
    the input byte for byte. Special ids (<pad>, <bos>, <eos>) decode to nothing.
    The ids and pieces formats are read in blocks, so memory stays small even on
    one endless line; a jsonl line is read whole, up to --max-line.

    \b
    Examples:
      bytepiece decode -m my.model corpus.ids > corpus.txt
      bytepiece encode -m my.model a.txt | bytepiece decode -m my.model | cmp - a.txt
    """
    if output not in (None, "-"):
        refuse_existing(output, force)
    else:
        require_stdout("the text; give -o FILE")
    tok = load_tokenizer(model_path)
    table = tok.id_bytes
    pieces = _PieceIds(table)
    meter = progress_meter(progress, "decode", input_size(inputs), quiet)
    with open_output(output, force) as out:
        if fmt == "jsonl":
            for name, first, batch in line_batches(inputs, max_line=max_line):
                meter.advance(sum(len(line) for line in batch))
                chunks = []
                for number, line in enumerate(batch, first):
                    ids = _checked_ids(fmt, line, pieces, len(table), name, number)
                    if ids is not None:
                        chunks.append(b"".join([table[i] for i in ids]))
                out.write(b"".join(chunks))
        else:
            for name, first, part in _blocks_of_words(inputs, fmt, max_line):
                meter.advance(len(part))
                out.write(b"".join([table[i] for i in _part_ids(fmt, part, pieces, len(table), name, first)]))
    meter.finish()


DECODE_BLOCK = 1 << 18  # bytes of ids or pieces read at a time


def _blocks_of_words(paths, fmt: str, max_word: int | None):
    """(input name, number of the line it starts in, part) for the ids or pieces of the
    inputs, cut into parts of about DECODE_BLOCK bytes, each ending at a newline or, in a
    long line, after a separator, so that no id or piece is cut and memory stays bounded
    whatever the lines' lengths. A single word longer than ``max_word`` bytes stops
    with a CliError."""
    separators = (b" ", b"\t", b"\r", b"\x0b", b"\x0c") if fmt == "ids" else (b" ",)
    for path in paths or ("-",):
        name = "<stdin>" if path == "-" else path
        with open_input(path) as handle:
            number = 1
            pending = b""
            while True:
                with naming_input(name):
                    block = handle.read(DECODE_BLOCK)
                data = pending + block if pending else block
                if not block:
                    cut = len(data)
                else:
                    cut = data.rfind(b"\n") + 1 or max(data.rfind(sep) for sep in separators) + 1
                    if cut == 0 and max_word is not None and len(data) > max_word:
                        raise CliError(too_long(name, number, max_word))
                if cut:
                    part, pending = data[:cut], data[cut:]
                    yield name, number, part
                    number += part.count(b"\n")
                else:
                    pending = data
                if not block:
                    break


def _part_ids(fmt: str, part: bytes, pieces: _PieceIds, size: int, name: str, first: int) -> list[int]:
    """The ids in a part of an ids or pieces input (lines from ``first`` on); a CliError
    naming the line when one is not an id of this model."""
    try:
        if fmt == "ids":
            ids = [int(word) for word in part.split()]
        else:
            ids = []
            for text in part.decode("utf-8").split("\n"):
                for word in text.split(" "):
                    word = word.rstrip("\r")
                    if word:
                        ids.append(pieces.id_of(word))
        if ids and (min(ids) < 0 or max(ids) >= size):
            raise ValueError
        return ids
    except (ValueError, KeyError, UnicodeDecodeError):
        # find the line, and say what is wrong with it
        for number, line in enumerate(part.split(b"\n"), first):
            _checked_ids(fmt, line, pieces, size, name, number)
        raise  # (not reached: some line fails)


def _checked_ids(fmt: str, line: bytes, pieces: _PieceIds, size: int, name: str, number: int) -> list[int] | None:
    """The ids of one line (None: a blank jsonl line), or a CliError naming the line."""
    try:
        ids = _line_ids(fmt, line, pieces)
    except (ValueError, KeyError, UnicodeDecodeError) as error:
        detail = str(error) if fmt != "ids" else f"{_first_bad_word(line)!r} is not an id"
        raise CliError(f"{name} line {number}: {detail}") from None
    except RecursionError:
        raise CliError(f"{name} line {number}: JSON nested too deeply") from None
    for i in ids or ():
        if not 0 <= i < size:
            raise CliError(f"{name} line {number}: id {i} is not in the vocabulary (0 .. {size - 1})")
    return ids


class _PieceIds:
    """The id of each word of decode's pieces format. A special id's name (``<pad>``,
    ``<bos>``, ``<eos>``) is that id; any other word is a piece's escaped text, looked up
    among the model's pieces only, so that a real piece whose text is ``<pad>`` (which
    encode writes ``\\x3cpad>``) keeps its own id and its text."""

    def __init__(self, id_bytes):
        self.id_bytes = id_bytes
        self._ids: dict[bytes, int] | None = None

    def id_of(self, word: str) -> int:
        if word in SPECIAL_PIECES:
            return SPECIAL_PIECES.index(word)
        if self._ids is None:
            self._ids = {piece: i for i, piece in enumerate(self.id_bytes) if i >= FIRST_PIECE_ID}
        raw = parse_piece(word, spaces=True)
        try:
            return self._ids[raw]
        except KeyError:
            raise ValueError(f"{word!r} is not a piece of this model") from None


def _line_ids(fmt: str, line: bytes, pieces: _PieceIds) -> list[int] | None:
    """The ids on one input line of decode (None: a blank jsonl line, skipped). Raises
    ValueError, KeyError or UnicodeDecodeError when the line is not in the format."""
    if fmt == "ids":
        return [int(word) for word in line.split()]
    if fmt == "jsonl":
        if not line.strip():
            return None
        record = json.loads(line)
        ids = record.get("ids") if isinstance(record, dict) else None
        if not isinstance(ids, list) or not all(type(i) is int for i in ids):
            raise ValueError('no list of integer ids under "ids"')
        return ids
    ids = []
    for word in line.decode("utf-8").split(" "):
        word = word.rstrip("\r\n")
        if word:
            ids.append(pieces.id_of(word))
    return ids


def _first_bad_word(line: bytes) -> str:
    """The first word of an ids line that is not an integer (for the error message)."""
    for word in line.split():
        try:
            int(word)
        except ValueError:
            return word.decode("utf-8", "replace")
    return line.decode("utf-8", "replace").strip()
