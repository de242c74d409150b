#!/usr/bin/env python
"""Encoding speed of bytepiece against its peers, on the same text and the same vocabulary.

Contenders, all built from ONE BytePiece model (default: tests/data/bytepiece.plus.40k.zip):

* ours      - ``bytepiece.Tokenizer`` (this checkout);
* bp063     - BytePiece 0.6.3, run in a separate interpreter (its package is also called
              ``bytepiece``) that this script drives over a pipe, so that its runs are
              interleaved with the others exactly like in-process contenders;
* sp        - SentencePiece Unigram whose pieces and scores are converted from the model
              (see ``sentencepiece_model``);
* hf        - Hugging Face ``tokenizers`` Unigram from the same pieces and scores.

Every measurement runs all lines once per pass (several passes when one pass is shorter
than ``--min-time``); each repeat runs every contender once, in the same order, and the
reported figure is the median over ``--repeats`` repeats, in MB/s (1 MB = 10**6 bytes of
UTF-8 input). The text is NFC-normalised once up front, so that every contender sees the
same characters (ours still runs its own NFC step on each call, as users get it).

    python benchmarks/bench_encode.py                      # corpora/*.heldout.txt
    python benchmarks/bench_encode.py --text some.txt --repeats 7 --json out.json
"""

from __future__ import annotations

import argparse
import base64
import glob
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
import zipfile
from pathlib import Path

