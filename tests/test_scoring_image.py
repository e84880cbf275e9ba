"""Image scorers on tiny random models through their real loading code (scorers.md §I.1-§I.4)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from feedback_cli.errors import ScorerUnavailable

pytest.register_assert_rewrite("tests.scoring_models")

from feedback_cli.scoring import models, registry, weights  # noqa: E402
from tests.scoring_models import TinyModels, make_images, make_settings  # noqa: E402

pytest_plugins = ["tests.scoring_models", "tests.fakes.fixtures"]

PROMPT = "a red cat on a blue sofa"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_images(tmp_path_factory.mktemp("images"), 8)


def _hand_features(
    ref: str, processor_ref: str, images: list[Path], text: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Projections computed by hand: visual_projection(vision_model(...).pooler_output), likewise for text."""
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(ref).eval()
    proc = CLIPProcessor.from_pretrained(processor_ref)
    pil = [Image.open(p).convert("RGB") for p in images]
    with torch.no_grad():
        pv = proc(images=pil, return_tensors="pt")["pixel_values"]
        img = model.visual_projection(model.vision_model(pixel_values=pv).pooler_output)
        tok = proc(text=[text], padding=True, truncation=True, max_length=77, return_tensors="pt")
        txt = model.text_projection(
            model.text_model(input_ids=tok["input_ids"], attention_mask=tok["attention_mask"]).pooler_output
        )
    return img, txt


def test_registry_names() -> None:
    for name in ("pickscore", "clip-score", "aesthetic", "vqascore"):
        assert name in registry.IMAGE_SCORERS


def test_clip_score_is_100_cosine_clamped(tiny_settings, tiny_models: TinyModels, images) -> None:
    scorer = registry.image_scorer("clip-score", tiny_settings)
    raw = scorer.score(images, PROMPT)
    img, txt = _hand_features(str(tiny_models.clip_l), str(tiny_models.clip_l), images, PROMPT)
    cos = torch.nn.functional.cosine_similarity(img, txt.expand_as(img), dim=-1)
    expected = torch.clamp(100 * cos, min=0).tolist()
    assert raw == pytest.approx(expected, abs=1e-4)
    assert any(v == 0.0 for v in raw) and any(v > 0.0 for v in raw), (
        "the tiny model should exercise the clamp"
    )
    assert scorer.model_id == str(tiny_models.clip_l)


def test_pickscore_is_logit_scale_times_cosine_unclamped(
    tiny_settings, tiny_models: TinyModels, images
) -> None:
    scorer = registry.image_scorer("pickscore", tiny_settings)
    raw = scorer.score(images, PROMPT)
    img, txt = _hand_features(
        str(tiny_models.pickscore_model), str(tiny_models.pickscore_processor), images, PROMPT
    )
    from transformers import CLIPModel

    scale = CLIPModel.from_pretrained(str(tiny_models.pickscore_model)).logit_scale.exp().item()
    assert scale == pytest.approx(100.0, rel=1e-3)  # the tiny checkpoint stores log(100), like CLIP-H
    cos = torch.nn.functional.cosine_similarity(img, txt.expand_as(img), dim=-1)
    assert raw == pytest.approx((scale * cos).tolist(), abs=1e-3)
    assert scorer.model_id == str(tiny_models.pickscore_model)


def test_aesthetic_is_mlp_on_normalised_embedding(tiny_settings, tiny_models: TinyModels, images) -> None:
    scorer = registry.image_scorer("aesthetic", tiny_settings)
    raw = scorer.score(images, PROMPT)
    img, _ = _hand_features(str(tiny_models.clip_l), str(tiny_models.clip_l), images, PROMPT)
    x = img / img.norm(dim=-1, keepdim=True)
    state = torch.load(tiny_models.aesthetic_head, weights_only=True)
    for key in (0, 2, 4, 6, 7):  # Linear layers only: the ReLUs are commented out, Dropout is off in eval
        x = x @ state[f"layers.{key}.weight"].T + state[f"layers.{key}.bias"]
    assert raw == pytest.approx(x[:, 0].tolist(), abs=1e-4)


