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
    if backend != "offline":  # paid = items, the ledger is what the provider billed, every billed chat booked
        assert f"{backend}: ledger equals the provider's bill: {TRIALS} of {TRIALS} trials" in proc.stdout
        assert f"{backend}: billed chat completions missing from the ledger: 0" in proc.stdout


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
    assert text.startswith("# Reliability: crash trials and network cuts\n") and "old intro" not in text
    assert "old cloud results" not in text and text.count("## cloud") == 1 and "| 1 | 0.5 |" in text
    assert "- old offline results" in text  # not run this time: kept
    for kept in ("hand-written money", "## not a heading (in a code block)", "### detail\n\nmore money"):
        assert kept in text
    assert text.index("## Money") < text.index("## Secrets") and text.endswith("hand-written secrets\n")
    trials.write_report(report, {"cloud": [trials.Trial(1, 0.5, resumed_ok=True)]}, 0.2)
    assert report.read_text() == text, "regenerating again changes nothing (nothing kept twice)"


def test_the_report_keeps_every_section_it_did_not_rerun(tmp_path: Path) -> None:
    """`--report` replaces the sections of the backends it ran and keeps the others where they were, hand-written
    ones ("## Money ...", "## Secrets") as they are; a section kept from the end of the file is still
    separated from what follows it."""
    trials = _crash_trials_module()
    report = tmp_path / "reliability.md"
    money = "## Money: what each outage does\n\n| Class | Test | Outcome |\n|---|---|---|\n| a | b | c |\n\n"
    offline = "## offline\n\n- offline: 1 trials, 0 ok, 1 failed\n\n"
    secrets = "## Secrets\n\nA key never reaches the terminal.\n\n### Classes\n\n| Class | Test |\n|---|---|\n"
    cloud = "## cloud\n\n- cloud: 20 trials, 20 ok, 0 failed\n"  # last in the file: no blank line after it
    report.write_text("# Old title\n\nold header\n\n" + money + offline + secrets + cloud)

    trials.write_report(report, {"offline": [trials.Trial(1, 0.5, resumed_ok=True)]}, 0.3, 3.0)

    text = report.read_text()
    assert text.startswith("# Reliability") and "old header" not in text
    assert "- offline: 1 trials, 1 ok, 0 failed" in text and "0 ok, 1 failed" not in text
    titles = [line for line in text.splitlines() if line.startswith("## ")]
    assert titles == ["## Money: what each outage does", "## offline", "## Secrets", "## cloud"]
    assert money in text and secrets.rstrip("\n") + "\n\n## cloud" in text and text.endswith(cloud)

    trials.write_report(report, {"netcut": [trials.Trial(1, 2.0, resumed_ok=True)]}, 0.3, 3.0)
    text = report.read_text()
    assert [line for line in text.splitlines() if line.startswith("## ")][-2:] == ["## cloud", "## netcut"]
    assert cloud + "\n## netcut" in text, "a kept last section does not run into a new one"
    assert money in text and secrets.rstrip("\n") in text