# Hugging Face tokenizers sizes its thread pool from this variable when it first starts.
THREADS_DEFAULT = 2
os.environ.setdefault("RAYON_NUM_THREADS", str(THREADS_DEFAULT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
# numpy's OpenBLAS starts (and briefly spins) worker threads that compete for the 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
MODEL_CANDIDATES = [ROOT / "tests/data/bytepiece.plus.40k.zip"]
BP063_PYTHON = "/tmp/bp063/bin/python"


# ---------------------------------------------------------------------------
# Inputs


def find_model(path: str | None) -> Path:
    if path:
        return Path(path)
    for candidate in MODEL_CANDIDATES:
        if candidate.exists():
            return candidate
    sys.exit("no model found: pass --model PATH (a BytePiece .model/.zip)")


def read_model_json(path: Path) -> str:
    """The JSON text of a BytePiece model file (plain JSON or a zip holding one)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            return archive.read(names[0]).decode("utf-8")
    return Path(path).read_text(encoding="utf-8")


def load_lines(paths: list[str]) -> tuple[list[str], list[str]]:
    """Non-empty lines (without their newline) of the texts, NFC-normalised."""
    if not paths:
        paths = sorted(glob.glob(str(ROOT / "corpora" / "*.heldout.txt")))
        if not paths:
            sys.exit("no corpora/*.heldout.txt here: pass --text PATH (mixed English, Chinese, code)")
    lines: list[str] = []
    for p in paths:
        text = unicodedata.normalize("NFC", Path(p).read_text(encoding="utf-8"))
        lines.extend(line for line in text.split("\n") if line)
    return lines, paths


# ---------------------------------------------------------------------------
# The same vocabulary for SentencePiece and Hugging Face


def log_probs(counts) -> list[float]:
    """log(count) - log(total), the scores BytePiece 0.6.3 gives its pieces."""
    import numpy as np

    return list(np.log(np.asarray(counts, dtype=np.float64)) - np.log(sum(counts)))


class PeerVocab:
    """The model's pieces as a SentencePiece/HF vocabulary (the same ids in both).

    * ids 0, 1, 2: <unk>, <s>, </s>;
    * every piece that is valid UTF-8 is a normal piece with its own log-probability
      (SentencePiece spells spaces as U+2581; HF keeps them, having no normaliser);
    * a single byte that is not UTF-8 (0x80-0xFF) becomes the byte piece <0xNN>;
    * longer pieces that are not UTF-8 cannot be expressed and are dropped: the
      peers reach those bytes through byte fallback instead;
    * the ASCII bytes also get their <0xNN> byte piece (after the others), so that
      byte fallback finds all 256.
    """

    SPECIALS = ["<unk>", "<s>", "</s>"]

    def __init__(self, pieces, counts):
        scores = log_probs(counts)
        self.text: list[str] = list(self.SPECIALS)  # piece as HF spells it
        self.score: list[float] = [0.0, 0.0, 0.0]
        self.is_byte: list[bool] = [False] * 3
        self.raw: list[bytes] = [b"", b"", b""]  # the bytes the id stands for
        self.dropped = 0
        seen = set(self.SPECIALS)
        byte_done = set()
        for piece, score in zip(pieces, scores):
            try:
                if piece == b"\x00":  # SentencePiece will not match NUL as a normal piece
                    raise UnicodeDecodeError("utf-8", piece, 0, 1, "NUL")
                text = piece.decode("utf-8")
            except UnicodeDecodeError:
                if len(piece) == 1:
                    self._add(f"<0x{piece[0]:02X}>", score, True, piece)
                    byte_done.add(piece[0])
                    seen.add(self.text[-1])
                else:
                    self.dropped += 1
                continue
            if text in seen:  # e.g. a piece "<s>" in a code vocabulary
                self.dropped += 1
                continue
            seen.add(text)
            self._add(text, score, False, piece)
        floor = min(self.score[3:]) if len(self.score) > 3 else 0.0
        for b in range(256):
            if b not in byte_done:
                self._add(f"<0x{b:02X}>", floor, True, bytes([b]))

    def _add(self, text, score, is_byte, raw):
        self.text.append(text)
        self.score.append(float(score))
        self.is_byte.append(is_byte)
        self.raw.append(raw)

    def sentencepiece_model(self) -> bytes:
        """A serialised SentencePiece ModelProto: Unigram, byte fallback, identity normaliser."""
        from sentencepiece import sentencepiece_model_pb2 as pb

        proto = pb.ModelProto()
        for i, (text, score, is_byte) in enumerate(zip(self.text, self.score, self.is_byte)):
            sp = proto.pieces.add()
            if i == 0:
                sp.piece, sp.score, sp.type = text, 0.0, pb.ModelProto.SentencePiece.UNKNOWN
            elif i < 3:
                sp.piece, sp.score, sp.type = text, 0.0, pb.ModelProto.SentencePiece.CONTROL
            elif is_byte:
                sp.piece, sp.score, sp.type = text, score, pb.ModelProto.SentencePiece.BYTE
            else:
                sp.piece, sp.score = text.replace(" ", "\u2581"), score
                sp.type = pb.ModelProto.SentencePiece.NORMAL
        ts = proto.trainer_spec
        ts.model_type = pb.TrainerSpec.UNIGRAM
        ts.vocab_size = len(self.text)
        ts.byte_fallback = True
        ts.split_by_unicode_script = False
        ts.split_by_whitespace = False
        ts.split_by_number = False
        ts.split_digits = False
        ts.treat_whitespace_as_suffix = False
        ts.unk_id, ts.bos_id, ts.eos_id, ts.pad_id = 0, 1, 2, -1
        ns = proto.normalizer_spec
        ns.name = "identity"
        ns.precompiled_charsmap = b""
        ns.add_dummy_prefix = False
        ns.remove_extra_whitespaces = False
        ns.escape_whitespaces = True
        return proto.SerializeToString()

    def hf_tokenizer(self):
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers.models import Unigram

        vocab = list(zip(self.text, self.score))
        return HFTokenizer(Unigram(vocab, unk_id=0, byte_fallback=True))

    def ids_to_pieces(self, ids) -> list[bytes]:
        raw = self.raw
        return [raw[i] for i in ids]


# ---------------------------------------------------------------------------
# BytePiece 0.6.3 in its own interpreter, driven over a pipe

BP063_WORKER = r"""
import base64, json, sys, time
import bytepiece
header = json.loads(sys.stdin.readline())
with open(header["model"], encoding="utf-8") as f:
    tok = bytepiece.Tokenizer(json.load(f))
with open(header["lines"], encoding="utf-8") as f:
    lines = json.load(f)
enc = tok.encode
print(json.dumps({"version": getattr(bytepiece, "__version__", "0.6.3"), "file": bytepiece.__file__}), flush=True)
for command in sys.stdin:
    cmd = json.loads(command)
    if cmd["op"] == "time":
        t, c = time.perf_counter(), time.process_time()
        for _ in range(cmd["passes"]):
            for line in lines:
                enc(line)
        print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c}), flush=True)
    elif cmd["op"] == "pieces":
        out = [[base64.b64encode(p).decode() for p in tok.tokenize(line)] for line in lines]
        print(json.dumps(out), flush=True)
    else:
        break