def test_clip_score_and_aesthetic_share_one_vit_load(tiny_settings, tiny_models: TinyModels, images) -> None:
    registry.image_scorer("clip-score", tiny_settings).score(images, PROMPT)
    registry.image_scorer("aesthetic", tiny_settings).score(images, PROMPT)
    registry.image_scorer("clip-score", tiny_settings).score(images[:2], "another prompt")
    assert models.load_count(str(tiny_models.clip_l)) == 1
    registry.image_scorer("pickscore", tiny_settings).score(images, PROMPT)
    assert models.load_count(str(tiny_models.pickscore_model)) == 1
    assert models.load_count() == 3  # clip-l, pickscore, the aesthetic head


@pytest.mark.parametrize("name", ["pickscore", "clip-score", "aesthetic"])
def test_batch_of_8_equals_8_singles(tiny_models: TinyModels, tiny_settings, images, name: str) -> None:
    batched = registry.image_scorer(name, make_settings(tiny_models, score_batch_size=8)).score(
        images, PROMPT
    )
    models.clear_features()
    single_settings = make_settings(tiny_models, score_batch_size=1)
    singles = [registry.image_scorer(name, single_settings).score([p], PROMPT)[0] for p in images]
    assert batched == pytest.approx(singles, rel=1e-5, abs=1e-5)


def test_normalize_mappings(tiny_settings) -> None:
    pick = registry.image_scorer("pickscore", tiny_settings)
    assert pick.normalize(17.0) == 0.0 and pick.normalize(24.0) == 100.0
    assert pick.normalize(20.5) == pytest.approx(50.0)
    assert pick.normalize(30.0) == 100.0 and pick.normalize(5.0) == 0.0
    clip = registry.image_scorer("clip-score", tiny_settings)
    assert clip.normalize(15.0) == 0.0 and clip.normalize(40.0) == 100.0
    assert clip.normalize(27.5) == pytest.approx(50.0)
    aes = registry.image_scorer("aesthetic", tiny_settings)
    assert (
        aes.normalize(1.0) == 0.0
        and aes.normalize(10.0) == 100.0
        and aes.normalize(5.5) == pytest.approx(50.0)
    )
    tuned = registry.image_scorer(
        "aesthetic", tiny_settings.model_copy(update={"score_anchors": {"aesthetic": (4, 7)}})
    )
    assert tuned.normalize(5.5) == pytest.approx(50.0) and tuned.normalize(7.5) == 100.0


def test_missing_local_checkpoint_is_unavailable(
    tiny_models: TinyModels, tiny_settings, images, tmp_path
) -> None:
    settings = make_settings(tiny_models, clip_model=str(tmp_path / "nope"))
    with pytest.raises(ScorerUnavailable) as err:
        registry.image_scorer("clip-score", settings).score(images[:1], PROMPT)
    assert "fbloop models download clip-score" in err.value.line()


def test_aesthetic_head_download_is_sha_checked(
    tiny_models: TinyModels, tiny_settings, monkeypatch, tmp_path
) -> None:
    """The default head path: a file with the wrong digest is refused; offline + missing names the fix."""
    settings = make_settings(tiny_models, aesthetic_head=None, weights_dir=str(tmp_path / "w"))
    scorer = registry.image_scorer("aesthetic", settings)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ScorerUnavailable) as err:
        scorer.head_path()
    assert "fbloop models download aesthetic" in err.value.line()
    bogus = tmp_path / "bogus.pth"
    bogus.write_bytes(b"not the LAION head")
    with pytest.raises(ScorerUnavailable, match="sha256"):
        weights.verify(weights.AESTHETIC_MLP, bogus)


# --------------------------------------------------------------------------- VQAScore


