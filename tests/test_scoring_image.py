"""Image scorers on tiny random models through their real loading code (scorers.md §I.1-§I.4)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from feedback_cli.errors import ScorerUnavailable

pytest.register_assert_rewrite("tests.scoring_models")

from feedback_cli.scoring import loaders as models  # noqa: E402
from feedback_cli.scoring import registry, weights  # noqa: E402
from tests.scoring_models import TinyModels, make_images, make_settings  # noqa: E402

pytest_plugins = ["tests.scoring_models", "tests.fakes.fixtures"]

PROMPT = "a red cat on a blue sofa"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_images(tmp_path_factory.mktemp("images"), 8)


# --------------------------------------------------------------------------- reference formulas
# Written from the references' own code, not from fbloop's: transformers 4's (PIL) CLIPImageProcessor, which
# PickScore's README code and torchmetrics run; OpenAI clip's `_transform`, which the LAION predictor runs.

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def _pil_processor_pixels(path: Path, shortest: int, crop: int) -> torch.Tensor:
    """transformers 4.x CLIPImageProcessor: PIL bicubic resize of the shortest edge (long side int()),
    centre crop with floored offsets, x/255, (x - mean) / std, CHW."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(shortest * long / short)
    size = (shortest, new_long) if w <= h else (new_long, shortest)
    arr = np.asarray(img.resize(size, resample=Image.Resampling.BICUBIC, reducing_gap=None))
    top, left = (arr.shape[0] - crop) // 2, (arr.shape[1] - crop) // 2
    arr = arr[top : top + crop, left : left + crop].astype(np.float64) * (1 / 255)
    arr = (arr.astype(np.float32) - CLIP_MEAN) / CLIP_STD
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _openai_clip_pixels(path: Path, n_px: int) -> torch.Tensor:
    """OpenAI clip's `_transform(n_px)` (clip/clip.py), the preprocess of `clip.load`."""
    from PIL import Image
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    transform = Compose(
        [
            Resize(n_px, interpolation=InterpolationMode.BICUBIC),
            CenterCrop(n_px),
            lambda image: image.convert("RGB"),
            ToTensor(),
            Normalize(tuple(CLIP_MEAN.tolist()), tuple(CLIP_STD.tolist())),
        ]
    )
    return transform(Image.open(path))


def _projections(model, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor):
    """transformers 4's get_image_features / get_text_features: the projected pooled outputs."""
    with torch.no_grad():
        img = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)
        txt = model.text_projection(model.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output)
    return img, txt


def pickscore_reference(model_ref: str, processor_ref: str, images: list[Path], prompt: str) -> list[float]:
    """PickScore's README: logit_scale.exp() * (text_embs @ image_embs.T)[0], both L2-normalised; text padded
    and truncated to 77 by the processor (`truncation=True, max_length=77`)."""
    from transformers import CLIPModel, CLIPTokenizer

    model = CLIPModel.from_pretrained(model_ref).eval()
    tok = CLIPTokenizer.from_pretrained(processor_ref)(
        [prompt], padding=True, truncation=True, max_length=77, return_tensors="pt"
    )
    pixels = torch.stack([_pil_processor_pixels(p, 32, 32) for p in images])
    img, txt = _projections(model, pixels, tok["input_ids"], tok["attention_mask"])
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    return (model.logit_scale.exp() * (txt @ img.T)[0]).tolist()


def aesthetic_reference(clip_ref: str, head: Path, images: list[Path]) -> list[float]:
    """improved-aesthetic-predictor simple_inference.py: MLP(normalized(encode_image(preprocess(img))))."""
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(clip_ref).eval()
    pixels = torch.stack([_openai_clip_pixels(p, 32) for p in images])
    with torch.no_grad():
        emb = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output).numpy()
    l2 = np.atleast_1d(np.linalg.norm(emb, 2, -1))
    l2[l2 == 0] = 1
    x = torch.from_numpy(emb / np.expand_dims(l2, -1)).float()
    state = torch.load(head, weights_only=True)
    for key in (0, 2, 4, 6, 7):  # Linear layers only: the ReLUs are commented out, Dropout is off in eval
        x = x @ state[f"layers.{key}.weight"].T + state[f"layers.{key}.bias"]
    return x[:, 0].tolist()


