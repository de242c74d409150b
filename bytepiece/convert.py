"""Conversions between bytepiece models and SentencePiece / Hugging Face tokenizers.

Why it is built this way:

- Hugging Face ``tokenizers`` can say everything a bytepiece model says. Its
  ByteLevel pre-tokenizer turns every byte into one character (the usual
  bytes-to-unicode table), so a Unigram model over those characters is a
  byte-level Unigram model; a Split on runs of newlines (merged with the text
  before them) cuts chunks exactly as BytePiece 0.6.3 does; the NFC normaliser
  matches ours. Its Viterbi keeps the longest piece on ties, as 0.6.3 does, and
  scores are written as float64. So the exported ``tokenizer.json`` segments
  every text as the Tokenizer does.
- SentencePiece works on characters with float32 scores and no chunking, and
  reaches single bytes only through byte fallback. The export follows BytePiece
  0.6.3's ``convert_to_sentencepiece`` (ids kept, spaces spelt U+2581, byte
  pieces ``<0xNN>``), and fixes what made it fail: a piece that is not UTF-8, or
  that SentencePiece would see twice, keeps its id as an UNUSED placeholder
  instead of breaking the file.
- docs/interop.md lists every known difference; tests/test_interop*.py pin
  each one and measure agreement on the bundled corpora.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import TYPE_CHECKING, Any

from .atomic import atomic_write
from .model import FIRST_PIECE_ID, SPECIAL_PIECES, ModelError, Vocabulary

if TYPE_CHECKING:  # pragma: no cover
    from .tokenizer import Tokenizer

__all__ = [
    "bytes_to_unicode",
    "convert_to_bytepiece",  # noqa: F822 (loaded on first use: see the end of the module)
    "from_sentencepiece",
    "to_huggingface",
    "to_sentencepiece",
]

# SentencePiece's piece types (sentencepiece_model.proto).
SP_NORMAL, SP_UNKNOWN, SP_CONTROL, SP_USER_DEFINED, SP_UNUSED, SP_BYTE = 1, 2, 3, 4, 5, 6
SP_UNIGRAM = 1
SP_SPACE = "\u2581"
# SentencePiece's penalty for an unknown character, below the lowest piece score.
SP_UNK_PENALTY = 10.0
# Score of the <pad>/<bos>/<eos> and special-token entries in the Hugging Face Unigram
# vocabulary: so low that Viterbi never picks one where single bytes can spell it.
HF_RESERVED_SCORE = -1e9


def bytes_to_unicode() -> dict[int, str]:
    """The byte -> character table of byte-level tokenizers (GPT-2's, used by the
    Hugging Face ByteLevel pre-tokenizer): printable Latin-1 bytes stand for
    themselves, the other 68 bytes for the characters from U+0100 on, in byte order."""
    visible = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table, extra = {}, 0
    for b in range(256):
        if b in visible:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


# ---------------------------------------------------------------------------
# Hugging Face


def hf_tokenizer_json(tok: Tokenizer) -> dict[str, Any]:
    """The ``tokenizer.json`` document for ``tok`` (see the module docstring)."""
    table = bytes_to_unicode()
    vocab: list[tuple[str, float]] = [(name, HF_RESERVED_SCORE) for name in SPECIAL_PIECES]
    for piece, logp in zip(tok.vocabulary.pieces, tok.piece_log_probs.tolist()):
        vocab.append(("".join(table[b] for b in piece), logp))
    special = list(tok.vocabulary.special_tokens)
    mapped = {text for text, _ in vocab[len(SPECIAL_PIECES) :]}
    for name in [*SPECIAL_PIECES, *special]:  # (Hugging Face matches '<bos>' and the rest in text)
        if name in mapped:
            raise ModelError(
                f"special token {name!r} spells a piece in the byte-level alphabet; Hugging Face would confuse the two"
            )
    vocab += [(name, HF_RESERVED_SCORE) for name in special]
    added = [
        {
            "id": i,
            "content": name,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for i, name in [*enumerate(SPECIAL_PIECES), *((j, t) for t, j in tok.special_tokens.items())]
    ]
    form = tok.normalization
    normalizer = None if form == "none" else {"type": form}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                # 0.6.3's chunks: each ends with its run of newlines.
                {"type": "Split", "pattern": {"Regex": "\n+"}, "behavior": "MergedWithPrevious", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "Unigram", "unk_id": None, "vocab": [[t, s] for t, s in vocab], "byte_fallback": False},
    }


def to_huggingface(tok: Tokenizer, path: str | os.PathLike) -> str:
    """Write ``tok`` as a Hugging Face ``tokenizer.json``; ``path`` is the file, or a
    folder (the file is then ``tokenizer.json`` in it): an existing one, or a path
    ending in a separator, which is made if missing. Returns the file's path.

    >>> tok.export_huggingface("out/")
    'out/tokenizer.json'

    Load it with ``tokenizers.Tokenizer.from_file(path)`` or
    ``transformers.PreTrainedTokenizerFast(tokenizer_file=path, bos_token="<bos>",
    eos_token="<eos>", pad_token="<pad>")``.
    """
    path = os.fspath(path)
    text = hf_tokenizer_text(tok)
    if path.endswith(("/", os.sep)):
        os.makedirs(path, exist_ok=True)
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return path


def hf_tokenizer_text(tok: Tokenizer) -> str:
    """The text of the ``tokenizer.json``, with every score spelt so that the ``tokenizers``
    library reads back exactly our float64 (when it is installed to check)."""
    document = hf_tokenizer_json(tok)
    entries = document["model"]["vocab"]
    scores = [s for _, s in entries]
    spellings = [[repr(s)] for s in scores]
    chosen = [0] * len(scores)
    text = _render(document, [c[0] for c in spellings])
    try:
        from tokenizers import Tokenizer as HFTokenizer
    except ImportError:
        return text
    # serde_json's default float parser may miss by one ulp; exact ties between
    # segmentations then break differently. Spell the missed ones with more digits
    # until they read back exactly (a few rounds at most).
    for _ in range(8):
        read = [s for _, s in json.loads(HFTokenizer.from_str(text).to_str())["model"]["vocab"]]
        missed = [i for i, (a, b) in enumerate(zip(read, scores)) if a != b]
        if not missed:
            return text
        for i in missed:
            options = spellings[i]
            if len(options) == 1:
                options.extend(_alternative_spellings(scores[i]))
            chosen[i] = min(chosen[i] + 1, len(options) - 1)
        text = _render(document, [c[k] for c, k in zip(spellings, chosen)])
    return text


def _alternative_spellings(x: float) -> list[str]:
    """Decimal spellings of x with more digits, then of points inside x's rounding interval."""
    from decimal import Decimal

    out = [f"{x:.{digits - 1}e}" for digits in (18, 19, 20, 21, 23, 25)]
    ulp = Decimal(math.ulp(x))
    out += [format(Decimal(x) + ulp * k / 8, ".25e") for k in (1, -1, 2, -2, 3, -3)]
    return out


