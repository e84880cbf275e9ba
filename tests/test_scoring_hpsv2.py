"""HPSv2.1 as a plug-in image scorer: a tiny open_clip model of ViT-H-14's family, saved as an HPS-style
checkpoint (`{"state_dict": ...}`), loaded through fbloop's loader and checked against the HPSv2 authors'
`score()` (tgxs002/HPSv2, `hpsv2/img_score.py`) on the same weights and files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("open_clip")
pytest.register_assert_rewrite("tests.scoring_models")

import torch  # noqa: E402

from feedback_cli.errors import ScorerUnavailable  # noqa: E402
from feedback_cli.scoring import preflight, registry  # noqa: E402
from feedback_cli.scoring import requirements as checkpoints  # noqa: E402
from feedback_cli.scoring import scorer_sets as select  # noqa: E402
from tests.scoring_models import TinyModels, make_images, make_settings  # noqa: E402

pytest_plugins = ["tests.scoring_models"]

PROMPT = "a red cat on a blue sofa"
LONG_PROMPT = " ".join(["a red cat on a blue sofa in a sunlit room with plants and old books"] * 5)

#: ViT-H-14's config (open_clip `model_configs/ViT-H-14.json`, as vendored by HPSv2) scaled down: same keys,
#: same GELU ViT + text transformer, 77-token context and the real BPE vocabulary
TINY_VIT_H_14 = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny_hps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config JSON, checkpoint) of a randomly initialised tiny ViT-H-14-family CLIP, HPS checkpoint layout."""
    import open_clip

    root = tmp_path_factory.mktemp("hpsv2")
    config = root / "tiny-ViT-H-14.json"
    config.write_text(json.dumps(TINY_VIT_H_14))
    open_clip.add_model_config(config)
    torch.manual_seed(11)
    model = open_clip.create_model("tiny-ViT-H-14", pretrained=None)
    with torch.no_grad():  # spread the text embeddings so cosines are not all ~0
        model.token_embedding.weight.normal_(0, 0.5)
    checkpoint = root / "HPS_v2.1_compressed.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    return config, checkpoint


@pytest.fixture
def hps_settings(tiny_settings, tiny_models: TinyModels, tiny_hps):
    config, checkpoint = tiny_hps
    return make_settings(
        tiny_models, scorer_options={"hpsv2": {"checkpoint": str(checkpoint), "architecture": str(config)}}
    )


def with_hps(settings, **options: object):
    """`settings` with HPSv2's own options changed (they live in `scorer_options`, not in Settings)."""
    merged = {**settings.scorer_options.get("hpsv2", {}), **options}
    return settings.model_copy(update={"scorer_options": {**settings.scorer_options, "hpsv2": merged}})


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("hps_images")
    files = make_images(folder / "a", 4)
    for w, h in [(39, 32), (32, 55), (76, 52)]:  # odd crop margins
        files += make_images(folder / f"{w}x{h}", 1, size=(w, h), seed=w + h)
    return files


def authors_score(config: Path, checkpoint: Path, images: list[Path], prompt: str) -> list[float]:
    """`hpsv2.score(img_path, prompt, cp)` transcribed: the model built from the architecture config, the
    checkpoint's state_dict loaded strictly, `image_transform(image_size, is_train=False)` (ToTensor, then
    Resize(bicubic) on the tensor, CenterCrop, normalise), `get_tokenizer`, `outputs = model(image, text)`,
    score = diagonal(image_features @ text_features.T), one image at a time."""
    import open_clip
    from PIL import Image
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    open_clip.add_model_config(config)
    model = open_clip.create_model(config.stem, pretrained=None, output_dict=True)
    model.load_state_dict(torch.load(checkpoint, map_location="cpu")["state_dict"])
    model.eval()
    size = TINY_VIT_H_14["vision_cfg"]["image_size"]
    preprocess_val = Compose(
        [
            lambda image: image if image.mode == "RGBA" else image.convert("RGB"),
            ToTensor(),
            Resize(size, interpolation=InterpolationMode.BICUBIC),
            CenterCrop(size),
            Normalize(mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD),
        ]
    )
    tokenizer = open_clip.get_tokenizer(config.stem)
    result = []
    for path in images:
        with torch.no_grad():
            image = preprocess_val(Image.open(path)).unsqueeze(0)
            text = tokenizer([prompt])
            outputs = model(image, text)
            image_features, text_features = outputs["image_features"], outputs["text_features"]
            logits_per_image = image_features @ text_features.T
            hps_score = torch.diagonal(logits_per_image).cpu().numpy()
        result.append(float(hps_score[0]))
    return result


