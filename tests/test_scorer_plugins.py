"""Scorers are plugins: every fact about a scorer is its class's declaration, and third-party scorers come in
through the `fbloop.scorers` entry points the built-ins use too (issue 12).

The entry-point route is proven end to end: the package in tests/plugin_scorer/ is pip-installed into a
temporary venv, and that venv's fbloop lists it (`models list`), preflights it and scores with it (`--scorers`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from PIL import Image

from feedback_cli.config import Settings
from feedback_cli.errors import ScorerUnavailable, UsageError
from feedback_cli.scoring import preflight, registry, requirements, scorer_sets, weights
from feedback_cli.scoring.base import DefaultSet, ImageScorer, NotedValue, ScorerOptions, VideoScorer, measure
from feedback_cli.scoring.requirements import Requirement, option_url
from tests.conftest import EXAMPLE
from tests.plugin_venv import install_plugin, run_fbloop

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "tests" / "plugin_scorer"
THIS = "tests.test_scorer_plugins"

HEAD_FILE = weights.UrlFile(
    key="head", label="a test head", url="http://127.0.0.1:9/head.pt", filename="h.pt", approx_bytes=10
)


class HeadOptions(ScorerOptions):
    #: a local head file instead of the download
    head: str | None = None
    module: str = "json"
    reference: float = 0.5


class HeadScorer(ImageScorer):
    """A model-based image scorer fbloop has never heard of: a package and a weight file, chosen by its own options."""

    name: ClassVar[str] = "test-head"
    default_set: ClassVar[DefaultSet] = "standard"
    Options = HeadOptions

    @classmethod
    def requirements(cls, settings: Settings) -> list[Requirement]:
        module = cls.options(settings).module
        return [
            Requirement(cls.name, "python", f"{module} package", "", module),
            option_url(cls, "head", HEAD_FILE, settings),
        ]

    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        return [0.25 for _ in images]

    def score_with_notes(self, images: Sequence[Path], prompt: str) -> list[NotedValue]:
        return [NotedValue(v, ("a note",)) for v in self.score(images, prompt)]

    def normalize(self, raw: float) -> float:
        return 100.0 * raw / self.options(self.settings).reference / 2


class TwoDims(VideoScorer):
    name: ClassVar[str] = "test-two"
    dimensions: ClassVar[tuple[str, ...]] = ("test-a", "test-b")
    offline: ClassVar[bool] = True

    def score(self, videos: Sequence[Path], prompt: str) -> dict[str, list[float]]:
        return {"test-a": [1.0 for _ in videos], "test-b": [2.0 for _ in videos]}

    def normalize(self, dimension: str, raw: float) -> float:
        return raw * 10


@pytest.fixture
def registered() -> Iterator[None]:
    registry.register("test-head", f"{THIS}:HeadScorer")
    registry.register("test-two", f"{THIS}:TwoDims")
    yield
    registry.unregister("test-head")
    registry.unregister("test-two")


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[call-arg]


# --------------------------------------------------------------------------- declarations, in process


def test_a_new_model_scorer_is_preflighted_without_being_listed_anywhere(registered, tmp_path, monkeypatch) -> None:
    """The defect class: a model scorer absent from a hand-kept tuple passed preflight unchecked."""
    s = settings(weights_dir=tmp_path / "empty")
    assert "test-head" in requirements.ALL_MODEL_SCORERS
    assert preflight.check("test-head", s) is None  # online: the first use would download the head
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ScorerUnavailable, match=r"test-head: a test head is not downloaded .* HF_HUB_OFFLINE=1"):
        preflight.preflight(["sharpness", "test-head"], s)
    # its own options (FBLOOP_TEST_HEAD_<FIELD>) change what it needs, and preflight follows
    monkeypatch.setenv("FBLOOP_TEST_HEAD_HEAD", str(tmp_path / "nope.pt"))
    problem = preflight.check("test-head", s)
    assert (
        problem is not None
        and problem.message == f"test-head: FBLOOP_TEST_HEAD_HEAD={tmp_path / 'nope.pt'} is not a file"
    )
    (tmp_path / "nope.pt").write_bytes(b"head")
    assert preflight.check("test-head", s) is None
    monkeypatch.setenv("FBLOOP_TEST_HEAD_MODULE", "fbloop_no_such_module")
    problem = preflight.check("test-head", s)
    assert problem is not None and "fbloop_no_such_module package is not installed" in problem.message
    # an offline statistic and an unknown name pass, as before
    assert preflight.check("test-two", s) is None and preflight.check("nope", s) is None


def test_default_sets_and_kinds_follow_the_declarations(registered, tmp_path) -> None:
    assert registry.REAL_IMAGE_SET[-1] == "test-head"
    assert "test-head" in registry.IMAGE_SCORERS and "test-two" in registry.VIDEO_SCORERS
    assert registry.split_names("test-two,test-head,offline") == (
        ["test-head", "sharpness", "colorfulness", "exposure"],
        ["test-two", "flicker", "motion"],
    )
    assert scorer_sets.default_image_scorers(settings(weights_dir=tmp_path))[-1] == "test-head"
    with pytest.raises(UsageError, match="test-two is a video scorer"):
        registry.image_scorer("test-two", settings())


def test_scorer_options_come_from_env_then_scorer_options(registered, monkeypatch) -> None:
    assert HeadScorer.options(settings()).reference == 0.5
    monkeypatch.setenv("FBLOOP_TEST_HEAD_REFERENCE", "0.25")
    assert HeadScorer.options(settings()).reference == 0.25
    chosen = settings(scorer_options={"test-head": {"reference": 1.0}})
    assert HeadScorer.options(chosen).reference == 1.0
    monkeypatch.setenv("FBLOOP_TEST_HEAD_REFERENCE", "bright")
    with pytest.raises(UsageError, match="FBLOOP_TEST_HEAD_REFERENCE"):
        HeadScorer.options(settings())


def test_hpsv2_needs_no_settings_field_of_its_own(monkeypatch, tmp_path) -> None:
    """HPSv2's checkpoint comes through its own options: env, FBLOOP_SCORER_OPTIONS, or the older Settings field."""
    chosen = tmp_path / "hps.pt"
    via_options = settings(scorer_options={"hpsv2": {"checkpoint": str(chosen)}})
    (_, weights_req) = requirements.requirements("hpsv2", via_options)
    assert (weights_req.override, weights_req.env_var) == (str(chosen), "FBLOOP_HPSV2_CHECKPOINT")
    assert registry.image_scorer("hpsv2", via_options).model_id == f"ViT-H-14 + {chosen}"
    monkeypatch.setenv("FBLOOP_HPSV2_ARCHITECTURE", "ViT-B-32")
    assert registry.image_scorer("hpsv2", settings()).model_id == "ViT-B-32 + HPS_v2.1_compressed.pt"
    assert preflight.check("hpsv2", via_options).message.endswith(f"FBLOOP_HPSV2_CHECKPOINT={chosen} is not a file")