def _render(document: dict[str, Any], score_text: list[str]) -> str:
    """JSON text of the document, its vocabulary scores written as given."""
    model = dict(document["model"])
    vocab = model["vocab"]
    model["vocab"] = "\x00vocab"
    shell = json.dumps({**document, "model": model}, ensure_ascii=False, indent=2)
    rows = ",\n".join(f"      [{json.dumps(t, ensure_ascii=False)}, {s}]" for (t, _), s in zip(vocab, score_text))
    return shell.replace('"\\u0000vocab"', "[\n" + rows + "\n    ]") + "\n"


# ---------------------------------------------------------------------------
# SentencePiece


def _sp_pb():
    try:
        from sentencepiece import sentencepiece_model_pb2 as pb
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "SentencePiece conversion needs the sentencepiece package (pip install sentencepiece)"
        ) from error
    return pb


def sentencepiece_pieces(tok: Tokenizer) -> list[tuple[str, float, int]]:
    """(piece, score, type) in SentencePiece id order: id i is bytepiece id i for every
    i < tok.vocab_size, then the byte pieces that byte fallback still needs. Every name
    is defined once (SentencePiece refuses a model that defines one twice): a piece whose
    text is taken (by an earlier piece, a byte piece's ``<0xNN>``) becomes a placeholder,
    and a placeholder's name ``<bytepiece:ID>`` is made unique against every real one."""
    out: list[tuple[str, float, int]] = [
        ("<unk>", 0.0, SP_UNKNOWN),
        ("<s>", 0.0, SP_CONTROL),
        ("</s>", 0.0, SP_CONTROL),
    ]
    seen = {p for p, _, _ in out} | {f"<0x{b:02X}>" for b in range(256)}
    extra: list[tuple[str, float, int]] = []
    has_byte = set()
    unnamed: list[int] = []  # (places in `out` of placeholders, named once every real name is known)

    def placeholder(i: int) -> tuple[str, float, int]:
        unnamed.append(i)
        return ("", 0.0, SP_UNUSED)

    for i, (piece, logp) in enumerate(zip(tok.vocabulary.pieces, tok.piece_log_probs.tolist()), FIRST_PIECE_ID):
        if len(piece) == 1 and (piece[0] >= 0x80 or piece[0] == 0):
            # Bytes >= 0x80 (and NUL, which SentencePiece does not match): byte pieces,
            # reached by byte fallback.
            entry = (f"<0x{piece[0]:02X}>", logp, SP_BYTE)
            has_byte.add(piece[0])
        else:
            try:
                text = piece.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is None or "\x00" in text:
                entry = placeholder(i)
            else:
                text = text.replace(" ", SP_SPACE)
                entry = (text, logp, SP_NORMAL) if text not in seen else placeholder(i)
            if len(piece) == 1:
                # As in 0.6.3 an ASCII byte is a normal piece and also gets its byte
                # piece (after the vocabulary) for byte fallback; unlike 0.6.3, control
                # characters (tab, newline...) are normal pieces too, so that they score
                # as in bytepiece instead of as unknown characters.
                extra.append((f"<0x{piece[0]:02X}>", -100.0, SP_BYTE))
                has_byte.add(piece[0])
        seen.add(entry[0])
        out.append(entry)
    for name in tok.vocabulary.special_tokens:
        out.append((name, 0.0, SP_USER_DEFINED) if name not in seen else placeholder(len(out)))
        seen.add(name)
    for i in unnamed:
        name = f"<bytepiece:{i}>"
        while name in seen:
            name = name[:-1] + "~>"
        seen.add(name)
        out[i] = (name, 0.0, SP_UNUSED)
    missing = [(f"<0x{b:02X}>", -100.0, SP_BYTE) for b in range(256) if b not in has_byte]
    return out + extra + missing