@pytest.mark.parametrize("prompt", [PROMPT, "x", LONG_PROMPT])
def test_hpsv2_equals_the_authors_score(hps_settings, tiny_hps, images, prompt) -> None:
    config, checkpoint = tiny_hps
    scorer = registry.image_scorer("hpsv2", hps_settings)
    noted = scorer.score_with_notes(images, prompt)
    expected = authors_score(config, checkpoint, images, prompt)
    assert [v.raw for v in noted] == pytest.approx(expected, abs=1e-5)
    assert len({round(v, 6) for v in expected}) == len(expected), "distinct images give distinct scores"
    truncated = prompt == LONG_PROMPT
    assert all(bool(v.notes) == truncated for v in noted)
    if truncated:
        assert noted[0].notes[0].startswith("prompt truncated for CLIP: ") and "read 77" in noted[0].notes[0]


def test_hpsv2_batches_and_loads_once(hps_settings, tiny_models, images) -> None:
    from feedback_cli.scoring import loaders as models

    batched = registry.image_scorer("hpsv2", hps_settings).score(images, PROMPT)
    singles_settings = hps_settings.model_copy(update={"score_batch_size": 1})
    singles = [registry.image_scorer("hpsv2", singles_settings).score([p], PROMPT)[0] for p in images]
    assert batched == pytest.approx(singles, abs=1e-6)
    assert sum(n for key, n in models.load_counts().items() if key.startswith("hpsv2:")) == 1


def test_hpsv2_normalize(hps_settings) -> None:
    scorer = registry.image_scorer("hpsv2", hps_settings)
    assert scorer.normalize(0.20) == 0.0 and scorer.normalize(0.35) == 100.0
    assert scorer.normalize(0.275) == pytest.approx(50.0) and scorer.normalize(0.5) == 100.0


def test_hpsv2_wrong_or_missing_checkpoint_is_unavailable(hps_settings, tiny_models, images, tmp_path) -> None:
    missing = with_hps(hps_settings, checkpoint=str(tmp_path / "nope.pt"))
    with pytest.raises(ScorerUnavailable, match=r"FBLOOP_HPSV2_CHECKPOINT points at .*nope\.pt, which is not a file"):
        registry.image_scorer("hpsv2", missing).score(images[:1], PROMPT)
    assert "FBLOOP_HPSV2_CHECKPOINT" in preflight.check("hpsv2", missing).line()  # type: ignore[union-attr]
    wrong = with_hps(hps_settings, checkpoint=str(tiny_models.aesthetic_head))
    with pytest.raises(ScorerUnavailable, match=r"is not an HPSv2 .* state dict"):
        registry.image_scorer("hpsv2", wrong).score(images[:1], PROMPT)


def test_hpsv2_joins_the_default_set_only_when_its_weights_are_here(hps_settings, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert select.default_image_scorers(hps_settings)[-1] == "hpsv2"
    assert preflight.check("hpsv2", hps_settings) is None
    absent = with_hps(hps_settings, checkpoint=None).model_copy(update={"weights_dir": tmp_path / "empty"})
    assert "hpsv2" not in select.default_image_scorers(absent)
    assert select.default_image_scorers(absent) == list(registry.REAL_IMAGE_SET)
    reqs = checkpoints.requirements("hpsv2", absent)
    assert [r.kind for r in reqs] == ["python", "url"] and reqs[1].env_var == "FBLOOP_HPSV2_CHECKPOINT"
    assert not checkpoints.status(reqs[1], absent).available
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "HPS_v2.1_compressed.pt").write_bytes(b"downloaded")  # where `models download` puts it
    assert select.default_image_scorers(absent)[-1] == "hpsv2"


def test_hpsv2_cli(tiny_models, hps_settings, images, monkeypatch, tmp_path) -> None:
    """`fbloop score` picks hpsv2 by default when its checkpoint is set; `fbloop models list` shows it."""
    from typer.testing import CliRunner

    from tests.test_scoring_cli import make_app

    for key, value in tiny_models.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FBLOOP_HPSV2_CHECKPOINT", hps_settings.scorer_options["hpsv2"]["checkpoint"])
    monkeypatch.setenv("FBLOOP_HPSV2_ARCHITECTURE", hps_settings.scorer_options["hpsv2"]["architecture"])
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(make_app(), ["score", str(images[0]), "-p", PROMPT, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)["results"][0]["scores"]
    assert {"pickscore", "clip-score", "aesthetic", "hpsv2"} <= set(scores)
    assert scores["hpsv2"]["model_id"].endswith("HPS_v2.1_compressed.pt")
    listed = runner.invoke(make_app(), ["models", "list", "hpsv2", "--json"], catch_exceptions=False)
    rows = json.loads(listed.stdout)
    assert {r["what"] for r in rows} == {"open_clip_torch package", "HPS v2.1 (open_clip ViT-H-14 fine-tune)"}
    assert all(r["available"] for r in rows)


def test_models_download_without_names_leaves_the_optional_scorer_out() -> None:
    from feedback_cli.commands.models import _names

    assert "hpsv2" in _names(None) and "hpsv2" not in _names(None, optional=False)
    assert _names(["hpsv2"], optional=False) == ["hpsv2"]
