"""Every example in the README and in docs/ runs as written, and prints what it shows.

The blocks are read from the Markdown by their fence:

- ``pycon``: doctest examples (``>>>``), checked against the output shown (ELLIPSIS and
  NORMALIZE_WHITESPACE, as doctest), the blocks of one page in order in one namespace;
- ``python``: code run as it is, in the same namespace as the page's other Python; a
  ``python`` block written as a session (its first line starts with ``>>>``) is checked
  as ``pycon`` is, since it could not run as code;
- ``console``: ``$ command`` lines run by bash, each followed by the output it must
  print (the same checker, so ``...`` stands for what varies, such as timings);
- ``sh``: commands that must succeed.

Anything else (``text``, ``json``, no language) is output or data, not run. A page
whose Python examples are slow (they start a Dask cluster or train a model) carries the
comment ``<!-- docs-test: slow -->``, and its test is marked slow. A block
right after a line ``<!-- not run: REASON -->`` is skipped, and the test says why; only
the set-up commands that install from the network are marked so (CI runs those itself,
.ci/run). Each page runs in a fresh folder holding links to the repository's corpora,
tests, examples, benchmarks, scripts and pyproject.toml (so that a page's pytest command
runs with the project's settings), so relative paths in the examples resolve as in a
clone and files they write do not land in the checkout.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*$")
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>.+?)\s*-->")
LINKED = ("corpora", "tests", "examples", "benchmarks", "scripts", "pyproject.toml")
CHECKER = doctest.OutputChecker()
# Links that leave a clone: a sibling folder of the repository, or a development machine's path.
OUTSIDE = re.compile("|".join([r"\.\./" + "shared", "/" + "work/\\w"]))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def blocks(page: Path) -> list[tuple[str, int, str, str | None]]:
    """(language, first line number, code, not-run reason) of every fenced block."""
    out = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group("indent"), m.group("lang")
        reason = None
        for back in range(i - 1, max(i - 3, -1), -1):
            found = NOT_RUN.search(lines[back])
            if found:
                reason = found.group("reason")
                break
            if lines[back].strip():
                break
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        out.append((lang, i - len(body), "\n".join(body) + "\n", reason))
        i += 1
    return out


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A fresh working folder with the repository's data linked in."""
    for name in LINKED:
        (tmp_path / name).symlink_to(REPO / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _page_id(page: Path) -> str:
    return str(page.relative_to(REPO))


SLOW_PAGE = "<!-- docs-test: slow -->"


def _python_pages():
    """The pages with Python examples; a page whose examples start clusters or train
    models says so with the comment SLOW_PAGE, which marks its test slow."""
    return [
        pytest.param(p, marks=[pytest.mark.slow] if SLOW_PAGE in p.read_text(encoding="utf-8") else [])
        for p in PAGES
        if any(lang in ("pycon", "python") for lang, *_ in blocks(p))
    ]


def _shell_pages():
    return [p for p in PAGES if any(lang in ("console", "sh") for lang, *_ in blocks(p))]


@pytest.mark.parametrize("page", _python_pages(), ids=_page_id)
def test_python_examples(page, folder):
    namespace: dict = {"__name__": "__docs__"}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for lang, line, code, reason in blocks(page):
        if reason or lang not in ("pycon", "python"):
            continue
        where = f"{_page_id(page)}:{line}"
        if lang == "python" and not code.lstrip().startswith(">>>"):
            exec(compile(code, where, "exec"), namespace)
            continue
        test = parser.get_doctest(code, namespace, where, str(page), line)
        result = runner.run(test, clear_globs=False)
        namespace.update(test.globs)  # (a DocTest runs in a copy of the namespace it is given)
        assert not result.failed, f"{where}: {result.failed} example(s) print something else (see above)"


def _environment() -> dict:
    env = dict(os.environ)
    # The `bytepiece` command of this interpreter's environment comes first.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("PYTHONHASHSEED", "0")
    env["COLUMNS"] = "100"
    return env


def _run(command: str, folder: Path, where: str) -> str:
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=folder,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{where}: `{command}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def console_steps(code: str) -> list[tuple[str, str]]:
    """(command, expected output) of a console block ($-prompted commands; a line ending
    in a backslash continues the command)."""
    steps: list[tuple[str, list[str]]] = []
    continuing = False
    for raw in code.splitlines():
        if continuing:
            steps[-1] = (steps[-1][0] + "\n" + raw, steps[-1][1])
            continuing = raw.endswith("\\")
        elif raw.startswith("$ "):
            steps.append((raw[2:], []))
            continuing = raw.endswith("\\")
        elif steps:
            steps[-1][1].append(raw)
    return [(command, "\n".join(output).strip("\n") + "\n" if any(output) else "") for command, output in steps]


@pytest.mark.slow
@pytest.mark.parametrize("page", _shell_pages(), ids=_page_id)
def test_shell_examples(page, folder):
    skipped = []
    for lang, line, code, reason in blocks(page):
        if lang not in ("console", "sh"):
            continue
        where = f"{_page_id(page)}:{line}"
        if reason:
            skipped.append(f"{where} ({reason})")
            continue
        if lang == "sh":
            _run(code, folder, where)
            continue
        for command, expected in console_steps(code):
            got = _run(command, folder, where)
            if expected and not CHECKER.check_output(expected, got, FLAGS):
                pytest.fail(f"{where}: `{command}` printed\n{got}\nnot\n{expected}")
    if skipped:
        print("not run:", *skipped, sep="\n  ")


def test_no_example_refers_outside_the_repository():
    """No page, and no script or module, sends a reader to files a clone does not have."""
    sources = [
        p for folder in ("bytepiece", "benchmarks", "scripts", "examples") for p in (REPO / folder).rglob("*.py")
    ]
    for page in [*PAGES, *sources]:
        text = page.read_text(encoding="utf-8")
        outside = [m.group(0) for m in OUTSIDE.finditer(text)]
        assert not outside, f"{page.relative_to(REPO)} refers outside the repository: {outside}"
