"""What a user meets when the compiled core is not where Python looks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_importing_a_source_folder_without_the_core_says_what_to_run(tmp_path):
    """Python run inside a clone imports ./bytepiece/; without compiled extensions there
    the ImportError says why and what to run, instead of naming a private module."""
    shutil.copytree(
        REPO / "bytepiece", tmp_path / "bytepiece", ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__")
    )
    done = subprocess.run(
        [sys.executable, "-c", "from bytepiece import Tokenizer"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: bytepiece's compiled core is not built in")
    assert "pip install -e ." in last and str(tmp_path / "bytepiece") in last