def sentencepiece_model_proto(tok: Tokenizer) -> bytes:
    """The serialised SentencePiece ModelProto of ``tok``."""
    pb = _sp_pb()
    model = pb.ModelProto()
    for text, score, kind in sentencepiece_pieces(tok):
        piece = model.pieces.add()
        piece.piece, piece.score, piece.type = text, score, kind
    spec = model.trainer_spec
    spec.model_type = SP_UNIGRAM
    spec.vocab_size = len(model.pieces)
    spec.byte_fallback = True
    spec.split_by_unicode_script = False
    spec.unk_id, spec.bos_id, spec.eos_id, spec.pad_id = 0, 1, 2, -1
    norm = model.normalizer_spec
    # SentencePiece has no NFC rule: the caller normalises (see docs/interop.md).
    norm.name = {"NFKC": "nfkc"}.get(tok.normalization, "identity")
    norm.precompiled_charsmap = b""
    norm.add_dummy_prefix = False
    norm.remove_extra_whitespaces = False
    if norm.name == "nfkc":
        _fill_charsmap(model, "nfkc")
    return model.SerializeToString()


def _fill_charsmap(model, name: str) -> None:
    """Copy the precompiled character map of SentencePiece's built-in rule ``name``."""
    import sentencepiece as spm

    pb = _sp_pb()
    # Loading a model whose normaliser names a built-in rule does not fill the map;
    # the trainer does. Train a throw-away model just to read the map.
    import io

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["a b c"] * 10),
        model_writer=out,
        vocab_size=8,
        model_type="char",
        normalization_rule_name=name,
        minloglevel=2,
    )
    trained = pb.ModelProto()
    trained.ParseFromString(out.getvalue())
    model.normalizer_spec.precompiled_charsmap = trained.normalizer_spec.precompiled_charsmap


