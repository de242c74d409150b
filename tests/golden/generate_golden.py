"""Write golden tokenizations made by the reference BytePiece 0.6.3.

Run it with the Python of a virtual environment that has BytePiece 0.6.3, NOT
with this project installed (both packages are called ``bytepiece``):

    python3 -m venv /tmp/bp063
    /tmp/bp063/bin/pip install cython numpy setuptools wheel tqdm
    AHOCORASICK_BYTES=1 /tmp/bp063/bin/pip install --no-binary pyahocorasick pyahocorasick
    /tmp/bp063/bin/pip install --no-build-isolation bytepiece==0.6.3

    /tmp/bp063/bin/python tests/golden/generate_golden.py

(pyahocorasick must be built from source with AHOCORASICK_BYTES=1: BytePiece
0.6.3 feeds it bytes, which the prebuilt wheels reject.)

For every model zip in the models folder (default: ``tests/data``, where the
four models are vendored; ``--models-dir`` to change)
it writes ``tests/golden/<zip name without .zip>.jsonl.gz``: one JSON object
per line,

    {"text": str, "ids": [int, ...], "pieces": [base64 of each piece, ...]}

with ``ids = Tokenizer(model).encode(text)`` and ``pieces =
Tokenizer(model).tokenize(text)`` (Viterbi, alpha=-1). The model JSON is read
straight from the zip and handed to 0.6.3 as a dict.

The texts are the same for every model and fully deterministic: lines,
multi-line paragraphs (some with runs of blank lines) and a few large slices
of ``corpora/*.heldout.txt``, then hand-made edge cases (see
``tricky_texts``). The gzip stream has no timestamp or file name, so a rerun
with the same inputs gives byte-identical files.
"""

import argparse
import base64
import glob
import gzip
import io
import json
import os
import sys
import unicodedata
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def check_reference():
    # Never pick up this repository's own package (it is also 'bytepiece'
    # and claims the same version): drop the repo and the working directory
    # from the import path, then insist on 0.6.3's own modules.
    repo = os.path.realpath(REPO)
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and not os.path.realpath(p).startswith(repo)]
    import bytepiece

    where = os.path.realpath(getattr(bytepiece, "__file__", "") or "")
    try:
        import bytepiece.bytepiece
        import bytepiece.faster  # 0.6.3's compiled module
    except ImportError:
        ok = False
    else:
        ok = getattr(bytepiece, "__version__", None) == "0.6.3"
    if not ok or where.startswith(repo):
        sys.exit(
            "this must run under the reference BytePiece 0.6.3 (found "
            "{!r} at {}); see the docstring for how to make the venv".format(
                getattr(bytepiece, "__version__", None), where
            )
        )
    print("reference:", where)
    return bytepiece


def load_model(zip_path):
    with zipfile.ZipFile(zip_path) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        if len(names) != 1:
            sys.exit(f"{zip_path}: expected one file in the zip, found {names!r}")
        return json.loads(z.read(names[0]).decode("utf-8"))


# --------------------------------------------------------------------------
# Texts
# --------------------------------------------------------------------------