def test_image_and_video_scorers_have_one_result_shape(registered, tmp_path) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    Image.new("RGB", (8, 8), (10, 10, 10)).save(a)
    Image.new("RGB", (8, 8), (200, 200, 200)).save(b)
    image = measure(registry.image_scorer("test-head", settings()), [a, b], "p")
    assert [set(row) for row in image] == [{"test-head"}, {"test-head"}]
    assert image[0]["test-head"].normalized == 25.0 and image[0]["test-head"].notes == ("a note",)
    video = measure(registry.video_scorer("test-two", settings()), [a, b], "p")
    assert [{k: v.normalized for k, v in row.items()} for row in video] == [{"test-a": 10.0, "test-b": 20.0}] * 2
    sharp = measure(registry.image_scorer("sharpness", settings()), [a, b], "p")
    assert sharp[0]["sharpness"].raw == 0.0


def test_a_broken_registration_is_one_clear_line(tmp_path) -> None:
    try:
        registry.register("test-broken", "fbloop_no_such_package.mod:Cls")
        registry.register("test-notascorer", "json:dumps")
        with pytest.raises(ScorerUnavailable, match=r"test-broken: fbloop_no_such_package\.mod cannot be imported"):
            registry.scorer_class("test-broken")
        with pytest.raises(ScorerUnavailable, match="not an ImageScorer or VideoScorer"):
            registry.split_names("test-notascorer")
        assert "test-broken" not in registry.IMAGE_SCORERS  # listing skips what cannot be imported
    finally:
        registry.unregister("test-broken")
        registry.unregister("test-notascorer")


