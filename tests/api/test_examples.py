"""The README's example scripts run as shown."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.torch

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_dataloader_example_runs_and_prints_batches():
    pytest.importorskip("torch")
    script = ROOT / "examples" / "dataloader_subword_regularisation.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trained tiny.model" in out.stdout
    assert "epoch" in out.stdout.lower()