def corpus_texts(path, n_lines=300, n_paras=180, n_big=2, big_bytes=8000):
    """Deterministic samples of one held-out corpus file."""
    with open(path, encoding="utf-8", newline="") as f:
        data = f.read()
    lines = data.split("\n")[:-1]  # the file ends with '\n'
    nonblank = [i for i, line in enumerate(lines) if line.strip()]
    texts = []

    # Single lines, spread evenly over the file; every other one keeps '\n'.
    step = max(1, len(nonblank) // n_lines)
    for k, i in enumerate(nonblank[::step][:n_lines]):
        texts.append(lines[i] + ("\n" if k % 2 == 0 else ""))

    # Paragraphs: 2..13 consecutive lines (fewer when they pass 1,500
    # characters, but at least 2). Every third one has its blank
    # lines widened to runs of 2..4; every fourth drops its final newline;
    # every fifth starts with blank lines.
    step = max(1, len(lines) // n_paras)
    for k in range(n_paras):
        start = (k * step + 7 * k) % max(1, len(lines) - 14)
        block = lines[start : start + 2 + k % 12]
        while len(block) > 2 and sum(map(len, block)) > 1500:
            block = block[:-1]
        if k % 3 == 0:
            widened = []
            for line in block:
                widened.extend([line] * (2 + k % 3) if not line.strip() else [line])
                if line.strip() and k % 2 == 0:
                    widened.extend([""] * (1 + k % 4))
            block = widened
        text = "\n".join(block) + "\n"
        if k % 4 == 1:
            text = text.rstrip("\n")
        if k % 5 == 2:
            text = "\n" * (1 + k % 3) + text
        texts.append(text)

    # A few large slices (about big_bytes of UTF-8) cut at line boundaries.
    big_chars = big_bytes * len(data) // len(data.encode())
    for k in range(n_big):
        start = (k + 1) * len(data) // (n_big + 1)
        start = data.find("\n", start) + 1
        end = data.find("\n", start + big_chars)
        texts.append(data[start : end + 1 if end >= 0 else len(data)])
    return texts


def tricky_texts(corpora_dir):
    with open(os.path.join(corpora_dir, "en.heldout.txt"), encoding="utf-8") as f:
        en = f.read()
    # 200 KB with no newline at all, one chunk for the regex splitter: a
    # ~20 KB passage repeated (so the golden file stays small under gzip).
    passage = en[:20000].replace("\n", " ").rstrip() + " "
    one_line = (passage * (200000 // len(passage) + 1))[:200000]

    t = [
        # empty and whitespace only
        "",
        "\n",
        "\n\n",
        "\n" * 7,
        "\n" * 1000,
        " ",
        "  ",
        " " * 17,
        " " * 1000,
        "\t",
        "\t\t\t",
        " \t \t",
        " \n",
        "\n ",
        " \n \n  \n",
        # line ends
        "first line\r\nsecond line\r\n",
        "a\r\n\r\n\r\nb",
        "\r\n",
        "\r",
        "\r\r\r",
        "a\rb\rc",
        "no newline at the end",
        "line one\nline two without newline",
        "\n\nleading newlines",
        "trailing newlines\n\n\n\n",
        "mixed\r\nline\nends\r\rhere\n\r\n",
        "vertical\x0btab and form\x0cfeed",
        "file\x1cgroup\x1drecord\x1eunit\x1f",
        "next line\x85char",
        "line\u2028separator and paragraph\u2029separator",
        # tabs and runs of spaces
        "a\tb\tc",
        "\tindented with a tab\n\t\tand two\n",
        "def f(x):\n    return x  # two spaces\n\n\n\nclass A:\n\tpass\n",
        "word     word          word",
        "    four leading spaces",
        # digits and numbers
        "0",
        "7",
        "42",
        "1234567890",
        "3.14159265358979323846",
        "-0.000001e+23",
        "1,234,567.89",
        "2023年9月18日",
        "第12345章",
        "31415926535897932384626433832795028841971693993751058209749445923",
        "9" * 1000,
        "1 2 3 4 5 6 7 8 9 10",
        "x1y22z333",
        "１２３４５",
        "٣٤٥",
        "०१२३",
        "Ⅻ",
        "½ ¾ ² ³",
        # emoji, ZWJ sequences, flags, variation selectors
        "😀",
        "😀😃😄😁",
        "I ❤ BytePiece 🎉",
        "👍🏽",
        "👨\u200d👩\u200d👧\u200d👦",
        "🏳\ufe0f\u200d🌈",
        "🇨🇳🇺🇸🇯🇵",
        "1\ufe0f\u20e3",
        "☺\ufe0e vs ☺\ufe0f",
        # combining characters and what NFC does with them
        "e\u0301",
        "caf\u00e9 vs cafe\u0301",
        "Ame\u0301lie Poulain",
        "A\u030a",
        "\u212b",
        "\u2126",
        "q\u0307\u0323",
        "\u1e9b\u0323",
        "o\u0308\u0304",
        "ﬁne ﬂour",
        "ｶﾀｶﾅ",
        "\u0344",
        "\u0958",
        "a\u0301\u0302\u0303\u0304\u0305\u0306\u0307\u0308",
        # Hangul: conjoining jamo (NFC composes them), syllables, Korean text
        "\u1100\u1161\u11a8",
        "\u1112\u1161\u11ab\u1100\u1173\u11af",
        "한국어 문장입니다.",
        "\u1100\u1100\u1161",
        "\u11a8",
        # scripts
        "Hello, 世界! 123 abc",
        "English中文混合text，还有English。",
        "Привет, мир! Как дела?",
        "Γειά σου Κόσμε",
        "שלום עולם",
        "مرحبا بالعالم",
        "العربية: ١٢٣",
        "नमस्ते दुनिया",
        "สวัสดีชาวโลก",
        "ひらがなとカタカナ",
        "日本語の文章です。漢字とかなが混ざっています。",
        "カタカナ、ゼ゙、ガ",
        "か\u3099き\u3099く\u3099",
        "ｱｲｳｴｵ ﾊﾟﾋﾟ",
        "𠀀𠀁𠀂 𪚥",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛",
        "\u0f00\u0f01 tibetan",
        # long repeats
        "a" * 5000,
        "的" * 3000,
        "ab" * 2500,
        "哈" * 10 + "a" * 10,
        "\u00e9" * 1000,
        "😀" * 500,
        # control characters and other oddities
        "\x00",
        "a\x00b",
        "\x00" * 10,
        "\x00\n\x00",
        "\x01\x02\x03\x04",
        "\x1b[31mred\x1b[0m",
        "\x7f",
        "\x80\x81\x9f",
        "\ufeffBOM at start",
        "zero\u200bwidth\u200cnon\u200djoiner",
        "soft\u00adhyphen",
        "\ufffd replacement",
        "\ue000 private use",
        "\uffff\U0010ffff",
        "nbsp\u00a0here\u3000ideographic space",
        # structured text
        "https://example.com/path/to?q=1&x=%E4%B8%AD#frag",
        '{"key": [1, 2, 3], "nested": {"a": null}}',
        '<div class="x">Hello &amp; goodbye</div>',
        "user.name+tag@example.org",
        '```python\nprint("hi")\n```\n',
        "# Title\n\n* item 1\n* item 2\n\n> quote\n",
        "SELECT * FROM t WHERE id = 1;",
        "if (a && b || !c) { return a[i] << 2; }",
        # the long single chunk
        one_line,
    ]
    return t


def all_texts(corpora_dir):
    texts = []
    for path in sorted(glob.glob(os.path.join(corpora_dir, "*.heldout.txt"))):
        texts.extend(corpus_texts(path))
    texts.extend(tricky_texts(corpora_dir))
    return texts


# --------------------------------------------------------------------------


def golden_lines(tokenizer, texts):
    for text in texts:
        ids = tokenizer.encode(text)
        pieces = tokenizer.tokenize(text)
        # Sanity checks on 0.6.3 itself before its output becomes the truth.
        assert b"".join(pieces) == unicodedata.normalize("NFC", text).encode()
        assert ids == [tokenizer.piece_to_id(p) for p in pieces]
        yield json.dumps(
            {
                "text": text,
                "ids": ids,
                "pieces": [base64.b64encode(p).decode("ascii") for p in pieces],
            },
            separators=(",", ":"),
        )


def write_gz(path, lines):
    raw = io.BytesIO()
    # filename='' and mtime=0 keep the gzip header free of run details.
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        for line in lines:
            gz.write(line.encode("ascii") + b"\n")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(raw.getvalue())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", default=os.path.join(REPO, "tests", "data"))
    ap.add_argument("--corpora-dir", default=os.path.join(REPO, "corpora"))
    ap.add_argument("--out-dir", default=HERE)
    args = ap.parse_args()

    bytepiece = check_reference()
    texts = all_texts(args.corpora_dir)
    zips = sorted(glob.glob(os.path.join(args.models_dir, "*.zip")))
    if not zips:
        sys.exit(f"no model zips in {args.models_dir}")
    print(f"{len(texts)} texts, {sum(map(len, texts))} characters")
    for zip_path in zips:
        stem = os.path.basename(zip_path)[: -len(".zip")]
        tokenizer = bytepiece.Tokenizer(load_model(zip_path))
        out = os.path.join(args.out_dir, stem + ".jsonl.gz")
        write_gz(out, golden_lines(tokenizer, texts))
        print(f"{out}: {os.path.getsize(out)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
