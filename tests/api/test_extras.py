"""The 'test' extra is installed, so that no module of the suite skips.

Several modules start with ``pytest.importorskip`` (torch, datasets, Dask,
SentencePiece, ...), which lets a developer run part of the suite in a bare
environment. In the environment the README's test command (and .ci/run) builds,
those skips would hide whole features: the data-loader and Dask tests would
pass by not running. This test turns a missing extra into a failure there.
"""

from __future__ import annotations

import importlib.metadata as metadata
import re

import pytest
from conftest import REPO


def _test_requirements():
    try:
        requires = metadata.requires("bytepiece") or []
    except metadata.PackageNotFoundError:
        pytest.skip("bytepiece is not installed (pip install -e '.[test]' checks the extras)")
    out = []
    for line in requires:
        requirement, _, marker = line.partition(";")
        if not re.search(r"""extra\s*==\s*["']test["']""", marker):
            continue
        match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", requirement)
        name, extras = match.group(1), match.group(2)
        out.append(name)
        # dask[distributed] needs the distributed package itself
        out.extend(e.strip() for e in (extras or "").split(",") if e.strip() and name == "dask")
    return out


def test_every_package_of_the_test_extra_is_installed():
    names = _test_requirements()
    assert {"torch", "datasets", "dask", "distributed", "scipy"} <= set(names)
    missing = []
    for name in names:
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
    assert not missing, f"not installed (pip install -e '.[test]'): {missing}"


def _pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml needs Python 3.11 or tomli")
    with open(REPO / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)


def test_the_test_extra_asks_for_lower_bounds_only():
    """A user's environment takes the test extra as it is: no pin to one machine's build
    (torch==2.13.0 had no wheel for Python 3.9 and pulled a CUDA build from the index)."""
    extra = _pyproject()["project"]["optional-dependencies"]["test"]
    pinned = [r for r in extra if re.search(r"==|<|~=|!=", r)]
    assert not pinned, f"the test extra pins {pinned}; give lower bounds"
    (torch,) = [r for r in extra if re.match(r"torch\b", r)]
    assert re.fullmatch(r"torch>=2\.\d+", torch)


def test_ci_installs_the_cpu_torch_before_the_test_extra():
    """With a plain lower bound, pip would fetch the newest torch (a multi-GB CUDA build)
    unless a torch is already installed: .ci/run puts the CPU build there first."""
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    torch_at = script.find("pip install 'torch==")
    extra_at = script.find("pip install -e '.[test]'")
    assert 0 <= torch_at < extra_at, ".ci/run must install torch==<the CPU build> before -e '.[test]'"