"""


class BP063:
    def __init__(self, python: str, model_json: str, lines: list[str], workdir: str):
        model_path = os.path.join(workdir, "model.json")
        lines_path = os.path.join(workdir, "lines.json")
        Path(model_path).write_text(model_json, encoding="utf-8")
        Path(lines_path).write_text(json.dumps(lines, ensure_ascii=False), encoding="utf-8")
        self.proc = subprocess.Popen(
            [python, "-c", BP063_WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=workdir
        )
        self._send({"model": model_path, "lines": lines_path})
        self.info = self._recv()

    def _send(self, obj):
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def _recv(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the BytePiece 0.6.3 worker died (see its stderr above)")
        return json.loads(line)

    def run(self, passes: int) -> tuple[float, float]:
        self._send({"op": "time", "passes": passes})
        answer = self._recv()
        return answer["seconds"], answer["cpu"]

    def pieces(self) -> list[list[bytes]]:
        self._send({"op": "pieces"})
        return [[base64.b64decode(p) for p in line] for line in self._recv()]

    def close(self):
        try:
            self._send({"op": "quit"})
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()


# ---------------------------------------------------------------------------
# Timing


class Contender:
    """One way of encoding every line; `run(passes)` returns (wall seconds, CPU seconds of the
    whole process, all threads) taken."""

    def __init__(self, name: str, label: str, run):
        self.name, self.label, self.run = name, label, run
        self.passes = 1
        self.samples: list[float] = []  # wall seconds per pass
        self.cpu: list[float] = []  # CPU seconds per pass

    def calibrate(self, min_time: float) -> None:
        seconds, _ = self.run(1)  # also a warm-up
        if seconds < min_time:
            self.passes = max(1, int(min_time / max(seconds, 1e-6) + 0.999))

    def measure(self) -> None:
        wall, cpu = self.run(self.passes)
        self.samples.append(wall / self.passes)
        self.cpu.append(cpu / self.passes)


def loop(fn):
    """`passes` passes of fn(), timed."""

    def run(passes: int) -> float:
        t, c = time.perf_counter(), time.process_time()
        for _ in range(passes):
            fn()
        return time.perf_counter() - t, time.process_time() - c

    return run


def build_contenders(tok, sp, hf, bp, lines, threads: int, alpha: float) -> list[Contender]:
    enc = tok.encode
    sp_enc = sp.encode
    hf_enc = hf.encode

    def ours_viterbi():
        for line in lines:
            enc(line)

    def ours_sample():
        for line in lines:
            enc(line, alpha=alpha)

    def sp_viterbi():
        for line in lines:
            sp_enc(line)

    def sp_sample():
        for line in lines:
            sp_enc(line, enable_sampling=True, alpha=alpha, nbest_size=-1)

    def hf_viterbi():
        for line in lines:
            hf_enc(line)

    out = [
        Contender("ours_viterbi", "ours: encode(line)", loop(ours_viterbi)),
        Contender("sp_viterbi", "SentencePiece: sp.encode(line)", loop(sp_viterbi)),
        Contender("hf_viterbi", "HF tokenizers: tok.encode(line)", loop(hf_viterbi)),
    ]
    if bp is not None:
        out.append(Contender("bp063_viterbi", "BytePiece 0.6.3: encode(line)", bp.run))
    out += [
        Contender(
            "ours_batch_1",
            "ours: encode_batch(lines, num_threads=1)",
            loop(lambda: tok.encode_batch(lines, num_threads=1)),
        ),
        Contender(
            "ours_batch_n",
            f"ours: encode_batch(lines, num_threads={threads})",
            loop(lambda: tok.encode_batch(lines, num_threads=threads)),
        ),
    ]
    try:
        import inspect

        has_numpy = "as_numpy" in inspect.signature(tok.encode_batch).parameters
    except (TypeError, ValueError):
        has_numpy = False
    if has_numpy:  # flat ids without Python lists: little work left under the GIL
        out += [
            Contender(
                "ours_batch_1_np",
                "ours: encode_batch(lines, num_threads=1, as_numpy=True)",
                loop(lambda: tok.encode_batch(lines, num_threads=1, as_numpy=True)),
            ),
            Contender(
                "ours_batch_n_np",
                f"ours: encode_batch(lines, num_threads={threads}, as_numpy=True)",
                loop(lambda: tok.encode_batch(lines, num_threads=threads, as_numpy=True)),
            ),
        ]
    out += [
        Contender(
            "sp_batch_n",
            f"SentencePiece: sp.encode(lines, num_threads={threads})",
            loop(lambda: sp_enc(lines, num_threads=threads)),
        ),
        Contender(
            "hf_batch_n",
            f"HF tokenizers: encode_batch(lines) (RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS')})",
            loop(lambda: hf.encode_batch(lines)),
        ),
        Contender("ours_sample", f"ours: encode(line, alpha={alpha})", loop(ours_sample)),
        Contender(
            "sp_sample",
            f"SentencePiece: encode(line, enable_sampling=True, alpha={alpha}, nbest_size=-1)",
            loop(sp_sample),
        ),
    ]
    return out


# ---------------------------------------------------------------------------
# Report


def machine() -> dict:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "python": platform.python_version(), "platform": platform.platform()}


def agreement(reference: list[list[bytes]], other: list[list[bytes]], logp: dict, expressible: set) -> dict:
    """How often `other` segments a line as we do: identically, or with the same total score
    under our model (a tie broken the other way); the same among the lines whose segmentation
    by us the other can express (no dropped piece); and the share of our boundaries it has."""
    same = tied = hit = total = fit = fit_ok = 0
    for a, b in zip(reference, other):
        ok = a == b or abs(sum(logp[p] for p in a) - sum(logp.get(p, float("-inf")) for p in b)) <= 1e-9 * (1 + len(a))
        if a == b:
            same += 1
        elif ok:
            tied += 1
        if all(p in expressible for p in a):
            fit += 1
            fit_ok += ok
        ends_a, ends_b, pos = set(), set(), 0
        for p in a:
            pos += len(p)
            ends_a.add(pos)
        pos = 0
        for p in b:
            pos += len(p)
            ends_b.add(pos)
        hit += len(ends_a & ends_b)
        total += len(ends_a)
    n = max(1, len(reference))
    return {
        "identical": same / n,
        "identical_or_tie": (same + tied) / n,
        "expressible_lines": fit / n,
        "expressible_identical_or_tie": fit_ok / max(1, fit),
        "boundaries": hit / max(1, total),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="PATH",
        help="text file(s) to encode, one call per line (default: corpora/*.heldout.txt)",
    )
    ap.add_argument("--model", help="BytePiece model (.model JSON or .zip); default: the vendored 40k model")
    ap.add_argument("--repeats", type=int, default=5, help="repeats per contender; the median is reported (>= 5)")
    ap.add_argument("--min-time", type=float, default=0.25, help="seconds per measurement at least (several passes)")
    ap.add_argument("--threads", type=int, default=THREADS_DEFAULT, help="threads for the batched runs")
    ap.add_argument("--alpha", type=float, default=0.1, help="sampling alpha")
    ap.add_argument("--bp063-python", default=BP063_PYTHON, help="interpreter that has BytePiece 0.6.3")
    ap.add_argument("--no-bp063", action="store_true", help="skip BytePiece 0.6.3")
    ap.add_argument("--json", metavar="PATH", help="also write every sample and result as JSON")
    args = ap.parse_args(argv)
    if args.repeats < 5:
        ap.error("--repeats must be at least 5")
    if str(args.threads) != os.environ.get("RAYON_NUM_THREADS"):
        print(
            f"note: HF tokenizers uses RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS')}; "
            f"set it to {args.threads} in the environment to match --threads",
            file=sys.stderr,
        )

    sys.path.insert(0, str(ROOT))
    import sentencepiece as spm
    import tokenizers

    import bytepiece

    model_path = find_model(args.model)
    lines, text_paths = load_lines(args.text)
    nbytes = sum(len(line.encode("utf-8")) for line in lines)
    mb = nbytes / 1e6

    tok = bytepiece.Tokenizer(str(model_path))
    vocab = tok.vocabulary
    peer = PeerVocab(vocab.pieces, vocab.counts)
    sp = spm.SentencePieceProcessor(model_proto=peer.sentencepiece_model())
    hf = peer.hf_tokenizer()

    bp = None
    workdir = tempfile.mkdtemp(prefix="bench_encode_")
    if not args.no_bp063:
        if os.path.exists(args.bp063_python):
            bp = BP063(args.bp063_python, read_model_json(model_path), lines, workdir)
        else:
            print(f"note: {args.bp063_python} not found; skipping BytePiece 0.6.3", file=sys.stderr)

    try:
        # -- sanity: do the peers segment like we do? ---------------------------
        ours_pieces = [tok.tokenize(line) for line in lines]
        sp_pieces = [peer.ids_to_pieces(ids) for ids in sp.encode(lines)]
        hf_pieces = [peer.ids_to_pieces(e.ids) for e in hf.encode_batch(lines)]
        logp = dict(zip(vocab.pieces, log_probs(vocab.counts)))
        fits = set(peer.raw[3:])
        agree = {
            "SentencePiece": agreement(ours_pieces, sp_pieces, logp, fits),
            "HF tokenizers": agreement(ours_pieces, hf_pieces, logp, fits),
        }
        if bp is not None:
            agree["BytePiece 0.6.3"] = agreement(ours_pieces, bp.pieces(), logp, set(vocab.pieces))
        # Check that every contender loses nothing: pieces must rebuild each line.
        for name, segs in [("sp", sp_pieces), ("hf", hf_pieces)]:
            bad = sum(1 for line, p in zip(lines, segs) if b"".join(p) != line.encode("utf-8"))
            if bad:
                print(f"warning: {name} does not rebuild {bad} lines byte-exactly", file=sys.stderr)

        # -- timing ----------------------------------------------------------------
        load_before = os.getloadavg()
        contenders = build_contenders(tok, sp, hf, bp, lines, args.threads, args.alpha)
        for c in contenders:
            c.calibrate(args.min_time)
        for r in range(args.repeats):
            for c in contenders:
                c.measure()
            print(f"repeat {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)
        load_after = os.getloadavg()
    finally:
        if bp is not None:
            bp.close()
        shutil.rmtree(workdir, ignore_errors=True)

    speed = {c.name: mb / statistics.median(c.samples) for c in contenders}
    cpu_speed = {c.name: mb / max(statistics.median(c.cpu), 1e-9) for c in contenders}
    spread = {c.name: (mb / max(c.samples), mb / min(c.samples)) for c in contenders}
    labels = {c.name: c.label for c in contenders}

    # -- report ----------------------------------------------------------------------
    info = machine()
    versions = {
        "bytepiece (ours)": bytepiece.__version__,
        "sentencepiece": spm.__version__,
        "tokenizers": tokenizers.__version__,
        "BytePiece 0.6.3": bp.info.get("version") if bp is not None else "skipped",
    }
    out = io.StringIO()
    w = out.write
    w("## bench_encode\n\n")
    w(f"- machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}, {info['platform']}\n")
    w("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + "\n")
    w(
        f"- model: {model_path.name} ({len(vocab.pieces)} pieces; SentencePiece/HF vocabulary "
        f"{len(peer.text)} entries, {peer.dropped} non-UTF-8 multi-byte pieces dropped)\n"
    )
    w(
        f"- text: {', '.join(Path(p).name for p in text_paths)}: {len(lines)} non-empty lines, "
        f"{nbytes / 1e6:.3f} MB UTF-8\n"
    )
    w(
        f"- median of {args.repeats} interleaved repeats, >= {args.min_time}s each; MB/s of UTF-8 input "
        f"(min..max in brackets)\n"
    )
    w(
        f"- load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after timing, on "
        f"{info['cores']} cores"
        + (
            " -- THE MACHINE WAS BUSY: wall-clock figures are unreliable, see the CPU-time column"
            if max(load_before[0], load_after[0]) > 1.5 * (info["cores"] or 1)
            else ""
        )
        + "\n\n"
    )

    w("| contender | MB/s (wall) | MB per CPU-second |\n| --- | ---: | ---: |\n")
    for c in contenders:
        lo, hi = spread[c.name]
        w(f"| {labels[c.name]} | {speed[c.name]:.2f} ({lo:.2f}..{hi:.2f}) | {cpu_speed[c.name]:.2f} |\n")

    w(
        "\nRatios of wall-clock MB/s decide PASS/FAIL; for single-threaded pairs the ratio of "
        "MB per CPU-second is also shown (immune to other processes taking the CPU).\n\n"
        "| target | ratio | ratio (CPU time) | goal | result |\n| --- | ---: | ---: | ---: | :---: |\n"
    )

    def target(desc, a, b, goal, single=True):
        if a not in speed or b not in speed:
            w(f"| {desc} | n/a | n/a | >= {goal}x | SKIP |\n")
            return
        ratio = speed[a] / speed[b]
        cpu_ratio = f"{cpu_speed[a] / cpu_speed[b]:.2f}x" if single else "-"
        w(f"| {desc} | {ratio:.2f}x | {cpu_ratio} | >= {goal}x | {'PASS' if ratio >= goal else 'FAIL'} |\n")

    n = args.threads
    target("Viterbi per line: ours / SentencePiece", "ours_viterbi", "sp_viterbi", 3)
    target("Viterbi per line: ours / BytePiece 0.6.3", "ours_viterbi", "bp063_viterbi", 10)
    target("Viterbi per line: ours / HF tokenizers (info)", "ours_viterbi", "hf_viterbi", 1)
    target(f"batch, {n} threads: ours / SentencePiece {n} threads", "ours_batch_n", "sp_batch_n", 2, False)
    target(f"batch, {n} threads: ours / ours 1 thread", "ours_batch_n", "ours_batch_1", 1.9, False)
    target(f"batch, {n} threads: ours / HF encode_batch (info)", "ours_batch_n", "hf_batch_n", 1, False)
    if "ours_batch_n_np" in speed:
        target(
            f"batch as_numpy, {n} threads: ours / ours 1 thread (info)",
            "ours_batch_n_np",
            "ours_batch_1_np",
            1.9,
            False,
        )
    target(f"sampling alpha={args.alpha}: ours / our Viterbi", "ours_sample", "ours_viterbi", 0.95)
    target(f"sampling alpha={args.alpha}: ours / SentencePiece sampling", "ours_sample", "sp_sample", 10)

    w(
        "\n| Viterbi agreement with ours | identical lines | identical or tied score | same, on lines it can "
        "express (share) | our boundaries found |\n| --- | ---: | ---: | ---: | ---: |\n"
    )
    for name, a in agree.items():
        w(
            f"| {name} | {100 * a['identical']:.2f}% | {100 * a['identical_or_tie']:.2f}% | "
            f"{100 * a['expressible_identical_or_tie']:.2f}% ({100 * a['expressible_lines']:.1f}%) | "
            f"{100 * a['boundaries']:.2f}% |\n"
        )
    w(
        "\n(Lines a peer cannot express are those where our Viterbi path uses one of the dropped "
        "multi-byte non-UTF-8 pieces, e.g. part of a rare CJK character; the peer spells those bytes "
        "with byte fallback instead.)\n"
    )
    report = out.getvalue()
    print(report)

    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": info,
                    "versions": versions,
                    "model": str(model_path),
                    "texts": text_paths,
                    "lines": len(lines),
                    "bytes": nbytes,
                    "repeats": args.repeats,
                    "mb_per_s": speed,
                    "mb_per_cpu_s": cpu_speed,
                    "samples_s": {c.name: c.samples for c in contenders},
                    "cpu_samples_s": {c.name: c.cpu for c in contenders},
                    "load": [load_before, load_after],
                    "passes": {c.name: c.passes for c in contenders},
                    "agreement": agree,
                },
                indent=2,
            ),
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
