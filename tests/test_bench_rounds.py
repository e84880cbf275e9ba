"""`bench/rounds.py --backend cloud` (issue 13: "with keys it runs on the real providers and prints the same
table"), end to end against the fake provider server: the real openai and replicate clients over HTTP, keys set,
base URLs on 127.0.0.1. Scoring is the offline statistics (FBLOOP_SCORERS=offline): the default cloud scorers
need model weights this machine does not have; the element check, the questions and the revisions are the
providers' and are paid for."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench" / "rounds.py"
PROMPTS = 3
ROUNDS = 2
NUM = 2


def _bench(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH), *args], env=env, capture_output=True, text=True, timeout=240, cwd=REPO
    )


def _stage_entries(keep: Path) -> list[dict[str, Any]]:
    traces = sorted(keep.glob("run_*/image_generation/*/workflow_trace.json"))
    assert len(traces) == PROMPTS, traces
    entries = []
    for trace in traces:
        entries += [e for e in json.loads(trace.read_text())["ledger"] if e["stage"] == "image_generation"]
    return entries


def _round_one_images_usd(keep: Path) -> float:
    total = 0.0
    for trace in sorted(keep.glob("run_*/image_generation/*/workflow_trace.json")):
        stage = next(s for s in json.loads(trace.read_text())["stages"] if s["name"] == "image_generation")
        total += sum(i["cost_usd"] for i in stage["items"] if i["extra"].get("round") == 1)
    return total


def test_the_keyed_path_prints_the_table_for_the_cloud_providers(
    fake_provider_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FBLOOP_SCORERS", "offline")
    monkeypatch.setenv("FBLOOP_POLL_INTERVAL_S", "0.02")
    prompts = tmp_path / "prompts.txt"
    examples = (REPO / "examples" / "prompts.txt").read_text().splitlines()
    prompts.write_text("\n".join(examples[:PROMPTS]) + "\n")
    keep = tmp_path / "runs"
    done = _bench(
        "--backend", "cloud", "--prompts", str(prompts), "--rounds", str(ROUNDS), "--num", str(NUM),
        "--keep", str(keep), env=dict(os.environ),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # the label says which servers answered: these are not the real providers
    assert f"backend: cloud (OpenAI API at {fake_provider_env.openai_base_url}," in out
    assert f"Replicate API at {fake_provider_env.replicate_base_url})" in out
    assert len(re.findall(r"^ ?\d+ r=\d ", out, flags=re.MULTILINE)) == PROMPTS
    mean_rounds = float(re.search(r"mean rounds run (\d+\.\d+)", out).group(1))  # type: ignore[union-attr]
    assert mean_rounds == ROUNDS  # target 100 is never reached: every prompt runs both rounds
    assert re.search(r"best score after round 1: \d+\.\d, after the last round: \d+\.\d", out)
    assert re.search(r"element score after round 1: \d+\.\d, after the last round: \d+\.\d", out)

    found = re.search(r"^cost: round 1 \$(\d+\.\d+), all rounds \$(\d+\.\d+)$", out, flags=re.MULTILINE)
    assert found, out
    first, total = float(found.group(1)), float(found.group(2))
    assert 0 < first < total
    ratio = float(re.search(r"cost ratio \(all rounds / round 1\): (\d+\.\d+)", out).group(1))  # type: ignore[union-attr]
    assert ratio == pytest.approx(total / first, abs=0.02)
    # all rounds: every paid call of the stage, as the runs booked them; the images as the server billed them
    assert total == pytest.approx(sum(e["usd"] for e in _stage_entries(keep)), abs=1e-4)
    assert fake_provider_env.predictions_created == PROMPTS * ROUNDS * NUM
    assert total > fake_provider_env.billed_usd > 0
    # round 1 is its images plus what checking them cost (the questions and the element check's answers)
    assert first > _round_one_images_usd(keep) + 1e-4
    assert "in no round" not in out


def test_the_cloud_backend_without_keys_is_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "REPLICATE_API_TOKEN")}
    done = _bench("--backend", "cloud", env=env)
    assert done.returncode == 2
    assert done.stderr.strip() == "--backend cloud needs OPENAI_API_KEY and REPLICATE_API_TOKEN set"
    assert done.stdout == ""
