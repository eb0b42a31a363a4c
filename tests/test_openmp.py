"""The app runs torch's OpenMP workers passive: app.py sets OMP_WAIT_POLICY before torch loads, so an idle
worker sleeps at once instead of spinning (libgomp's default: 300,000 rounds after every parallel region),
CPU that the other sessions of a shared server lose. libgomp prints its settings when OMP_DISPLAY_ENV asks."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]
RUN_APP = (
    "from streamlit.testing.v1 import AppTest\n"
    "at = AppTest.from_file('app.py', default_timeout=300).run()\n"
    "assert not at.exception, at.exception\n"
)


def openmp_settings(code: str) -> str:
    """libgomp's settings as printed when `code` runs in a fresh interpreter without OpenMP variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_"))}
    env |= {"OMP_DISPLAY_ENV": "VERBOSE", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stderr


def test_torch_alone_spins_and_the_app_does_not():
    assert "GOMP_SPINCOUNT = '300000'" in openmp_settings("import torch")
    assert "GOMP_SPINCOUNT = '0'" in openmp_settings(RUN_APP)
