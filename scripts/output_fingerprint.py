"""A fingerprint of every output that a behaviour-preserving change must keep.

Run it on two versions of the code and compare the two outputs line by line:

    python scripts/output_fingerprint.py > before.txt      # (old checkout)
    python scripts/output_fingerprint.py > after.txt       # (new checkout)
    diff before.txt after.txt && echo identical

Each line is ``name sha256``: a hash over one family of outputs, computed through
the public API only (``Tokenizer``, ``Trainer``, the ``bytepiece`` command), so the
same script runs on any version that has that API. The families:

- Viterbi ids and pieces of every held-out line of the bundled corpora, under the
  vendored BytePiece 0.6.3 model and under a model trained here;
- samples for fixed seeds and keys (keyed, unkeyed streams, batches as lists and as
  numpy on one and two threads, several alphas including the log-space range, the
  legacy sampler), and ``sample_distinct``;
- every lattice query (n-best, score, log-probabilities, log Z, entropy, boundary
  marginals), floats written with ``repr``;
- the bytes of model files trained with and without EM, at one and several sizes, on
  one and two workers, on the bundled corpora and on the slices of the 0.6.3
  reference tests;
- what the command line prints (encode in every format, decode, sample, info);
- the interop exports (Hugging Face ``tokenizer.json``, SentencePiece model).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO / "corpora"
COMPAT_MODEL = REPO / "tests" / "data" / "bytepiece.plus.40k.zip"


def digest(value) -> str:
    h = hashlib.sha256()
    h.update(repr(value).encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:16]


def heldout_lines(limit_per_file: int = 0):
    lines = []
    for name in ("code", "en", "zh"):
        with open(CORPORA / f"{name}.heldout.txt", encoding="utf-8", newline="") as f:
            got = f.readlines()
        lines += got[:limit_per_file] if limit_per_file else got
    return lines


def train_lines(corpus: str, max_bytes: int):
    out, size = [], 0
    with open(REPO / corpus, encoding="utf-8", newline="") as f:
        for line in f:
            size += len(line.encode("utf-8"))
            if size > max_bytes:
                break
            out.append(line)
    return out


def report(name: str, value) -> None:
    print(f"{name} {digest(value)}", flush=True)


def segmentations(tok, label: str, lines) -> None:
    report(f"{label}.viterbi.ids", [tok.encode(t) for t in lines])
    report(f"{label}.viterbi.pieces", [tok.tokenize(t) for t in lines])
    report(f"{label}.viterbi.bos_eos", [tok.encode(t, add_bos=True, add_eos=True) for t in lines[:300]])
    report(f"{label}.batch.lists", tok.encode_batch(lines, num_threads=2))
    ids, rows = tok.encode_batch(lines, as_numpy=True, num_threads=2)
    report(f"{label}.batch.numpy", (ids.tolist(), rows.tolist(), str(ids.dtype)))
    report(f"{label}.offsets", [tuple(tok.encode_with_offsets(t)) for t in lines[:300]])
    report(f"{label}.decode", [tok.decode(tok.encode(t)) for t in lines[:300]])


def samples(tok, label: str, lines) -> None:
    few = lines[:400]
    for alpha in (0.0, 0.1, 1.0, 50.0, 5000.0):
        report(f"{label}.keyed.{alpha}", [tok.encode(t, alpha=alpha, key=i) for i, t in enumerate(few)])
        report(
            f"{label}.keyed_tuple.{alpha}",
            [tok.tokenize(t, alpha=alpha, key=("e", i)) for i, t in enumerate(few[:100])],
        )
    tok.set_seed(1234)
    report(f"{label}.stream", [tok.encode(t, alpha=0.1) for t in few])
    report(f"{label}.stream_tokenize", [tok.tokenize(t, alpha=0.3) for t in few[:100]])
    for threads in (1, 2):
        keys = range(len(lines))
        report(f"{label}.batch_keyed.{threads}", tok.encode_batch(lines, alpha=0.1, keys=keys, num_threads=threads))
        ids, rows = tok.encode_batch(lines, alpha=0.1, keys=keys, num_threads=threads, as_numpy=True)
        report(f"{label}.batch_keyed_numpy.{threads}", (ids.tolist(), rows.tolist()))
    tok.set_seed(99)
    report(f"{label}.batch_stream", tok.encode_batch(few, alpha=0.2))
    report(f"{label}.legacy", [tok.encode(t, alpha=0.1, key=i, sampler="legacy-v1") for i, t in enumerate(few[:100])])
    report(
        f"{label}.distinct",
        [
            tok.sample_distinct(t, 5, alpha=0.2, key=i)
            for i, t in enumerate(["tokenizer", "unbelievable results", "的的的的", "a\nb\n\nc"])
        ],
    )


def queries(tok, label: str, lines) -> None:
    texts = ["tokenizer", "Subword regularisation!", "的了是", "x = f(y)\n\n  return z\n", "a" * 40] + lines[:40]
    report(f"{label}.nbest", [tok.nbest(t, 7) for t in texts])
    out = []
    for t in texts:
        pieces = tok.tokenize(t)
        for alpha in (0.0, 0.1, 1.0, 3000.0):
            out.append(
                (
                    tok.score(t, pieces),
                    tok.log_prob(t, pieces, alpha),
                    tok.log_partition(t, alpha),
                    tok.entropy(t, alpha),
                    tok.boundary_marginals(t, alpha).tolist(),
                )
            )
    report(f"{label}.queries", out)


def research(tok, label: str, lines) -> None:
    """The lattice API of the research features: many draws with their probabilities,
    constrained calls, piece marginals, the edge list, expected counts, StochasTok."""
    texts = ["tokenizer", "1234567 apples\n\nand 89 pears", "的了是", "a" * 40] + lines[:60]
    report(f"{label}.sample", [tok.sample(t, 9, 0.2, key=i, with_log_prob=True) for i, t in enumerate(texts)])
    report(f"{label}.sample_ids", [tok.sample(t, 3, 1.0, key=("s", i)) for i, t in enumerate(texts)])
    report(f"{label}.sample_batch", tok.encode_batch(texts, alpha=0.1, keys=range(len(texts)), num_samples=4))
    out = []
    for i, t in enumerate(texts):
        n = len(tok.normalize_bytes(t.encode()))
        required = list(range(0, n + 1, 5))
        mask = np.zeros(n + 1, dtype=bool)
        mask[required] = True
        out.append(
            (
                tok.encode(t, required_boundaries=required),
                tok.encode(t, required_boundaries=mask, alpha=0.3, key=i),
                tok.tokenize(t, boundary_regex=r"[0-9]+|\\S+"),
                tok.sample(t, 4, 0.5, key=i, required_boundaries=required, with_log_prob=True),
                tok.log_partition(t, 0.5, required_boundaries=required),
            )
        )
    report(f"{label}.constrained", out)
    report(f"{label}.piece_marginals", [tok.piece_marginals(t, 0.3).tolist() for t in texts])
    report(f"{label}.lattice", [tok.lattice(t).tolist() for t in texts[:20]])
    report(f"{label}.expected_counts", tok.expected_counts(texts, 0.3).tolist())
    report(f"{label}.stochastok", [tok.stochastok(tok.encode(t), 0.3, key=i) for i, t in enumerate(texts)])


def trained_models(tmp: Path) -> None:
    from bytepiece import Trainer

    corpus = [str(CORPORA / f"{n}.train.txt") for n in ("code", "en", "zh")]
    runs = {
        "em.8000.w1": {"options": {"max_vocab_size": 8000}, "workers": 1},
        "em.8000.w2": {"options": {"max_vocab_size": 8000}, "workers": 2},
        "em.sizes": {"options": {"max_vocab_size": [12000, 4000]}, "workers": 2},
        "em.tagged": {"options": {"max_vocab_size": 6000, "em_seed": "tagged", "em_pairs": 1.0}, "workers": 2},
        "em.floor0": {
            "options": {"max_vocab_size": 6000, "em_script_floor": 0.0, "isolate_digits": True},
            "workers": 2,
        },
        "noem.8000": {"options": {"max_vocab_size": 8000, "em": False}, "workers": 2},
        "noem.sizes.process": {
            "options": {"max_vocab_size": [6000, 3000], "em": False, "engine": "process"},
            "workers": 2,
        },
    }
    for name, run in runs.items():
        trainer = Trainer(verbose=False, **run["options"])
        trainer.train_files(corpus, workers=run["workers"])
        path = tmp / f"{name}.model"
        trainer.save(path)
        files = sorted(tmp.glob(f"{name}.model*"))
        report(f"model.{name}", [(f.name, hashlib.sha256(f.read_bytes()).hexdigest()) for f in files])
    # The slices of the 0.6.3 reference tests (tests/golden/train_reference_063.py).
    cases = {
        "en": ("corpora/en.train.txt", 200_000, [2000, 1000], {}),
        "code": ("corpora/code.train.txt", 200_000, [2000], {}),
        "mixed_opts": (
            "corpora/zh.train.txt",
            120_000,
            [1200],
            {"order": 4, "min_count": 3, "isolate_digits": True, "ensure_unicode": False, "max_piece_length": 12},
        ),
    }
    for name, (corpus_file, max_bytes, sizes, options) in cases.items():
        lines = train_lines(corpus_file, max_bytes)
        for em in (False, True):
            trainer = Trainer(max_vocab_size=list(sizes), em=em, verbose=False, **options)
            trainer.train(lines, workers=1)
            report(f"model.slice.{name}.em={em}", [sorted(p.items()) for p in trainer.pieces])


def cli_outputs(tmp: Path, model: Path) -> None:
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=str(REPO))  # this checkout's package
    heldout = str(CORPORA / "en.heldout.txt")
    small = tmp / "small.txt"
    small.write_text("".join(heldout_lines(60)), encoding="utf-8")

    def run(*args, stdin=None):
        got = subprocess.run(
            [sys.executable, "-m", "bytepiece", *args], capture_output=True, env=env, input=stdin, cwd=tmp
        )
        return got.returncode, got.stdout, got.stderr.decode("utf-8", "replace").splitlines()[-1:]

    ids = run("encode", "-m", str(model), str(small))
    report("cli.encode.ids", ids)
    report("cli.encode.pieces", run("encode", "-m", str(model), "--format", "pieces", str(small)))
    report("cli.encode.jsonl", run("encode", "-m", str(model), "--format", "jsonl", str(small)))
    report("cli.encode.sampled", run("encode", "-m", str(model), "--alpha", "0.1", "--seed", "7", "--eos", str(small)))
    report("cli.encode.big", run("encode", "-m", str(model), "--threads", "2", heldout))
    report("cli.decode", run("decode", "-m", str(model), "-", stdin=ids[1]))
    report("cli.sample", run("sample", "-m", str(model), "unbelievable", "-n", "5", "--alpha", "0.1", "--seed", "3"))
    report("cli.sample.check", run("sample", "-m", str(model), "token", "--check", "2000", "--seed", "3"))
    report("cli.info", run("info", "-m", model.name, "--json", "--text", small.name))  # (relative: cwd is tmp)


def interop(tok, tmp: Path) -> None:
    path = tok.export_huggingface(tmp / "hf")
    report("interop.huggingface", Path(path).read_bytes())
    try:
        tok.convert_to_sentencepiece(tmp / "sp.model")
        report("interop.sentencepiece", (tmp / "sp.model").read_bytes())
    except ImportError:
        print("interop.sentencepiece skipped (no sentencepiece)")


def main() -> None:
    from bytepiece import Tokenizer, Trainer

    np.seterr(all="ignore")
    lines = heldout_lines()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        compat = Tokenizer(str(COMPAT_MODEL), seed=0)
        segmentations(compat, "compat", lines)
        samples(compat, "compat", lines)
        queries(compat, "compat", lines)
        research(compat, "compat", lines)
        trainer = Trainer(max_vocab_size=16000, verbose=False)
        trainer.train_files([str(CORPORA / f"{n}.train.txt") for n in ("code", "en", "zh")], workers=2)
        model = tmp / "trained.model"
        trainer.save(model)
        own = Tokenizer(str(model), seed=7)
        segmentations(own, "trained", lines)
        samples(own, "trained", lines)
        queries(own, "trained", lines)
        research(own, "trained", lines)
        interop(compat, tmp)
        trained_models(tmp)
        cli_outputs(tmp, model)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)
    main()
