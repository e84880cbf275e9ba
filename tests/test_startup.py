"""The CLI's start-up path imports nothing heavy: help, inspect and usage errors stay fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "transformers", "openai", "replicate", "torchvision", "huggingface_hub")

PROBE = """
import json, sys
sys.argv = ["fbloop", *json.loads(sys.argv[1])]
from feedback_cli.app import app
try:
    app()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {heavy})))
"""


def imported_by(args: list[str], cwd: Path) -> list[str]:
    code = PROBE.replace("{heavy}", repr(set(HEAVY)))
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, cwd=cwd)
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "args",
    [["--help"], ["-h"], ["run", "--help"], ["inspect"], ["run", "missing.txt"], ["run", "x.txt", "--clips", "0"]],
    ids=["help", "dash-h", "run-help", "inspect", "usage-error", "range-error"],
)
def test_start_up_imports_nothing_heavy(args: list[str], tmp_path: Path) -> None:
    assert imported_by(args, tmp_path) == []