class _Transformers4Clip(torch.nn.Module):
    """A CLIPModel with transformers 4's get_*_features (tensors), the API torchmetrics 1.9 calls."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def get_image_features(self, pixel_values):
        return self.model.visual_projection(self.model.vision_model(pixel_values=pixel_values).pooler_output)

    def get_text_features(self, input_ids, attention_mask=None):
        out = self.model.text_model(input_ids=input_ids, attention_mask=attention_mask)
        return self.model.text_projection(out.pooler_output)


def torchmetrics_clip_score(model_ref: str, images: list[Path], prompt: str) -> list[float]:
    """torchmetrics' own `clip_score` per image, with the model and the (PIL) processor it got under
    transformers 4; images as uint8 CHW tensors, as torchmetrics documents."""
    from PIL import Image
    from torchmetrics.functional.multimodal import clip_score
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPProcessor, CLIPTokenizer

    model = _Transformers4Clip(CLIPModel.from_pretrained(model_ref).eval())
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessorPil.from_pretrained(model_ref),
        tokenizer=CLIPTokenizer.from_pretrained(model_ref),
    )
    out = []
    for path in images:
        chw = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1).contiguous()
        with torch.no_grad():
            out.append(float(clip_score(chw, prompt, model_name_or_path=lambda: (model, processor))))
    return out


def test_registry_names() -> None:
    for name in ("pickscore", "clip-score", "aesthetic", "vqascore"):
        assert name in registry.IMAGE_SCORERS


#: odd sizes: after the resize to 32 px their crop margins are 7, 23, 14, 11 and 6 px. For 7, 23 and 11 transformers
#: floors the offset while torchvision rounds it (3 vs 4, 11 vs 12, 5 vs 6), so the aesthetic path is exercised.
ODD_SIZES = [(39, 32), (32, 55), (76, 52), (43, 32), (48, 40)]
LONG_PROMPT = (
    "a red cat on a blue sofa in a sunlit living room, with a green plant by the window, a wooden floor, "
    "a striped rug and a bookshelf full of old books behind it"
)


@pytest.fixture(scope="module")
def odd_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("odd_images")
    return [make_images(folder / f"{w}x{h}", 1, size=(w, h), seed=w * h)[0] for w, h in ODD_SIZES]


@pytest.mark.parametrize("prompt", [PROMPT, "x", "  a photo of an astronaut riding a horse  "])
def test_clip_score_equals_torchmetrics(tiny_settings, tiny_models: TinyModels, images, odd_images, prompt) -> None:
    """torchmetrics' own clip_score on the same tiny weights and files, within 1e-4."""
    scorer = registry.image_scorer("clip-score", tiny_settings)
    files = images + odd_images
    raw = scorer.score(files, prompt)
    expected = torchmetrics_clip_score(str(tiny_models.clip_l), files, prompt)
    assert raw == pytest.approx(expected, abs=1e-4)
    if prompt == PROMPT:
        assert any(v == 0.0 for v in raw) and any(v > 0.0 for v in raw), "the tiny model exercises the clamp"
    assert scorer.model_id == str(tiny_models.clip_l)
    assert all(not v.notes for v in scorer.score_with_notes(files, prompt))


def test_clip_score_long_prompt_keeps_end_of_text_and_notes_it(tiny_settings, tiny_models: TinyModels, images) -> None:
    """Over 77 tokens fbloop keeps the end-of-text token (the CLIP tokenizer's truncation) where torchmetrics
    slices it off: the value is the keep-EOT formula's, not torchmetrics', and the truncation is noted."""
    from transformers import CLIPModel, CLIPTokenizer

    scorer = registry.image_scorer("clip-score", tiny_settings)
    noted = scorer.score_with_notes(images, LONG_PROMPT)
    model = CLIPModel.from_pretrained(str(tiny_models.clip_l)).eval()
    tokenizer = CLIPTokenizer.from_pretrained(str(tiny_models.clip_l))
    tok = tokenizer([LONG_PROMPT], truncation=True, max_length=77, return_tensors="pt")
    assert tok["input_ids"].shape[1] == 77 and int(tok["input_ids"][0, -1]) == tokenizer.eos_token_id
    pixels = torch.stack([_pil_processor_pixels(p, 32, 32) for p in images])
    img, txt = _projections(model, pixels, tok["input_ids"], tok["attention_mask"])
    keep_eot = torch.clamp(100 * torch.nn.functional.cosine_similarity(img, txt.expand_as(img), dim=-1), min=0)
    assert [v.raw for v in noted] == pytest.approx(keep_eot.tolist(), abs=1e-4)
    cut_eot = torchmetrics_clip_score(str(tiny_models.clip_l), images, LONG_PROMPT)
    assert max(abs(a.raw - b) for a, b in zip(noted, cut_eot, strict=True)) > 1e-2, "the deviation is real"
    n_tokens = len(tokenizer(LONG_PROMPT)["input_ids"])
    assert n_tokens > 77
    for v in noted:
        assert v.notes == (
            f"prompt truncated for CLIP: {n_tokens} tokens with the start/end markers, the text encoder read 77 "
            "(the first 75 prompt tokens and the end-of-text token)",
        )


