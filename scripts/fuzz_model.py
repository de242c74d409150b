"""Coverage-guided fuzzing of model loading with atheris (pip install 'bytepiece[fuzz]').

Each input is written to a file and loaded as a model: ``Tokenizer(path)`` must
either raise ModelError (the project's ValueError subclass) or give a tokenizer
whose encode/decode round-trips a fixed text. Anything else (another exception,
a crash, a hang past -timeout, memory past -rss_limit_mb) is a finding, and
libFuzzer saves the input as crash-*/timeout-*/oom-* in the current folder.

The seeds are a small valid model in JSON (with metadata) and the same model
zipped, so mutations start from files that get deep into the loader. The
Python code of bytepiece is instrumented for coverage; the Cython core is not
(it would need a clang build), so coverage guides the parsing and checks.

    python scripts/fuzz_model.py -max_total_time=300 -rss_limit_mb=2048 -timeout=20
                                             # corpus: ./fuzz-corpus (seeded, then grown)
    python scripts/fuzz_model.py crash-1234abcd        # re-run one saved input
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile

import atheris

with atheris.instrument_imports(include=["bytepiece"]):
    from bytepiece import ModelError, Tokenizer

TEXT = "Fuzzed models must still round-trip: café, 東京, the end.\n"
CORPUS = "fuzz-corpus"
# The model "file" is an anonymous in-memory file (Linux), opened by its /proc path:
# a regular file to the loader, and nothing is left behind when libFuzzer exits.
FD = os.memfd_create("bytepiece-fuzz-model")
PATH = f"/proc/self/fd/{FD}"


def _seeds() -> list:
    """A small valid model, as JSON and as a zip."""
    import base64

    pieces = [bytes([b]) for b in range(256)] + [b"ab", b"abc", b" the", "東京".encode()]
    pieces.sort(key=lambda p: (len(p), p))
    model = {
        base64.b64encode(p).decode(): [i + 3, p.decode("utf-8", "ignore"), 1 + (i * 7) % 50]
        for i, p in enumerate(pieces)
    }
    model["__bytepiece__"] = {"format": 1, "special_tokens": ["<sep>"], "normalization": "NFC", "alpha": 0.1}
    data = json.dumps(model).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.json", data)
    return [data, buffer.getvalue()]


def test_one_input(data: bytes) -> None:
    os.ftruncate(FD, 0)
    os.pwrite(FD, data, 0)
    try:
        tok = Tokenizer(PATH)
    except ModelError:
        return
    ids = tok.encode(TEXT)
    back = tok.decode(ids)
    if tok.normalization in ("NFC", "none") and back != TEXT:
        raise AssertionError(f"a model that loads does not round-trip: {back!r}")


def main() -> None:
    argv = list(sys.argv)
    if not any(not arg.startswith("-") for arg in argv[1:]):  # no corpus folder or input given
        os.makedirs(CORPUS, exist_ok=True)  # kept between runs: libFuzzer adds what it finds
        for i, seed in enumerate(_seeds()):
            with open(os.path.join(CORPUS, f"seed{i}"), "wb") as handle:
                handle.write(seed)
        argv.append(CORPUS)
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
