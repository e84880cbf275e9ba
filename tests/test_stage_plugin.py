"""A new stage is one module plus one registration line: the workflows, `--dry-run`, `fbloop run`, its summary
and `fbloop stage` pick it up from its own declarations; the engine names no stage; and a stage that declares
no estimate is refused, never priced at $0."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image

from feedback_cli.choices import Backend, Workflow
from feedback_cli.config import load_settings
from feedback_cli.runstate.models import RunOptions
from feedback_cli.stages import registry
from feedback_cli.stages.base import Stage, StageContext
from feedback_cli.stages.facts import Pricing, StageEstimate
from feedback_cli.workflow.estimate import dry_run
from tests.conftest import EXAMPLE, only_run, read_json
from tests.plugin_venv import install_plugin, run_fbloop

SRC = Path(__file__).resolve().parents[1] / "src" / "feedback_cli"

#: the whole new stage, written as a third party would: it imports only fbloop's stage interface. The same
#: module is the installable package tests/plugin_stage/ (entry point `fbloop.stages`), tested below.
PLUGIN = Path(__file__).resolve().parent / "plugin_stage"
CAPTION_MODULE = (PLUGIN / "fbloop_caption" / "stage.py").read_text()


@pytest.fixture
def caption_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The caption module in its own folder, registered with one line; the registry restored afterwards."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "fbloop_caption_stage.py").write_text(CAPTION_MODULE)
    monkeypatch.syspath_prepend(str(plugin))
    monkeypatch.setattr(registry, "STAGES", dict(registry.load_builtin()))
    # the one registration line, as a built-in stage adds its module to BUILTIN_MODULES in stages/registry.py
    monkeypatch.setattr(registry, "BUILTIN_MODULES", (*registry.BUILTIN_MODULES, "fbloop_caption_stage"))
    yield "caption"
    sys.modules.pop("fbloop_caption_stage", None)


def test_dry_run_prices_the_new_stage(cli: Any, tmp_path: Path, caption_stage: str) -> None:
    r = cli("run", EXAMPLE, "--backend", "cloud", "--dry-run", "--json", "--output-dir", tmp_path / "out")
    assert r.exit_code == 0, r.stderr
    plan = json.loads(r.stdout)
    names = [s["name"] for s in plan["stages"]]
    assert names == ["image_prompt", "image_generation", "caption", "storyboard", "video_prompt", "video_generation"]
    caption = plan["stages"][2]
    assert caption["runs"] and caption["agent_calls_min"] == caption["agent_calls_max"] == 1
    assert caption["cost_min_usd"] > 0 and caption["cost_max_usd"] > 0
    assert caption["models"]
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_offline_run_runs_the_new_stage_and_the_summary_lists_it(cli: Any, tmp_path: Path, caption_stage: str) -> None:
    out = tmp_path / "out"
    r = cli(
        "run", EXAMPLE, "--workflow", "image-only", "--backend", "offline", "-n", "2", "--max-rounds-image", "1",
        "--output-dir", out,
    )  # fmt: skip
    assert r.exit_code == 0, r.stderr
    run = only_run(out)
    summary = read_json(run / "workflow_summary.json")
    assert [(s["name"], s["status"]) for s in summary["stages"]] == [
        ("image_prompt", "completed"),
        ("image_generation", "completed"),
        ("caption", "completed"),
    ]
    caption = (run / "stage_3_caption" / "caption.txt").read_text().strip()
    assert caption and summary["stages"][2]["scores"]["caption_words"] == len(caption.split())
    assert "3. caption" in r.stdout  # the end-of-run table
    words = f"caption_words={len(caption.split())}"  # a count the stage declares: no decimals
    assert words in r.stdout and words in cli("inspect", run).stdout
    assert f"{words}.0" not in r.stdout
    ledger = read_json(run / "workflow_trace.json")["ledger"]
    assert [e["what"] for e in ledger if e["stage"] == "caption"] == ["caption"]


def test_fbloop_stage_runs_the_new_stage(cli: Any, tmp_path: Path, caption_stage: str) -> None:
    out = tmp_path / "out"
    r = cli("stage", "caption", "--output-dir", out)
    assert r.exit_code == 2 and r.stderr == "fbloop: error: fbloop stage caption needs --image\n", r.stderr
    assert not out.exists()
    image = tmp_path / "sunset_orange.png"
    Image.new("RGB", (64, 48), (240, 120, 30)).save(image)
    r = cli("stage", "caption", "--image", image, "--backend", "offline", "--output-dir", out)
    assert r.exit_code == 0, r.stderr
    run = only_run(out / "caption")
    summary = read_json(run / "workflow_summary.json")
    assert summary["workflow"] == "stage caption" and summary["status"] == "completed"
    assert (run / "stage_3_caption" / "caption.txt").read_text().strip()
    help_text = cli("stage", "--help").stdout
    assert "<image-prompt|image-generation|caption|storyboard|" in help_text  # listed in its place


def test_dry_run_with_an_unpriced_stage_fails_loudly(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The caption module with its estimate left out: the dry run stops with a line naming it, no $0 plan."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    start = CAPTION_MODULE.index("    @classmethod\n    def estimate")
    end = CAPTION_MODULE.index("    async def run")
    (plugin / "fbloop_unpriced_stage.py").write_text(CAPTION_MODULE[:start] + CAPTION_MODULE[end:])
    monkeypatch.syspath_prepend(str(plugin))
    monkeypatch.setattr(registry, "STAGES", dict(registry.load_builtin()))
    monkeypatch.setattr(registry, "BUILTIN_MODULES", (*registry.BUILTIN_MODULES, "fbloop_unpriced_stage"))
    try:
        r = cli("run", EXAMPLE, "--backend", "cloud", "--dry-run", "--json")
    finally:
        sys.modules.pop("fbloop_unpriced_stage", None)
    assert r.exit_code != 0 and r.stdout == ""
    assert "stage CaptionStage does not declare estimate" in r.stderr, r.stderr


def _options(**values: Any) -> RunOptions:
    return RunOptions(backend=Backend.cloud, workflow=Workflow.image_only, **values)


def test_a_stage_without_an_estimate_is_refused_at_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "STAGES", dict(registry.load_builtin()))

    class Unpriced(Stage):
        name: ClassVar[str] = "unpriced"
        number: ClassVar[int] = 3
        title: ClassVar[str] = "Unpriced"
        workflows: ClassVar[tuple[str, ...]] = ("image-only",)

        async def run(self, ctx: StageContext) -> None:
            return None

    with pytest.raises(registry.StageDeclarationError, match="Unpriced does not declare estimate"):
        registry.register(Unpriced)
    assert "unpriced" not in registry.STAGES

    # put in the registry behind register's back, it still cannot price at $0: the dry run refuses it
    monkeypatch.setitem(registry.STAGES, "unpriced", Unpriced)
    with pytest.raises(NotImplementedError, match="stage unpriced declares no estimate"):
        dry_run(_options(), load_settings(), starts_from_image=False)

    class Priced(Unpriced):
        @classmethod
        def estimate(cls, options: RunOptions, pricing: Pricing) -> StageEstimate:
            return StageEstimate(agent_calls_min=1, agent_calls_max=1)

    assert registry.register(Priced) is Priced  # declaring it is all it takes


def test_a_stage_in_an_unknown_workflow_is_refused() -> None:
    class Misplaced(Stage):
        name: ClassVar[str] = "misplaced"
        number: ClassVar[int] = 9
        title: ClassVar[str] = "Misplaced"
        workflows: ClassVar[tuple[str, ...]] = ("image_only",)  # the value is "image-only": it would never run

        @classmethod
        def estimate(cls, options: RunOptions, pricing: Pricing) -> StageEstimate:
            return StageEstimate()

        async def run(self, ctx: StageContext) -> None:
            return None

    with pytest.raises(registry.StageDeclarationError, match="a known workflow \\(not 'image_only'\\)"):
        registry.register(Misplaced)


def test_a_picking_stage_must_say_how_a_pick_applies() -> None:
    class Picky(Stage):
        name: ClassVar[str] = "picky"
        number: ClassVar[int] = 9
        title: ClassVar[str] = "Picky"
        review = "images"
        can_pick: ClassVar[bool] = True

        @classmethod
        def estimate(cls, options: RunOptions, pricing: Pricing) -> StageEstimate:
            return StageEstimate()

        async def run(self, ctx: StageContext) -> None:
            return None

    with pytest.raises(registry.StageDeclarationError, match="apply_pick"):
        registry.register(Picky)


#: the engine and the modules that used to branch on stage names
ENGINE_MODULES = (
    "workflow/orchestrator.py",
    "workflow/estimate.py",
    "workflow/plan.py",
    "workflow/report.py",
    "ui/summary.py",
    "ui/batch_inspect.py",
    "commands/stage.py",
)


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_the_engine_names_no_stage(module: str) -> None:
    stages = registry.load_builtin().values()
    names = {cls.name for cls in stages} | {cls.command_name() for cls in stages}
    tree = ast.parse((SRC / module).read_text())
    named = sorted(
        {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)} & names
    )
    assert named == [], f"{module} names stages {named}: read the stages' declarations instead"


# --------------------------------------------------------------------------- the entry-point route, for real


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with tests/plugin_stage/ pip-installed: the caption stage arrives through `fbloop.stages`."""
    return install_plugin(tmp_path_factory.mktemp("stage-plugin"), PLUGIN)