@pytest.mark.parametrize("prompt", [PROMPT, LONG_PROMPT])
def test_pickscore_equals_its_reference(tiny_settings, tiny_models: TinyModels, images, odd_images, prompt) -> None:
    scorer = registry.image_scorer("pickscore", tiny_settings)
    files = images + odd_images
    noted = scorer.score_with_notes(files, prompt)
    expected = pickscore_reference(
        str(tiny_models.pickscore_model), str(tiny_models.pickscore_processor), files, prompt
    )
    assert [v.raw for v in noted] == pytest.approx(expected, abs=1e-4)
    from transformers import CLIPModel

    scale = CLIPModel.from_pretrained(str(tiny_models.pickscore_model)).logit_scale.exp().item()
    assert scale == pytest.approx(100.0, rel=1e-3)  # the tiny checkpoint stores log(100), like CLIP-H
    assert scorer.model_id == str(tiny_models.pickscore_model)
    assert all(bool(v.notes) == (prompt == LONG_PROMPT) for v in noted)


def test_aesthetic_equals_its_reference(tiny_settings, tiny_models: TinyModels, images, odd_images) -> None:
    scorer = registry.image_scorer("aesthetic", tiny_settings)
    files = images + odd_images
    raw = scorer.score(files, PROMPT)
    expected = aesthetic_reference(str(tiny_models.clip_l), tiny_models.aesthetic_head, files)
    assert raw == pytest.approx(expected, abs=1e-4)
    assert all(not v.notes for v in scorer.score_with_notes(files, LONG_PROMPT)), "no text, nothing truncated"


def test_pil_path_is_the_reference_preprocessing(tiny_models: TinyModels, images, odd_images) -> None:
    """fbloop's image processor is the PIL one (the references' pixels to 1e-6); transformers 5's default
    torchvision backend is not (it is what the scorers used before)."""
    from transformers import CLIPProcessor

    processor = models.clip_image_processor(str(tiny_models.clip_l), "test")
    default = CLIPProcessor.from_pretrained(str(tiny_models.clip_l)).image_processor
    worst_default = 0.0
    for path in images + odd_images:
        pil = Image.open(path).convert("RGB")
        ours = processor(images=[pil], return_tensors="pt")["pixel_values"][0]
        assert torch.allclose(ours, _pil_processor_pixels(path, 32, 32), atol=1e-6)
        theirs = default(images=[pil], return_tensors="pt")["pixel_values"][0]
        worst_default = max(worst_default, float((theirs - ours).abs().max()))
    assert worst_default > 1e-3, "the torchvision backend resizes differently"


def test_clip_score_and_aesthetic_share_the_forward_pass_where_crops_agree(
    tiny_settings, tiny_models: TinyModels, odd_images
) -> None:
    registry.image_scorer("clip-score", tiny_settings).score(odd_images, PROMPT)
    registry.image_scorer("aesthetic", tiny_settings).score(odd_images, PROMPT)
    image_keys = [k for k in models._features if k[0] == "img"]
    differing = 3  # 39x32, 32x55 and 43x32 crop one pixel apart under the two rules
    assert len(image_keys) == len(odd_images) + differing


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
    batched = registry.image_scorer(name, make_settings(tiny_models, score_batch_size=8)).score(images, PROMPT)
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
    assert aes.normalize(1.0) == 0.0 and aes.normalize(10.0) == 100.0 and aes.normalize(5.5) == pytest.approx(50.0)
    tuned = registry.image_scorer(
        "aesthetic", tiny_settings.model_copy(update={"score_anchors": {"aesthetic": (4, 7)}})
    )
    assert tuned.normalize(5.5) == pytest.approx(50.0) and tuned.normalize(7.5) == 100.0


def test_missing_local_checkpoint_is_unavailable(tiny_models: TinyModels, tiny_settings, images, tmp_path) -> None:
    settings = make_settings(tiny_models, clip_model=str(tmp_path / "nope"))
    with pytest.raises(ScorerUnavailable) as err:
        registry.image_scorer("clip-score", settings).score(images[:1], PROMPT)
    assert "fbloop models download clip-score" in err.value.line()


def test_aesthetic_head_download_is_sha_checked(tiny_models: TinyModels, tiny_settings, monkeypatch, tmp_path) -> None:
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


def t2v_metrics_p_yes(top_logprobs: list[tuple[str, float]]) -> float:
    """t2v_metrics v3.1, models/vqascore_models/gpt4v_model.py `forward_single`, transcribed line by line."""
    target, opposite = "yes", "no"
    target_logprob = opposite_logprob = None
    for token, logprob in top_logprobs:
        token = token.strip().lower()
        if token == target:
            target_logprob = logprob
        elif token == opposite:
            opposite_logprob = logprob
    if target_logprob is not None:
        return math.exp(target_logprob)
    if opposite_logprob is not None:
        return 1 - math.exp(opposite_logprob)
    return 0.0


