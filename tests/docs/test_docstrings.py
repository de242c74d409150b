"""Every example in the package's docstrings runs, and prints what it shows.

``help(Tokenizer.nbest)`` is documentation too: an example there that no longer runs, or
shows output the code does not give, misleads as much as a wrong README. So each module's
docstring examples run as doctests (ELLIPSIS and NORMALIZE_WHITESPACE), in a fresh
folder holding what they name:

- ``tok``: the vendored 40k model (tests/data, BytePiece 0.6.3's) with ``seed=42``, as
  the class docstring of :class:`~bytepiece.Tokenizer` makes it;
- ``bytepiece.model`` and ``model.zip`` (that model's file, under the names the examples
  use; ``model`` is the latter's name), ``corpus.txt`` (2,000 lines of the bundled
  English corpus) and ``texts`` (its first 200 lines), and a link to ``corpora/``;
- for the data-loader and Dask examples, ``ds`` (a ``datasets.Dataset`` of ``texts``),
  ``DataLoader`` (torch's) and ``client`` (a Dask client of one in-process worker).

Modules whose examples need torch, datasets or Dask, or train a model, are marked slow.
"""

from __future__ import annotations

import doctest
import importlib
import itertools
import pkgutil
import shutil

import pytest
from conftest import REPO, VENDORED_MODEL

import bytepiece
from bytepiece import Tokenizer

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
# Modules whose examples train models, export the 40k model, start Dask or load torch / datasets.
SLOW = {
    "bytepiece.convert",
    "bytepiece.data",
    "bytepiece.distributed",
    "bytepiece.training",
    "bytepiece.training.trainer",
    "bytepiece.training.prune",
}
DASK = {"bytepiece.distributed", "bytepiece.training.trainer"}


def _modules() -> list[str]:
    names = ["bytepiece"]
    for info in pkgutil.walk_packages(bytepiece.__path__, "bytepiece."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return sorted(names)


def _compiled_tests(module) -> list[doctest.DocTest]:
    """The examples in a compiled module's docstrings: doctest's finder does not look
    inside Cython functions, so its classes and functions are read one by one."""
    parser = doctest.DocTestParser()
    found = []
    for owner_name, owner in [(module.__name__, module), *vars(module).items()]:
        if owner is not module and getattr(owner, "__module__", None) != module.__name__:
            continue
        members = [("", owner), *vars(owner).items()] if isinstance(owner, type) else [("", owner)]
        for member_name, member in members:
            doc = getattr(member, "__doc__", None)
            if isinstance(doc, str) and ">>>" in doc:
                where = f"{module.__name__}.{owner_name}.{member_name}".rstrip(".")
                found.append(parser.get_doctest(doc, dict(vars(module)), where, module.__file__, None))
    return found


def _tests(name: str, torch_classes: bool = False) -> list[doctest.DocTest]:
    """The module's examples; with torch_classes, also those of bytepiece.data's torch
    classes, which are built (importing torch) on first access."""
    module = importlib.import_module(name)
    if torch_classes and name == "bytepiece.data":
        getattr(module, "TokenizedDataset")  # noqa: B009 (built on this first access)
    if not module.__file__.endswith(".py"):
        return _compiled_tests(module)
    return [t for t in doctest.DocTestFinder(exclude_empty=True).find(module) if t.examples]


# Only modules that hold examples become test cases (the others have nothing to check).
_WITH_EXAMPLES = [name for name in _modules() if _tests(name)]


def _param(name: str):
    marks = []
    if name in SLOW:
        marks.append(pytest.mark.slow)
    if name in DASK:
        marks.append(pytest.mark.dask)
    return pytest.param(name, marks=marks, id=name)


@pytest.fixture
def docs_folder(tmp_path, monkeypatch):
    for name in ("bytepiece.model", "model.zip"):
        shutil.copyfile(VENDORED_MODEL, tmp_path / name)
    (tmp_path / "corpora").symlink_to(REPO / "corpora")
    with open(REPO / "corpora" / "en.train.txt", encoding="utf-8") as f:
        lines = list(itertools.islice(f, 2000))
    (tmp_path / "corpus.txt").write_text("".join(lines), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return [line.rstrip("\n") for line in lines[:200]]


def _names(name: str, texts: list[str], request) -> dict:
    names = {"tok": Tokenizer("bytepiece.model", seed=42), "texts": texts, "model": "model.zip"}
    if name == "bytepiece.data":
        import datasets
        from torch.utils.data import DataLoader

        names["ds"] = datasets.Dataset.from_dict({"text": texts})
        names["DataLoader"] = DataLoader
    if name in DASK:
        from distributed import Client

        client = Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None)
        request.addfinalizer(client.close)
        names["client"] = client
    return names


def test_examples_are_found_in_python_and_compiled_modules():
    assert {"bytepiece.tokenizer", "bytepiece.queries", "bytepiece.data"} <= set(_WITH_EXAMPLES)
    assert {"bytepiece._core.tokenizer_core", "bytepiece._core.ngram_table"} <= set(_WITH_EXAMPLES)


@pytest.mark.parametrize("name", [_param(n) for n in _WITH_EXAMPLES])
def test_docstring_examples(name, docs_folder, request):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    extra = _names(name, docs_folder, request)
    tests = _tests(name, torch_classes=True)
    if name == "bytepiece.data":
        assert "bytepiece.data.TokenizedDataset" in {t.name for t in tests}
    for test in tests:
        test.globs.update(extra)
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0
    assert not result.failed, f"{name}: {result.failed} docstring example(s) print something else (see above)"
