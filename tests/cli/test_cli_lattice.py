"""The lattice on the command line: sample -n K --log-prob, boundary constraints on
encode and sample (--split-digits, --boundary-regex), and `bytepiece lattice`.

Each output is checked against the Tokenizer's own answers for the same text, key and
constraints (which tests/api/test_lattice_research.py checks against brute force).
"""

from __future__ import annotations

import json
import math
import re

import pytest
from cli_helpers import invoke, ok
from click.testing import CliRunner

from bytepiece import Tokenizer
from bytepiece.reference import keeps_constraints

TEXT = "Call 5551234567 in 2024, then again."


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


def run(runner, *args, input=None):
    return invoke(*args, input=input, runner=runner)


def _digit_cuts(data: bytes, size: int) -> list[int]:
    cuts = []
    for m in re.finditer(rb"[0-9]+", data):
        start, end = m.span()
        cuts += [start, end, *range(end - size, start, -size)]
    return cuts


def _sample_lines(out: str):
    """(value, best?, pieces as bytes) of every sample line of `bytepiece sample`."""
    rows = []
    for line in out.splitlines():
        if line.startswith("#"):
            continue
        value, mark, shown = line.split("\t")
        rows.append((float(value), mark == "*", shown))
    return rows


def test_sample_log_prob_is_the_exact_log_probability(runner, model_path, tok):
    out = ok(run(runner, "sample", "-m", model_path, TEXT, "-n", 12, "--seed", 5, "--alpha", 0.2, "--log-prob")).stdout
    header = out.splitlines()[0]
    assert header.startswith("# ") and "log p=" in header
    seeded = Tokenizer(model_path, seed=5)
    keyed = seeded.encode_batch([TEXT] * 12, alpha=0.2, keys=range(12))  # the command keys draw i by i
    rows = _sample_lines(out)
    assert len(rows) == 12
    for (value, best, _), ids in zip(rows, keyed):
        assert value <= 0
        assert math.isclose(value, tok.log_prob(TEXT, ids, 0.2), rel_tol=0, abs_tol=2e-6)
        assert best is (ids == tok.encode(TEXT))
    plain = _sample_lines(
        ok(run(runner, "sample", "-m", model_path, TEXT, "-n", 12, "--seed", 5, "--alpha", 0.2)).stdout
    )
    assert [math.isclose(p, math.exp(lp), rel_tol=1e-5) for (p, _, _), (lp, _, _) in zip(plain, rows)] == [True] * 12


def test_sample_under_constraints_draws_only_allowed_segmentations(runner, model_path, tok):
    data = TEXT.encode()
    cuts = _digit_cuts(data, 3)
    out = ok(
        run(
            runner,
            "sample",
            "-m",
            model_path,
            TEXT,
            "-n",
            30,
            "--seed",
            1,
            "--alpha",
            0.3,
            "--split-digits",
            3,
            "--log-prob",
        )
    ).stdout
    seeded = Tokenizer(model_path, seed=1)
    keyed = seeded.encode_batch([TEXT] * 30, alpha=0.3, keys=range(30), required_boundaries=[cuts] * 30)
    for (value, _, _), ids in zip(_sample_lines(out), keyed):
        assert keeps_constraints([tok.id_bytes[i] for i in ids], cuts)
        assert math.isclose(value, tok.log_prob(TEXT, ids, 0.3, required_boundaries=cuts), abs_tol=2e-6)


def test_sample_check_under_constraints_enumerates_only_allowed_segmentations(runner, model_path, tok):
    """The chi-square check (fixed seed, level 0.001) against the oracle's constrained list."""
    from bytepiece.reference import enumerate_segmentations

    text = "in 12345"
    out = ok(
        run(
            runner, "sample", "-m", model_path, text, "--check", 20000, "--seed", 3, "--alpha", 0.5, "--split-digits", 2
        )
    ).stdout
    p_value = float(re.search(r"p-value=([0-9.e-]+)", out).group(1))
    assert p_value > 0.001
    pieces = {p: i for i, p in enumerate(tok.id_bytes) if i >= 3}
    everything = enumerate_segmentations(text.encode(), pieces, max(map(len, tok.id_bytes)))
    allowed = [s for s in everything if keeps_constraints([tok.id_bytes[i] for i in s], [3, 4, 6, 8])]
    assert 0 < len(allowed) < len(everything)
    assert f"{len(allowed)} segmentations" in out


def test_encode_with_constraints_matches_the_api(runner, model_path, tok, tmp_path):
    lines = [TEXT + "\n", "words, words and 1000000 words\n", "no digits here\n"]
    source = tmp_path / "in.txt"
    source.write_text("".join(lines), encoding="utf-8")
    options = ["--split-digits", 3, "--boundary-regex", r"\S+"]
    seeded = Tokenizer(model_path, seed=9)
    got = ok(run(runner, "encode", "-m", model_path, *options, source)).stdout.splitlines()
    sampled = ok(run(runner, "encode", "-m", model_path, *options, "--alpha", 0.1, "--seed", 9, source)).stdout
    for number, (line, ids_text, sample_text) in enumerate(zip(lines, got, sampled.splitlines()), 1):
        data = line.encode()
        cuts = sorted(set(_digit_cuts(data, 3)) | {p for m in re.finditer(rb"\S+", data) for p in m.span()})
        ids = [int(i) for i in ids_text.split()]
        assert ids == tok.encode(line, required_boundaries=cuts)
        assert keeps_constraints([tok.id_bytes[i] for i in ids], cuts)
        sample = [int(i) for i in sample_text.split()]
        assert keeps_constraints([tok.id_bytes[i] for i in sample], cuts)
        assert sample == seeded.encode(line, alpha=0.1, key=number, required_boundaries=cuts)
    plain = ok(run(runner, "encode", "-m", model_path, source)).stdout.splitlines()
    assert plain != got  # the constraints changed something on these lines