#: first-token distributions, most likely first, each word in one spelling (where t2v_metrics and fbloop agree)
VQA_CASES = {
    "yes and no": [("Yes", 0.7), ("No", 0.2), ("Maybe", 0.05)],
    "yes unlikely, no absent": [("The", 0.9), ("Yes", 0.05), ("I", 0.02)],  # was 1.0 (renormalised)
    "no only": [("No", 0.6), ("The", 0.3), ("I", 0.05)],
    "neither": [("The", 0.6), ("I", 0.3), ("Sure", 0.05)],
    "lower-case, spaced": [(" yes", 0.4), (" no", 0.35), ("Maybe", 0.1)],
}


@pytest.mark.parametrize("case", sorted(VQA_CASES))
def test_vqascore_formula_is_t2v_metrics(case: str) -> None:
    from feedback_cli.scoring.vqascore import yes_probability

    pairs = [(tok, math.log(p)) for tok, p in VQA_CASES[case]]
    value = yes_probability(pairs)
    assert value.raw == pytest.approx(t2v_metrics_p_yes(pairs), abs=1e-12)
    has_yes = any(t.strip().lower() == "yes" for t, _ in pairs)
    assert bool(value.notes) == (not has_yes)


def test_vqascore_variants_are_summed_and_reasoning_models_known() -> None:
    from feedback_cli.scoring.vqascore import is_reasoning_model, yes_probability

    pairs = [("Yes", math.log(0.5)), (" yes", math.log(0.1)), ("No", math.log(0.2)), ("NO", math.log(0.1))]
    assert yes_probability(pairs).raw == pytest.approx(0.6)  # not 0.6 / 0.9: never renormalised
    assert yes_probability([("no", math.log(0.3)), (" No", math.log(0.2))]).raw == pytest.approx(0.5)
    neither = yes_probability([("Maybe", -0.1)])
    assert neither.raw == 0.0 and "neither 'yes' nor 'no'" in neither.notes[0]
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
def test_vqascore_against_fake_openai(tiny_models: TinyModels, tiny_settings, fake_server, images, p_yes) -> None:
    """The fake model spreads 98 % of its mass over Yes/yes/ Yes and No/no/ No: P(yes) is 0.98 p_yes."""
    fake_server.yes_probability = p_yes
    scorer = registry.image_scorer("vqascore", _vqa_settings(tiny_models, fake_server, vqa_model="gpt-4.1"))
    raw = scorer.score(images[:3], PROMPT)
    assert raw == pytest.approx([0.98 * p_yes] * 3, abs=1e-6)
    assert scorer.normalize(raw[0]) == pytest.approx(100 * 0.98 * p_yes)
    assert scorer.model_id == "openai:gpt-4.1"
    reqs = fake_server.requests_for("chat")
    assert len(reqs) == 3
    body = reqs[0].body
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["max_tokens"] == 1
    parts = body["messages"][0]["content"]
    assert parts[0]["text"] == f'Does this figure show "{PROMPT}"? Please answer yes or no.'
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize("case", sorted(VQA_CASES))
@pytest.mark.parametrize("top", [2, 20])
def test_vqascore_over_the_api_is_t2v_metrics(
    tiny_models: TinyModels, tiny_settings, fake_server, images, case: str, top: int
) -> None:
    """The scripted first-token logprobs, through the real openai client: t2v_metrics' value on the top-k the API
    returned; a missing "yes" is 0 or 1 - P(no) with a note, never 1.0 by renormalising."""
    from tests.fakes.script import ChatReply

    distribution = tuple(VQA_CASES[case])
    fake_server.chat_handler = lambda body: ChatReply(first_token=distribution)
    settings = _vqa_settings(tiny_models, fake_server, vqa_model="gpt-4.1", vqa_top_logprobs=top)
    scorer = registry.image_scorer("vqascore", settings)
    [noted] = scorer.score_with_notes(images[:1], PROMPT)
    shown = [(tok, math.log(p)) for tok, p in distribution[:top]]
    assert noted.raw == pytest.approx(t2v_metrics_p_yes(shown), abs=1e-6)
    assert bool(noted.notes) == (not any(t.strip().lower() == "yes" for t, _ in shown))
    if case == "yes unlikely, no absent":
        assert noted.raw == pytest.approx(0.05, abs=1e-6)  # "Yes" is 2nd: shown for k = 2 and 20


def test_vqascore_refuses_reasoning_models_before_any_call(tiny_models: TinyModels, tiny_settings, fake_server) -> None:
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
    from feedback_cli.scoring.requirements import Requirement, status

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
