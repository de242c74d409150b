"""``bytepiece train``: a vocabulary from text files, folders or stdin, with a summary.

The command turns its options into a :class:`bytepiece.Trainer` (an option left
unset is not passed, so the Trainer's default is the only one), trains on the
files (or on a Dask cluster with a --dask option) and writes each model through
:func:`bytepiece.model.save_model`. Output paths are checked before the corpus is
read, so a run that would end refusing to overwrite a file does no work. stdin is
copied to a temporary file first: training may read its corpus twice.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..atomic import remove_files_of_dead_processes
from ..model import FIRST_PIECE_ID, save_model
from .common import (
    MAX_DEFAULT_WORKERS,
    MAX_THREADS,
    STDOUT,
    CliError,
    FiniteFloatRange,
    TextOut,
    binary_stream,
    dask_options,
    dask_where,
    default_workers,
    line_batches,
    normalized,
    progress_meter,
    progress_option,
    refuse_existing,
    writing,
)

BUNDLED_CORPORA = "corpora"
DEFAULT_MODEL = "bytepiece.model"


def _bundled_corpus() -> list[str]:
    """The bundled ``corpora/*.train.txt``, found from the current directory (a checkout)."""
    files = sorted(str(p) for p in Path(BUNDLED_CORPORA).glob("*.train.txt"))
    if not files:
        raise CliError(
            f"no PATH given and no bundled corpus in {os.path.abspath(BUNDLED_CORPORA)}/*.train.txt; "
            "run from a bytepiece checkout or name the files to train on"
        )
    return files


def _default_workers() -> int:
    from ..training.memory import default_workers as memory_default

    return memory_default(default_workers())


def _model_paths(output: str, sizes: Sequence[int]) -> list[str]:
    """Where the models go: OUTPUT for one size, OUTPUT.SIZE for each of several (largest first)."""
    if len(sizes) <= 1:
        return [output]
    return [f"{output}.{size}" for size in sorted(sizes, reverse=True)]


SPOOL_PREFIX = "bytepiece-stdin-"


def _spool_stdin(directory: str | None) -> str:
    """Copy stdin to a temporary file (training may read its corpus twice). The copy is
    removed if copying fails or is interrupted; its name carries this process's id, so
    that a copy left by a run killed outright (SIGKILL) is removed by the next run."""
    import shutil
    import tempfile

    if sys.stdin is None:
        raise CliError("stdin is closed: there is no corpus to read from -")
    folder = directory or tempfile.gettempdir()
    _sweep_dead_copies(folder)
    try:
        fd, path = tempfile.mkstemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-", suffix=".txt", dir=folder)
    except OSError as error:
        raise CliError(f"cannot copy stdin to a temporary file in {folder} ({error.strerror}); set TMPDIR") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            shutil.copyfileobj(binary_stream(sys.stdin), handle, 1 << 20)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(path)
        if isinstance(error, OSError) and error.filename is None:
            full = error.errno in (errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC))
            advice = "; set TMPDIR to a folder with room for the corpus" if full else ""
            raise CliError(f"cannot copy stdin to {path} ({error.strerror}){advice}") from None
        raise
    return path


def _sweep_dead_copies(folder: str) -> None:
    """Remove stdin copies left in ``folder`` by runs that no longer exist."""
    remove_files_of_dead_processes(folder, SPOOL_PREFIX, ".txt", "-")


class _PeakMemory:
    """The peak resident memory of this run, for the summary.

    It is this process's own peak, or the peak of a child process this run started
    and waited for (the fork pool of ``engine="process"``, the workers of
    ``--dask-local``) when that is higher. Neither ``getrusage`` figure alone says
    that: ``RUSAGE_CHILDREN`` keeps the largest child ever waited for by this process
    *or by the process it replaced*, so ``bash -c 'big; bytepiece train'`` (bash
    execs the last command) reported ``big``; and on Linux ``RUSAGE_SELF`` also
    keeps the peak of the process that forked this one before its exec (a big
    Python that runs ``bytepiece train`` as a subprocess). So the own peak is the
    high-water mark of this program's memory (``VmHWM`` in /proc/self/status, where
    there is one; ``RUSAGE_SELF`` elsewhere), and the children's figure is read when
    the run starts and counts only if it rose during the run.
    """

    def __init__(self) -> None:
        self._children_before = self._rusage_bytes("RUSAGE_CHILDREN")

    @staticmethod
    def _rusage_bytes(who: str) -> int | None:
        try:
            import resource
        except ImportError:  # not on this platform
            return None
        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
        return resource.getrusage(getattr(resource, who)).ru_maxrss * scale

    @classmethod
    def _own_bytes(cls) -> int | None:
        try:
            with open("/proc/self/status", encoding="ascii", errors="replace") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024  # "VmHWM:  123456 kB"
        except (OSError, ValueError, IndexError):
            pass
        return cls._rusage_bytes("RUSAGE_SELF")

    def mb(self) -> float | None:
        own = self._own_bytes()
        if own is None:
            return None
        children = self._rusage_bytes("RUSAGE_CHILDREN") or 0
        if self._children_before is not None and children > self._children_before:
            own = max(own, children)  # a child of this run peaked higher
        return own / 1e6


def _bytes_per_token(tok, paths: Sequence[str]) -> tuple[int, int]:
    total_bytes = tokens = 0
    for _name, _first, batch in line_batches(paths, option=False):
        datas = normalized(tok, batch)
        tokens += sum(len(ids) for ids in tok.encode_batch(datas))
        total_bytes += sum(len(d) for d in datas)
    return total_bytes, tokens


# (The options below are alike by shape on purpose: click declares each with its own
# type, default and help.)
@click.command("train")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, allow_dash=True))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    default=DEFAULT_MODEL,
    show_default=True,
    help="Model file to write (atomically). With several --vocab-size values: OUTPUT.SIZE each.",
)
@click.option("--force", is_flag=True, help="Overwrite existing model files.")
@click.option(
    "--vocab-size",
    "vocab_sizes",
    type=click.IntRange(min=259, max=2**31 - 1),
    multiple=True,
    help="Vocabulary size, counting the 256 single bytes and the 3 special ids "
    "(default: the Trainer's, 10000). Repeat for several models in one run, "
    "e.g. --vocab-size 8000 --vocab-size 32000.",
)
@click.option(
    "--order",
    type=click.IntRange(min=1, max=8),
    default=6,
    show_default=True,
    help="Longest byte n-gram counted in the first stage.",
)
@click.option(
    "--min-count",
    type=click.IntRange(min=1, max=2**53),
    default=2,
    show_default=True,
    help="Drop pieces seen fewer times than this.",
)
@click.option(
    "--max-piece-length",
    type=click.IntRange(min=1, max=2**31 - 1),
    default=None,
    help="Longest piece, in bytes (default: the Trainer's, 24; 36 with --no-em, as 0.6.3).",
)
@click.option("--isolate-digits", is_flag=True, help="Keep every digit a piece of its own.")
@click.option(
    "--no-ensure-unicode",
    is_flag=True,
    help="Also allow multi-byte pieces that start inside a UTF-8 character (by default none does, as "
    "0.6.3's ensure_unicode). Either way a piece may end inside one, e.g. the first two bytes of a "
    "three-byte character; `bytepiece info` counts both kinds.",
)
@click.option(
    "--normalize",
    "normalization",
    type=click.Choice(["none", "nfc", "nfkc", "nfd", "nfkd"], case_sensitive=False),
    default=None,
    show_default="none; nfc with --no-em, as 0.6.3",
    help="The Unicode normalisation of the training text, recorded in the model so that "
    "encoding applies the same. 'none' keeps the text as it is: decoding then gives back "
    "exactly what was encoded. 'nfc' is what BytePiece 0.6.3 does (its files stay plain "
    "0.6.3 files); the others are written with a metadata entry 0.6.3 cannot read.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=MAX_THREADS),
    default=_default_workers,
    show_default=f"the usable cores, at most {MAX_DEFAULT_WORKERS}, one per 256 MB the process may use",
    help="Threads for counting, pruning and EM. The model file is byte for byte the same "
    "whatever their number; only the time and memory change.",
)
@click.option(
    "--errors",
    "encoding_errors",
    type=click.Choice(["strict", "replace", "bytes"]),
    default="strict",
    show_default=True,
    help="Invalid UTF-8 in the corpus: stop with an error, replace it (U+FFFD), or train on raw bytes.",
)
@click.option(
    "--no-em",
    is_flag=True,
    help="Stop after BytePiece 0.6.3's algorithm, without the Unigram EM refinement "
    "(the vocabulary 0.6.3 itself would train).",
)
@click.option(
    "--em-seed",
    type=click.Choice(["ngrams", "tagged"]),
    default=None,
    help="Where the EM starts: the most frequent byte n-grams (default: the Trainer's, "
    "ngrams), or also 0.6.3's tagged and pruned vocabulary (tagged: slower, and "
    "measurably worse on held-out text).",
)
@click.option(
    "--script-floor",
    type=FiniteFloatRange(min=0, max=0.5),
    default=None,
    help="Script balance of the EM stage for mixed corpora: a script with less than "
    "this share of the text weighs as if it had this share, or 3 times its own "
    "if that is less (default: the Trainer's, 0.25; 0 = plain likelihood). Higher "
    "gives minority scripts (e.g. Chinese among English) more pieces. "
    "Example: --script-floor 0.3",
)
@click.option(
    "--balance",
    type=FiniteFloatRange(min=0, min_open=True, max=1),
    default=None,
    help="Tempered script shares before the floor: a script with share p of the "
    "text weighs as p**BALANCE (default: the Trainer's, 1.0 = off). Example: --balance 0.5",
)
@click.option(
    "--include",
    "include",
    multiple=True,
    metavar="GLOB",
    help="Take from folders only the files matching this glob (fnmatch: *, ?, [...]), "
    "matched against the path relative to the folder given and against the file name. "
    "Repeatable: a file matching any is taken. Files named directly are always taken. "
    "Example: --include '*.txt'",
)
@click.option(
    "--exclude",
    "exclude",
    multiple=True,
    metavar="GLOB",
    help="Leave out of folders the files (and folders) matching this glob, as --include "
    "matches. Repeatable. Example: --exclude '*.heldout.txt'",
)
@click.option(
    "--eval",
    "eval_paths",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Held-out text: report bytes per token on it for each model. Repeatable.",
)
@click.option(
    "--ngram-memory",
    type=FiniteFloatRange(min=0, max=1e9),
    default=None,
    metavar="MB",
    help="Memory budget of the n-gram table (default: a quarter of the memory this process may use "
    "beyond 256 MB, from 16 MB to 1000 MB; 0 = none). Give it to make a large run's model "
    "independent of the machine. "
    "On a corpus whose n-grams do not fit, the rarest are dropped and the counts become "
    "approximate (a message says so) instead of the run running out of memory. "
    "Example: --ngram-memory 500",
)
@click.option(
    "--em-sample",
    type=FiniteFloatRange(min=0, min_open=True, max=1e9),
    default=None,
    metavar="MB",
    help="EM runs on a uniform sample of the corpus this big (default: the Trainer's, 64 MB).",
)
@dask_options
@progress_option(
    quiet_help="Print no progress and no summary: only errors, the --eval figures if asked "
    "for, and the warning that the n-gram budget was hit."
)
def train_command(
    paths,
    output,
    force,
    vocab_sizes,
    order,
    min_count,
    max_piece_length,
    isolate_digits,
    no_ensure_unicode,
    normalization,
    workers,
    encoding_errors,
    no_em,
    em_seed,
    script_floor,
    balance,
    include,
    exclude,
    eval_paths,
    ngram_memory,
    em_sample,
    dask_scheduler,
    dask_scheduler_file,
    dask_local,
    dask_blocksize,
    progress,
    quiet,
):
    """Train a vocabulary on text files, folders (the text files in them) or stdin (-).

    With no PATH, trains on the bundled corpora/*.train.txt of a bytepiece
    checkout (run from its top folder) and writes bytepiece.model. Prints a
    summary when done; progress goes to stderr. Ctrl-C leaves no model file.

    A folder gives every file under it but hidden ones, __pycache__ folders
    and files that look binary (a NUL byte in the first 8 KB, or a gzip, zip,
    PNG, JPEG, PDF... signature: skipped, and counted in the summary);
    --include and --exclude choose among them. A file named directly is
    always read.

    The corpus is streamed (read once; twice with --no-em or --em-seed tagged;
    never held), so memory does not grow
    with it past two budgets: the n-gram table (--ngram-memory) and the EM
    sample (--em-sample). A corpus whose n-grams do not fit the first drops
    its rarest n-grams (the summary says so) rather than running out of memory.

    \b
    Examples:
      bytepiece train
      bytepiece train -o big.model --ngram-memory 500 --em-sample 32 big-corpus/
      bytepiece train -o my.model --vocab-size 16000 data/ extra.txt
      bytepiece train -o my.model --include '*.train.txt' corpora/
      bytepiece train -o my.model --include '*.txt' --exclude '*.heldout.txt' data/
      bytepiece train -o my.model --vocab-size 8000 --vocab-size 32000 \\
          --eval corpora/en.heldout.txt corpora/en.train.txt
      cat *.txt | bytepiece train -o my.model --vocab-size 4000 -
    """
    dask = dask_where(dask_scheduler, dask_scheduler_file, dask_local, dask_blocksize)
    if dask and "-" in paths and "local_workers" not in dask:
        raise CliError("stdin (-) cannot be read by the workers of a remote Dask cluster; give files")
    sizes = sorted(set(vocab_sizes), reverse=True)
    targets = _model_paths(output, sizes)
    main_job = not paths and click.get_current_context().get_parameter_source("output") is not (
        click.core.ParameterSource.COMMANDLINE
    )
    for target in targets:  # before any work: a second run of the main job stops here
        if main_job and not force and os.path.lexists(target):
            raise CliError(
                f"{target}: already exists, so nothing was trained. To train again, add --force to "
                f"replace it (bytepiece train --force) or write another file (bytepiece train -o other.model)"
            )
        refuse_existing(target, force)
    if not paths:
        paths = _bundled_corpus()
    paths, skipped = _select_files(paths, include, exclude)  # (before any work: an empty folder stops here)
    from ..trainer import Trainer

    # (every option passed on by name: alike by shape with other keyword calls only)
    trainer = Trainer(
        **_trainer_options(
            sizes,
            order=order,
            min_count=min_count,
            max_piece_length=max_piece_length,
            isolate_digits=isolate_digits,
            no_ensure_unicode=no_ensure_unicode,
            no_em=no_em,
            em_seed=em_seed,
            script_floor=script_floor,
            balance=balance,
            ngram_memory=ngram_memory,
            em_sample=em_sample,
            normalization=normalization,
            verbose=progress_meter(progress, "train", quiet=quiet).enabled,
        )
    )
    peak = _PeakMemory()
    start = time.monotonic()
    _train(trainer, paths, workers, encoding_errors, dask)
    seconds = time.monotonic() - start
    if len(targets) != len(trainer.pieces):  # one size left to the trainer's default
        targets = _model_paths(output, [0] * len(trainer.pieces))
    # --eval before any model is written: an --eval file that cannot be read fails the
    # run, and a failed run writes nothing.
    from ..tokenizer import Tokenizer

    figures = [
        _bytes_per_token(Tokenizer(vocabulary), eval_paths) if eval_paths else (0, 0)
        for vocabulary in trainer.vocabularies
    ]
    for vocabulary, target in zip(trainer.vocabularies, targets):
        with writing(target):
            save_model(target, vocabulary, overwrite=force)
    try:
        _print_summary(trainer, paths, targets, seconds, peak.mb(), eval_paths, figures, quiet, skipped)
    except OSError as error:
        if error.filename != STDOUT:
            raise
        written = ", ".join(targets)
        raise CliError(f"{STDOUT}: {error.strerror}: the summary was lost ({written} written)") from None


def _trainer_options(
    sizes: Sequence[int],
    *,
    order: int,
    min_count: int,
    max_piece_length: int | None,
    isolate_digits: bool,
    no_ensure_unicode: bool,
    no_em: bool,
    em_seed: str | None,
    script_floor: float | None,
    balance: float | None,
    ngram_memory: float | None,
    em_sample: float | None,
    normalization: str | None,
    verbose: bool,
) -> dict:
    """The Trainer's keyword arguments for the command's options; an option not given
    is left out, so that the Trainer's default is the only default."""
    options: dict[str, Any] = {
        "order": order,
        "max_piece_length": max_piece_length,
        "min_count": min_count,
        "isolate_digits": isolate_digits,
        "ensure_unicode": not no_ensure_unicode,
        "verbose": verbose,
    }
    if no_em:
        options["em"] = False
    if em_seed is not None:
        options["em_seed"] = em_seed
    if script_floor is not None:
        options["em_script_floor"] = script_floor
    if balance is not None:
        options["em_balance"] = balance
    if ngram_memory is not None:
        options["ngram_memory"] = round(ngram_memory * 1e6)
    if em_sample is not None:
        options["em_sample_bytes"] = max(1, round(em_sample * 1e6))
    if normalization is not None:
        options["normalization"] = normalization
    if sizes:
        options["max_vocab_size"] = list(sizes) if len(sizes) > 1 else sizes[0]
    return options


def _select_files(paths: Sequence[str], include: Sequence[str], exclude: Sequence[str]) -> tuple[list[str], int]:
    """The files to read (each folder replaced by the files chosen in it; stdin, -, kept
    in its place) and how many files in folders were skipped as binary."""
    from ..corpus import select_files

    files: list[str] = []
    skipped = 0
    for p in paths:
        if p == "-":
            files.append(p)
            continue
        selection = select_files([p], include or None, exclude or None)
        files.extend(selection.files)
        skipped += len(selection.skipped_binary)
    return files, skipped


def _train(trainer, paths: Sequence[str], workers: int, encoding_errors: str, dask: dict) -> None:
    """Run the trainer on the paths (stdin spooled to a file), with its errors said in
    the command line's terms."""
    from ..corpus import CorpusEncodingError

    spooled = None
    try:
        if "-" in paths:
            spooled = _spool_stdin(None)
            paths = [spooled if p == "-" else p for p in paths]
        if dask:  # counting on the cluster; --workers threads prune and run EM here
            from ..distributed import train_files_on_dask

            train_files_on_dask(trainer, list(paths), workers=workers, errors=encoding_errors, **dask)
        else:
            trainer.train_files(list(paths), workers=workers, errors=encoding_errors)
    except CorpusEncodingError as error:
        if error.path is not None:  # say it in the command line's terms
            shown = "<stdin>" if error.path == spooled else error.path
            raise CliError(
                f"{shown}: not valid UTF-8 at byte offset {error.offset}; "
                "use --errors replace (or --errors bytes) to train anyway"
            ) from None
        raise
    except MemoryError:
        if click.get_current_context().find_root().params.get("debug"):
            raise
        raise CliError(
            f"out of memory while training (n-gram budget {trainer.ngram_memory / 1e6:g} MB, EM sample "
            f"{trainer.em_sample_bytes / 1e6:g} MB); lower --ngram-memory (and --em-sample) to fit this "
            "machine: rare n-grams are then dropped instead"
        ) from None
    finally:
        if spooled is not None:
            with contextlib.suppress(OSError):
                os.unlink(spooled)


def _print_summary(
    trainer,
    paths: Sequence[str],
    targets: Sequence[str],
    seconds: float,
    peak: float | None,
    eval_paths,
    figures: Sequence[tuple[int, int]],
    quiet: bool = False,
    skipped: int = 0,
) -> None:
    """What the run did, on stdout (``paths``: the files read, folders expanded;
    ``figures``: (bytes, tokens) of the --eval files under each model; ``skipped``: the
    files in folders left out as binary). With --quiet only what was asked for (the
    --eval figures) and the warning that counts are approximate remain."""
    out = TextOut(or_stderr=True)  # (stdout closed: the summary and its warning go to stderr)
    corpus_bytes = getattr(trainer, "stats", {}).get("corpus_bytes")
    if not quiet:
        out.write(
            f"trained on {len(paths)} file{'' if len(paths) == 1 else 's'}"
            + (f" ({skipped} skipped as binary)" if skipped else "")
            + (f", {corpus_bytes / 1e6:.1f} MB" if corpus_bytes else "")
            + f" in {seconds:.1f} s"
            + (f", peak memory {peak:.0f} MB" if peak else "")
            + "\n"
        )
    if getattr(trainer, "stats", {}).get("ngram_budget_hit"):
        out.write(
            f"n-gram memory budget ({trainer.ngram_memory / 1e6:g} MB) hit: the rarest n-grams were "
            "dropped, so counts are approximate (raise --ngram-memory for exact ones)\n"
        )
    for pieces, target, (nbytes, tokens) in zip(trainer.pieces, targets, figures):
        if quiet and not eval_paths:
            continue
        line = f"{target}: vocabulary size {len(pieces) + FIRST_PIECE_ID}"
        if eval_paths and tokens:
            line += f", {nbytes / tokens:.3f} bytes/token on {', '.join(eval_paths)}"
        elif eval_paths:
            line += f", no text to measure in {', '.join(eval_paths)}"
        out.write(line + "\n")
    out.flush()