def test_bad_constraint_options_are_usage_errors(runner, model_path):
    for args in (["--boundary-regex", "("], ["--boundary-regex", "x*"], ["--split-digits", 0]):
        result = run(runner, "encode", "-m", model_path, *args, "-")
        assert result.exit_code == 2, result.output
        result = run(runner, "sample", "-m", model_path, "text", *args)
        assert result.exit_code == 2, result.output


def test_a_lookahead_boundary_regex_splits_where_it_matches(runner, model_path, tok):
    """--boundary-regex '(?=[A-Z])' was accepted and changed nothing (its matches are
    empty); 'x*' is refused with what to use instead."""
    got = ok(run(runner, "encode", "-m", model_path, "-f", "pieces", "--boundary-regex", "(?=[A-Z])", input="getURL\n"))
    assert got.stdout.split() == ["get", "U", "R", "L", "\\n"]
    refused = run(runner, "encode", "-m", model_path, "--boundary-regex", "x*", "-")
    assert refused.exit_code == 2 and "lookaround such as '(?=[A-Z])'" in refused.stderr


def test_lattice_prints_every_edge_with_its_log_probability(runner, model_path, tok):
    text = "unbelievable é"
    records = [json.loads(line) for line in ok(run(runner, "lattice", "-m", model_path, text)).stdout.splitlines()]
    edges = tok.lattice(text)
    assert len(records) == len(edges)
    for record, (start, end, piece_id, logp) in zip(records, edges.tolist()):
        assert (record["start"], record["end"], record["id"]) == (start, end, piece_id)
        assert record["logp"] == logp
        piece = tok.id_bytes[piece_id]
        assert piece == text.encode()[start:end]
        if record["piece"] is None:
            assert record["bytes"] and "bytes" in record
        else:
            assert record["piece"].encode() == piece


def test_lattice_alpha_adds_posterior_probabilities_under_constraints(runner, model_path, tok):
    text = "in 1234567 ways"
    out = ok(run(runner, "lattice", "-m", model_path, text, "--alpha", 0.1, "--split-digits", 3)).stdout
    records = [json.loads(line) for line in out.splitlines()]
    cuts = _digit_cuts(text.encode(), 3)
    marginals = tok.piece_marginals(text, 0.1, required_boundaries=cuts)
    assert [(r["start"], r["end"], r["id"], r["prob"]) for r in records] == marginals.tolist()
    assert math.isclose(sum(r["prob"] for r in records if r["start"] == 0), 1.0, rel_tol=1e-9)
    assert all(not (r["start"] < c < r["end"]) for r in records for c in cuts)
    result = run(runner, "lattice", "-m", model_path, text, "--alpha", -1)
    assert result.exit_code == 2


def test_sample_log_probs_that_round_to_zero_are_not_negative_zero(runner, model_path):
    """At a large alpha the best path's log p is a tiny negative number, shown as
    -0.000000."""
    out = ok(run(runner, "sample", "-m", model_path, "hello world", "--alpha", "500", "--log-prob", "-n", "3")).stdout
    assert "-0.000000" not in out and "log p=0.000000" in out


def test_sample_check_treats_a_special_tokens_text_as_ordinary_text(runner, tmp_path):
    """--check listed segmentations with the special token's id as a piece and crashed
    (IndexError) looking up its log-probability."""
    from conftest import VENDORED_MODEL

    model = tmp_path / "special.json"
    Tokenizer(VENDORED_MODEL, special_tokens=["<|x|>"]).save(model)
    got = ok(run(runner, "sample", "-m", model, "<|x|>", "--check", "200", "--seed", "1"))
    assert "segmentations" in got.stdout


def test_info_text_measures_the_best_segmentation_whatever_alpha_the_model_records(runner, tmp_path):
    """A model saved with a default alpha made info --text sample: other figures on each
    run, none of them the best segmentation's."""
    from conftest import VENDORED_MODEL

    text = tmp_path / "text.txt"
    text.write_text("Subword regularisation helps language models.\n" * 20)
    sampled = tmp_path / "alpha.json"
    Tokenizer(VENDORED_MODEL, alpha=0.1).save(sampled)
    plain = ok(run(runner, "info", "-m", VENDORED_MODEL, "--text", text)).stdout.splitlines()[-1]
    for _ in range(2):
        assert ok(run(runner, "info", "-m", sampled, "--text", text)).stdout.splitlines()[-1] == plain