@pytest.mark.slow
def test_an_installed_stage_is_planned_priced_run_and_offered(plugin_python: Path, tmp_path: Path) -> None:
    def fbloop(*args: object) -> subprocess.CompletedProcess[str]:
        return run_fbloop(plugin_python, *args, cwd=tmp_path, drop=("FBLOOP_", "OPENAI_", "REPLICATE_"))

    plan = fbloop("run", EXAMPLE, "--backend", "cloud", "--dry-run", "--json")
    assert plan.returncode == 0, plan.stderr
    stages = json.loads(plan.stdout)["stages"]
    caption = next(s for s in stages if s["name"] == "caption")
    assert [s["name"] for s in stages].index("caption") == 2 and caption["cost_max_usd"] > 0

    run = fbloop("run", EXAMPLE, "--workflow", "image-only", "-n", "2", "--max-rounds-image", "1", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert [s["name"] for s in summary["stages"]] == ["image_prompt", "image_generation", "caption"]
    folder = Path(summary["run_dir"]) if Path(summary["run_dir"]).is_absolute() else tmp_path / summary["run_dir"]
    assert (folder / "stage_3_caption" / "caption.txt").read_text().strip()

    offered = fbloop("stage", "--help")
    assert offered.returncode == 0 and "caption" in offered.stdout
    missing = fbloop("stage", "caption")
    assert missing.returncode == 2 and missing.stderr.strip().endswith("fbloop stage caption needs --image")


@pytest.mark.slow
def test_a_broken_installed_stage_is_one_line_naming_it(tmp_path: Path) -> None:
    """A stage plugin that cannot be used must not change a workflow silently: one line naming it, exit 2."""
    package = tmp_path / "broken"
    shutil.copytree(PLUGIN, package)
    module = package / "fbloop_caption" / "stage.py"
    start = CAPTION_MODULE.index("    @classmethod\n    def estimate")
    module.write_text(CAPTION_MODULE[:start] + CAPTION_MODULE[CAPTION_MODULE.index("    async def run") :])
    python = install_plugin(tmp_path / "venv", package)
    result = run_fbloop(python, "run", EXAMPLE, "--dry-run", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert "stage plugin 'caption'" in lines[0] and "does not declare estimate" in lines[0]
    assert "Traceback" not in result.stderr