def to_sentencepiece(tok: Tokenizer, path: str | os.PathLike) -> None:
    """Write ``tok`` as a SentencePiece Unigram model file (0.6.3's
    ``Tokenizer.convert_to_sentencepiece``)."""
    data = sentencepiece_model_proto(tok)
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def from_sentencepiece(path: str | os.PathLike | bytes) -> Vocabulary:
    """A bytepiece vocabulary from a SentencePiece Unigram model (a path or the
    serialised proto).

    Normal and user-defined pieces keep their order (ids from 3); ``▁`` is read as a
    space when the model escapes whitespace; a byte piece ``<0xNN>`` is the byte
    (dropped when a normal piece already spells it); control, unknown and unused
    pieces are left out; missing single bytes are added. Scores become counts
    ``exp(score)``, so log-probabilities are the scores minus one constant; byte
    pieces score as SentencePiece scores an unknown character. The normaliser maps to
    "none" (identity), "NFKC" (nfkc, nmt_nfkc) or "none" for other rules; see
    docs/interop.md for the differences.
    """
    pb = _sp_pb()
    model = pb.ModelProto()
    where = "<bytes>" if isinstance(path, bytes) else repr(os.fspath(path))
    if isinstance(path, bytes):
        raw = path
    else:
        with open(path, "rb") as handle:
            raw = handle.read()
    try:
        model.ParseFromString(raw)
    except Exception as error:  # protobuf's DecodeError
        raise ModelError(f"SentencePiece model {where}: cannot parse ({error})") from error
    if not model.pieces:
        raise ModelError(f"SentencePiece model {where}: no pieces")
    kind = model.trainer_spec.model_type if model.HasField("trainer_spec") else SP_UNIGRAM
    if kind != SP_UNIGRAM:
        name = pb.TrainerSpec.ModelType.Name(kind)
        raise ModelError(f"SentencePiece model {where}: a {name} model; only Unigram models convert")
    escape = model.normalizer_spec.escape_whitespaces if model.HasField("normalizer_spec") else True
    for index, p in enumerate(model.pieces):
        if p.type in (SP_NORMAL, SP_USER_DEFINED) and not math.isfinite(p.score):
            raise ModelError(f"SentencePiece model {where}: piece {index} ({p.piece!r}) has score {p.score}")
        if p.type == SP_BYTE and not re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", p.piece):
            raise ModelError(f"SentencePiece model {where}: byte piece {index} is {p.piece!r}, not <0xNN>")
    normal_scores = [p.score for p in model.pieces if p.type in (SP_NORMAL, SP_USER_DEFINED)]
    floor = (min(normal_scores) if normal_scores else 0.0) - SP_UNK_PENALTY
    scores: dict[bytes, float] = {}
    normal: dict[bytes, bool] = {}
    order: list[bytes] = []
    special: list[str] = []
    for p in model.pieces:
        if p.type == SP_USER_DEFINED:
            special.append(p.piece)
            continue
        if p.type == SP_NORMAL:
            text = p.piece.replace(SP_SPACE, " ") if escape else p.piece
            piece, score = text.encode("utf-8"), float(p.score)
        elif p.type == SP_BYTE:
            piece, score = bytes([int(p.piece[3:5], 16)]), floor
        else:
            continue
        if not piece:
            continue
        if piece in scores:
            # A byte piece and a normal piece spell the same byte: the normal one's score wins.
            if p.type == SP_NORMAL and not normal.get(piece, False):
                scores[piece] = score
                normal[piece] = True
            continue
        scores[piece] = score
        normal[piece] = p.type == SP_NORMAL
        order.append(piece)
    for b in range(256):
        if bytes([b]) not in scores:
            scores[bytes([b])] = floor
            order.append(bytes([b]))
    top = max(scores.values())
    counts = tuple(math.exp(max(scores[p] - top, -700.0)) for p in order)
    name = model.normalizer_spec.name if model.HasField("normalizer_spec") else "identity"
    form = "NFKC" if "nfkc" in name and not name.endswith("_cf") else "none"
    special = [s for s in dict.fromkeys(special) if s not in SPECIAL_PIECES]
    return Vocabulary(tuple(order), counts, tuple(special), form)


# ---------------------------------------------------------------------------
# BytePiece 0.6.3's convert_to_bytepiece lives with 0.6.3's pruning, whose moves it
# repeats (bytepiece.training.prune); it is found here too, loaded on first use.

_FROM_TRAINING = {"convert_to_bytepiece": "convert_to_bytepiece", "prune_wasted": "drop_wasted"}


def __getattr__(name: str):
    if name in _FROM_TRAINING:
        from .training import prune

        value = getattr(prune, _FROM_TRAINING[name])
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