def test_vqascore_yes_probability_parsing() -> None:
    from feedback_cli.scoring.vqascore import is_reasoning_model, yes_probability

    pairs = [("Yes", math.log(0.5)), (" yes", math.log(0.1)), ("No", math.log(0.2)), ("NO", math.log(0.1))]
    assert yes_probability(pairs) == pytest.approx(0.6 / 0.9)
    assert yes_probability([("Maybe", -0.1)]) is None
    for model in ("o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "openai/o3"):
        assert is_reasoning_model(model), model
    for model in ("gpt-4o", "gpt-4.1-mini", "omni-vision", "qwen2.5-vl"):
        assert not is_reasoning_model(model), model


def _vqa_settings(tiny_models: TinyModels, server, **kw):
    env = server.env()
    return make_settings(
        tiny_models,
        openai_base_url=server.openai_base_url,
        openai_api_key=env["OPENAI_API_KEY"],
        llm_retries=0,
        **kw,
    )


@pytest.mark.parametrize("p_yes", [0.1, 0.5, 0.83])
def test_vqascore_against_fake_openai(
    tiny_models: TinyModels, tiny_settings, fake_server, images, p_yes
) -> None:
    fake_server.yes_probability = p_yes
    scorer = registry.image_scorer("vqascore", _vqa_settings(tiny_models, fake_server, vqa_model="gpt-4.1"))
    raw = scorer.score(images[:3], PROMPT)
    assert raw == pytest.approx([p_yes] * 3, abs=1e-6)
    assert scorer.normalize(raw[0]) == pytest.approx(100 * p_yes)
    assert scorer.model_id == "openai:gpt-4.1"
    reqs = fake_server.requests_for("chat")
    assert len(reqs) == 3
    body = reqs[0].body
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["max_tokens"] == 1
    parts = body["messages"][0]["content"]
    assert parts[0]["text"] == f'Does this figure show "{PROMPT}"? Please answer yes or no.'
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_vqascore_refuses_reasoning_models_before_any_call(
    tiny_models: TinyModels, tiny_settings, fake_server
) -> None:
    with pytest.raises(ScorerUnavailable, match="reasoning model"):
        registry.image_scorer("vqascore", _vqa_settings(tiny_models, fake_server, vqa_model="o3-mini"))
    assert fake_server.requests_for("chat") == []


def test_vqascore_without_key_is_unavailable(tiny_settings) -> None:
    settings = tiny_settings.model_copy(update={"openai_api_key": None, "openai_base_url": None})
    with pytest.raises(ScorerUnavailable, match="OPENAI_API_KEY"):
        registry.image_scorer("vqascore", settings)


def test_vqascore_t2v_metrics_missing(tiny_settings) -> None:
    import importlib.util

    if importlib.util.find_spec("t2v_metrics") is not None:
        pytest.skip("t2v_metrics is installed")
    with pytest.raises(ScorerUnavailable, match="t2v_metrics"):
        registry.image_scorer("vqascore", tiny_settings.model_copy(update={"vqa_backend": "t2v_metrics"}))


# --------------------------------------------------------------------------- real weights


def _cached(repo: str) -> bool:
    from feedback_cli.scoring.checkpoints import Requirement, status

    return status(Requirement("x", "hf-model", repo, "", repo), None).available  # type: ignore[arg-type]


@pytest.mark.weights
@pytest.mark.skipif(
    not (_cached("openai/clip-vit-large-patch14") and _cached("yuvalkirstain/PickScore_v1")),
    reason="real CLIP-L / PickScore weights are not in the HF cache",
)
def test_real_weights_ranges(tmp_path) -> None:
    from feedback_cli.config import Settings

    models.clear()
    settings = Settings(_env_file=None, device="auto")  # type: ignore[call-arg]
    imgs = make_images(tmp_path, 2, size=(256, 256))
    pick = registry.image_scorer("pickscore", settings).score(imgs, "colourful abstract gradient")
    clip = registry.image_scorer("clip-score", settings).score(imgs, "colourful abstract gradient")
    assert all(5 < v < 35 for v in pick)
    assert all(0 <= v < 50 for v in clip)
