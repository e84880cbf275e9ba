"""Overall-score weights: refused when negative, non-finite or all zero (one line, exit 2); huge finite weights
and non-finite values never turn the overall score into NaN."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from feedback_cli.config import load_settings
from feedback_cli.errors import UsageError
from feedback_cli.scoring.combine import pick_best, weighted_mean
from tests.conftest import EXAMPLE, only_run, read_json


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FBLOOP_IMAGE_WEIGHTS", '{"pickscore": -1}', "the weight of 'pickscore' is -1.0; weights must be finite"),
        ("FBLOOP_IMAGE_WEIGHTS", '{"pickscore": 1, "clip-score": -0.5}', "the weight of 'clip-score' is -0.5"),
        ("FBLOOP_IMAGE_WEIGHTS", '{"pickscore": "nan"}', "the weight of 'pickscore' is nan"),
        ("FBLOOP_IMAGE_WEIGHTS", '{"pickscore": 1e400}', "the weight of 'pickscore' is inf"),
        ("FBLOOP_IMAGE_WEIGHTS", '{"pickscore": "-inf"}', "the weight of 'pickscore' is -inf"),
        ("FBLOOP_IMAGE_WEIGHTS", '{"pickscore": 0, "aesthetic": 0.0}', "every weight is 0"),
        ("FBLOOP_VIDEO_WEIGHTS", '{"dynamic_degree": -2}', "the weight of 'dynamic_degree' is -2.0"),
        ("FBLOOP_VIDEO_WEIGHTS", '{"flicker": 0}', "every weight is 0"),
    ],
)
def test_bad_weights_are_refused_in_one_line(
    cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(UsageError) as err:
        load_settings()
    assert err.value.line().startswith(f"{variable}: ")
    assert message in err.value.line()
    result = cli("run", EXAMPLE, "--backend", "offline", "--output-dir", tmp_path / "runs")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"fbloop: error: {variable}: ") and message in lines[0], lines
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unparsable_weights_are_one_line(cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FBLOOP_IMAGE_WEIGHTS", "pickscore=2")
    result = cli("run", EXAMPLE, "--backend", "offline", "--output-dir", tmp_path / "runs")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "image_weights" in lines[0] and "internal error" not in lines[0], lines


@pytest.mark.parametrize(
    ("field", "variable"),
    [
        ("openai_api_key", "OPENAI_API_KEY"),
        ("openai_base_url", "OPENAI_BASE_URL"),
        ("replicate_api_token", "REPLICATE_API_TOKEN"),
        ("replicate_base_url", "REPLICATE_BASE_URL"),
        ("max_cost", "FBLOOP_MAX_COST"),
        ("image_weights", "FBLOOP_IMAGE_WEIGHTS"),
    ],
)
def test_a_setting_is_named_by_the_variable_it_is_read_from(field: str, variable: str) -> None:
    """Aliased settings are read from the client libraries' own variables, not FBLOOP_<FIELD>."""
    from feedback_cli.config import setting_name

    assert setting_name(field) == variable


def test_a_bad_secret_setting_is_named_without_its_value() -> None:
    """An aliased setting's error names its variable; a secret's value never goes into the line."""
    with pytest.raises(UsageError) as err:
        load_settings(OPENAI_API_KEY=31415926535897)  # not a string
    line = err.value.line()
    assert line.startswith("OPENAI_API_KEY: ") and "31415926535897" not in line, line


def test_a_bad_number_names_the_variable_and_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FBLOOP_OFFLINE_IMAGE_SIZE", "huge")
    monkeypatch.setenv("FBLOOP_LLM_CONCURRENCY", "0")
    with pytest.raises(UsageError) as err:
        load_settings()
    line = err.value.line()
    assert line.startswith("FBLOOP_") and "got " in line and "(and 1 more problem(s))" in line, line


@pytest.mark.parametrize("value", ['{"pickscore": 1e308}', '{"pickscore": 0, "clip-score": 2}', "{}"])
def test_usable_weights_pass(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FBLOOP_IMAGE_WEIGHTS", value)
    load_settings()


@pytest.mark.parametrize("huge", [1e308, 1.7e308, 5e307])
def test_huge_weights_do_not_overflow(huge: float) -> None:
    values = {"a": 80.0, "b": 40.0, "c": 10.0}
    assert weighted_mean(values, dict.fromkeys(values, huge)) == pytest.approx(130 / 3)
    assert weighted_mean(values, {"a": huge, "b": huge, "c": 0.0}) == pytest.approx(60.0)
    assert weighted_mean(values, {"a": huge, "b": 1.0, "c": 1.0}) == pytest.approx(80.0)
    assert weighted_mean(values, {"a": 5e-324, "b": 5e-324, "c": 5e-324}) == pytest.approx(130 / 3)


def test_non_finite_values_count_as_absent() -> None:
    assert weighted_mean({"a": math.nan, "b": 40.0}, {}) == 40.0
    assert weighted_mean({"a": math.inf}, {}) is None
    best, overall = pick_best([{"a": math.nan, "b": 10.0}, {"a": 50.0, "b": 20.0}], {}, "rank")
    assert best == 1 and all(v is not None and math.isfinite(v) for v in overall)


def test_huge_weights_in_a_run_give_a_finite_overall(cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """FBLOOP_IMAGE_WEIGHTS / VIDEO_WEIGHTS of 1e308 once wrote "overall": NaN into scores.json."""
    monkeypatch.setenv("FBLOOP_IMAGE_WEIGHTS", '{"sharpness": 1e308, "colorfulness": 1e308, "exposure": 1e308}')
    monkeypatch.setenv("FBLOOP_VIDEO_WEIGHTS", '{"flicker": 1e308, "motion": 1.5e308}')
    out = tmp_path / "runs"
    result = cli(
        "run", EXAMPLE, "--backend", "offline", "--seed", "4", "--num-image-variations", "3",
        "--num-video-attempts", "2", "--output-dir", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    run = only_run(out)
    for stage in ("stage_2_image_generation", "stage_5_video_generation"):
        text = (run / stage / "scores.json").read_text()
        assert "NaN" not in text and "Infinity" not in text
        data = read_json(run / stage / "scores.json")
        for group in data["groups"].values():
            for candidate in group["candidates"]:
                assert candidate["overall"] is not None and 0.0 <= candidate["overall"] <= 100.0
