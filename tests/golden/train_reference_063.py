"""Vocabularies trained by BytePiece 0.6.3 itself, for tests/training/test_trainer.py.

Run with the interpreter of a venv that has bytepiece==0.6.3 installed, from
outside the repository (so that `import bytepiece` finds 0.6.3, not us):

    cd /tmp && /tmp/bp063/bin/python REPO/tests/golden/train_reference_063.py

(REPO being the absolute path of this checkout.)

For each case below it trains 0.6.3's Trainer on the first lines of a bundled
corpus (each line one document) and writes tests/golden/trained_063_NAME.json:

    {"corpus": "corpora/en.train.txt", "lines": N, "options": {...},
     "sizes": [...], "models": {"SIZE": <0.6.3 model dict>}}

The test trains ours with em=False on the same lines and options and compares.
"""

import json
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent

CASES = {
    "en": {"corpus": "corpora/en.train.txt", "max_bytes": 200_000, "sizes": [2000, 1000], "options": {}},
    "zh": {"corpus": "corpora/zh.train.txt", "max_bytes": 200_000, "sizes": [2000], "options": {}},
    "code": {"corpus": "corpora/code.train.txt", "max_bytes": 200_000, "sizes": [2000], "options": {}},
    "mixed_opts": {
        "corpus": "corpora/zh.train.txt",
        "max_bytes": 120_000,
        "sizes": [1200],
        "options": {
            "order": 4,
            "min_count": 3,
            "isolate_digits": True,
            "ensure_unicode": False,
            "max_piece_length": 12,
        },
    },
}


def read_lines(corpus: str, max_bytes: int):
    """The first lines of a corpus adding up to at most max_bytes UTF-8 bytes."""
    out, size = [], 0
    with open(REPO / corpus, encoding="utf-8", newline="") as f:
        for line in f:
            size += len(line.encode("utf-8"))
            if size > max_bytes:
                break
            out.append(line)
    return out


def main():
    import bytepiece

    if getattr(bytepiece, "__version__", None) != "0.6.3" and "Trainer" not in dir(bytepiece):
        sys.exit("run this with BytePiece 0.6.3 installed (see the docstring)")
    from bytepiece.bytepiece import Trainer

    for name, case in CASES.items():
        lines = read_lines(case["corpus"], case["max_bytes"])
        trainer = Trainer(max_vocab_size=list(case["sizes"]), **case["options"])
        trainer.train(lines, workers=1)
        models = {str(size): trainer.dump(p) for size, p in zip(trainer.max_vocab_size, trainer.pieces)}
        out = {
            "corpus": case["corpus"],
            "lines": len(lines),
            "options": case["options"],
            "sizes": case["sizes"],
            "models": models,
        }
        path = HERE / f"trained_063_{name}.json"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(out, f, ensure_ascii=False, sort_keys=True)
        print(f"{path.name}: {len(lines)} lines, " + ", ".join(f"{s}: {len(m)} pieces" for s, m in models.items()))


if __name__ == "__main__":
    main()
