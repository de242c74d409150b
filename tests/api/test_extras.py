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
