"""Crash trials in CI: a few kill -9 trials per backend, and a few network cuts (a TCP forwarder in front of the
fake server killed mid-run and started again) (FBLOOP_CRASH_TRIALS, default 3); the report script runs the full
count (`python scripts/crash_trials.py --backend all --report docs/reliability.md`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

TRIALS = os.environ.get("FBLOOP_CRASH_TRIALS", "3")


@pytest.mark.parametrize("backend", ["offline", "cloud", "netcut"])
def test_kill_9_at_random_moments_then_resume(backend: str, tmp_path: Path) -> None:
    if backend != "offline":
        from feedback_cli.providers.registry import AGENTS

        pytest.importorskip(AGENTS["openai"].split(":")[0], reason="cloud providers not built yet")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "crash_trials.py"),
            "--trials",
            TRIALS,
            "--backend",
            backend,
            "--latency",
            "0.2",
            "--outage",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{backend}: {TRIALS} trials, {TRIALS} ok, 0 failed" in proc.stdout
    assert f"{backend}: duplicate predictions: 0" in proc.stdout
    if backend != "offline":  # paid = items, and the ledger is what the provider billed
        assert f"{backend}: ledger equals the provider's bill: {TRIALS} of {TRIALS} trials" in proc.stdout
