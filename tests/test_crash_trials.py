"""Crash trials in CI: a few kill -9 trials per backend (FBLOOP_CRASH_TRIALS, default 3); the report
script runs the full count (`python scripts/crash_trials.py --report docs/reliability.md`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

TRIALS = os.environ.get("FBLOOP_CRASH_TRIALS", "3")


@pytest.mark.parametrize("backend", ["offline", "cloud"])
def test_kill_9_at_random_moments_then_resume(backend: str, tmp_path: Path) -> None:
    if backend == "cloud":
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
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{backend}: {TRIALS} trials, {TRIALS} ok, 0 failed" in proc.stdout
    assert f"{backend}: duplicate predictions: 0" in proc.stdout


def _crash_trials_module():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("crash_trials", REPO / "scripts" / "crash_trials.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["crash_trials"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_report_keeps_the_sections_it_does_not_generate(tmp_path: Path) -> None:
    """`--report` regenerates the title and the trials of the backends it ran; every hand-written section
    (e.g. "## Money", "## Secrets", wherever it stands) and the results of a backend not run stay."""
    trials = _crash_trials_module()
    report = tmp_path / "reliability.md"
    report.write_text(
        "# Reliability: crash trials\n\nold intro\n\n## offline\n\n- old offline results\n\n"
        "## Money\n\nhand-written money\n\n```\n## not a heading (in a code block)\n```\n\n### detail\n\nmore money\n\n"
        "## cloud\n\n- old cloud results\n\n## Secrets\n\nhand-written secrets\n"
    )
    trials.write_report(report, {"cloud": [trials.Trial(1, 0.5, resumed_ok=True)]}, 0.2)
    text = report.read_text()
    assert text.startswith("# Reliability: crash trials\n") and "old intro" not in text
    assert "old cloud results" not in text and text.count("## cloud") == 1 and "| 1 | 0.5 |" in text
    assert "- old offline results" in text  # not run this time: kept
    for kept in ("hand-written money", "## not a heading (in a code block)", "### detail\n\nmore money"):
        assert kept in text
    assert text.index("## Money") < text.index("## Secrets") and text.endswith("hand-written secrets\n")
    trials.write_report(report, {"cloud": [trials.Trial(1, 0.5, resumed_ok=True)]}, 0.2)
    assert report.read_text() == text, "regenerating again changes nothing (nothing kept twice)"
