"""Prometheus's ``promtool`` for the tests that check our metrics, rules and their unit tests.

A test that needs it fails, never skips, when it is missing: the checks are part of the suite.
``make install-tools`` installs it (Debian's ``prometheus`` package).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL = "sudo apt-get install -y --no-install-recommends prometheus  (or: make install-tools)"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(f"promtool is not installed; install it with: {INSTALL}")
    return found


def run_promtool(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> str:
    """Run ``promtool args…``; fail the test with its output unless it exits 0. Returns its
    combined output."""
    done = subprocess.run(
        [promtool(), *args], input=stdin, capture_output=True, cwd=cwd, timeout=60, check=False
    )
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, f"promtool {' '.join(args)} exited {done.returncode}:\n{output}"
    return output