def test_a_scorer_module_is_imported_only_when_its_name_is_asked_for() -> None:
    code = (
        "import sys\n"
        "from feedback_cli.scoring import registry\n"
        "before = [m for m in sys.modules if m.startswith('feedback_cli.scoring.')]\n"
        "registry.scorer_class('sharpness')\n"
        "after = [m for m in sys.modules if m.startswith('feedback_cli.scoring.')]\n"
        "print(sorted(set(after) - set(before)))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    assert out.stdout.strip() == "['feedback_cli.scoring.base', 'feedback_cli.scoring.offline']", out.stderr


def test_reading_every_declaration_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from feedback_cli.config import Settings\n"
        "from feedback_cli.scoring import preflight, registry, requirements, scorer_sets\n"
        "s = Settings(_env_file=None)\n"
        "names = registry.names()\n"
        "[requirements.requirements(n, s) for n in names]\n"
        "preflight.problems(names, s)\n"
        "scorer_sets.default_image_scorers(s)\n"
        "print(len(registry.classes()), [m for m in ('torch', 'torchvision', 'transformers') if m in sys.modules])\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True)
    assert out.stdout.split() == [str(len(registry.BUILTIN_SCORERS)), "[]"], out.stderr


# --------------------------------------------------------------------------- the entry-point route, for real


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv whose only installed distribution is the test scorer package (pip-installed, so its entry
    point is real metadata); fbloop and its dependencies come from this interpreter's site-packages, this
    checkout's src first."""
    return install_plugin(tmp_path_factory.mktemp("plugin"), PLUGIN)


def fbloop(python: Path, *args: object, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run_fbloop(python, *args, cwd=cwd, drop=("FBLOOP_",), **env)


@pytest.mark.slow
def test_an_installed_plugin_is_listed_checked_and_used(plugin_python: Path, tmp_path: Path) -> None:
    image = tmp_path / "black.png"
    Image.new("RGB", (16, 16), (0, 0, 0)).save(image)

    listed = fbloop(plugin_python, "models", "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = [r for r in json.loads(listed.stdout) if r["scorer"] == "meanluma"]
    assert [(r["what"], r["available"]) for r in rows] == [("PIL package", True)]

    scored = fbloop(
        plugin_python,
        "score",
        "--scorer",
        "meanluma",
        "--prompt",
        "p",
        "--json",
        image,
        cwd=tmp_path,
        FBLOOP_MEANLUMA_REFERENCE="0",
    )
    assert scored.returncode == 0, scored.stderr
    value = json.loads(scored.stdout)["results"][0]["scores"]["meanluma"]
    assert (value["raw"], value["normalized"], value["model_id"]) == (0.0, 100.0, "meanluma-statistic")

    # preflight checks what the plugin declares, before any call: its option names a module that is missing
    out = tmp_path / "runs"
    run_args = (
        "run",
        EXAMPLE,
        "--backend",
        "offline",
        "--workflow",
        "image-only",
        "--output-dir",
        out,
        "--seed",
        "3",
        "--num-image-variations",
        "2",
        "--scorers",
        "meanluma,flicker",
    )
    refused = fbloop(plugin_python, *run_args, cwd=tmp_path, FBLOOP_MEANLUMA_MODULE="fbloop_no_such_module")
    assert refused.returncode != 0
    assert "meanluma: the fbloop_no_such_module package is not installed" in refused.stderr
    assert "Traceback" not in refused.stderr and not out.exists()

    ran = fbloop(plugin_python, *run_args, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    checkpoint = json.loads((run / "workflow_checkpoint.json").read_text())
    assert "meanluma" in json.dumps(checkpoint)
    scores_files = list(run.rglob("scores.json"))
    assert scores_files and all("meanluma" in f.read_text() for f in scores_files)

    # the same command without the plugin installed: an unknown name, one line, exit 2
    plain = fbloop(Path(sys.executable), *run_args, cwd=tmp_path)
    assert plain.returncode == 2 and "unknown scorer 'meanluma'" in plain.stderr


def test_the_readme_recipe_is_a_working_scorer(tmp_path, monkeypatch) -> None:
    """README "Adding a scorer": its module, as written, plus one registration line, is a scorer fbloop uses."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("### Adding a scorer") :]
    code = section[section.index("```python\n") + len("```python\n") :]
    code = code[: code.index("```")]
    package = tmp_path / "readme_recipe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "my_scorer.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FBLOOP_MY_SCORER_THRESHOLD", "0.25")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        registry.register("my-scorer", "readme_recipe.my_scorer:MyScorer")
        s = settings(weights_dir=tmp_path / "weights")
        assert "my-scorer" in registry.IMAGE_SCORERS and registry.OPTIONAL_IMAGE_SET[-1] == "my-scorer"
        assert "my-scorer" not in scorer_sets.default_image_scorers(s)  # its head is not here
        (req,) = requirements.requirements("my-scorer", s)
        assert (req.kind, req.env_var, requirements.status(req, s).available) == ("url", "FBLOOP_MY_SCORER_HEAD", False)
        problem = preflight.check("my-scorer", s)
        assert problem is not None and problem.hint == "fbloop models download my-scorer"
        cls = registry.scorer_class("my-scorer")
        assert cls.options(s).threshold == 0.25 and registry.image_scorer("my-scorer", s).normalize(0.5) == 50
    finally:
        registry.unregister("my-scorer")
