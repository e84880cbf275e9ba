"""VBench's video-quality dimensions, computed natively with VBench's formulas (docs/scorers.md §V).

One VideoScorer class per dimension, registered under VBench's own names:

| name | model (setting) | docs/scorers.md |
|---|---|---|
| subject_consistency | DINO ViT-B/16 (`dino_model`, transformers ViTModel from facebook/dino-vitb16) | §V.2 |
| background_consistency | CLIP ViT-B/32 (`vbench_clip_b32_model`, transformers CLIPModel) | §V.3 |
| temporal_flickering | none | §V.4 |
| motion_smoothness | AMT-S: official backend only | §V.5 |
| dynamic_degree | torchvision RAFT-large C_T_V1 (`raft_weights`) | §V.6, §V.6a |
| aesthetic_quality | CLIP ViT-L/14 (`clip_model`, shared) + LAION V1 linear head (`vbench_aesthetic_head`) | §V.7 |
| imaging_quality | pyiqa MUSIQ-SPAQ (`musiq_weights`) | §V.8 |

Raw value per video = the VBench dimension score that video gets when evaluated alone (VBench's per-video
`video_results`; for imaging_quality that value /100, as VBench divides its aggregate by 100). Aggregating
several videos is the caller's business: VBench's own aggregate of subject/background consistency is
frame-weighted over all pairs (§V.2), the others are plain means over videos.

0-100: VBench's min-max normalisation, 100 x (raw - Min) / (Max - Min) with the §V.11 table, clamped to 0..100
(VBench itself does not clamp; values outside [Min, Max] are rare). `default_weights` are VBench's DIM_WEIGHT
(§V.11): 1 for every dimension, 0.5 for dynamic_degree.

dynamic_degree also reports `dynamic_degree_graded`: the fraction of sampled frame pairs whose flow score is above
VBench's threshold (the graded 0-1 signal §V.6 suggests keeping next to the boolean); its default weight is 0.

Notes on following VBench to the letter:
- Frames: every frame, decoded with PyAV (`video_io.py`, §V.1).
- `clip_transform(n)` / `dino_transform(n)` are VBench's (§V.1): torchvision Resize on the short side with
  antialias=False (bicubic for CLIP, bilinear for DINO), CenterCrop for CLIP only, /255, then CLIP or ImageNet
  mean/std. n is the checkpoint's `image_size`, 224 for every real checkpoint named above, exactly VBench's n.
- DINO: VBench loads `dino_vitb16` through torch.hub and uses its CLS output; here the same weights come from
  transformers' `ViTModel` (facebook/dino-vitb16) and the CLS token of `last_hidden_state` (after the final
  LayerNorm), which is the hub model's output. Frames keep their aspect ratio, so position embeddings are
  interpolated (`interpolate_pos_encoding=True`); transformers and the DINO repo interpolate with slightly
  different scale arithmetic, so non-square clips can differ in the last digits.
- Frames are batched (`score_batch_size`); VBench feeds DINO one frame at a time and CLIP-B/32 a whole clip at
  once. Results agree up to float rounding.
- RAFT (§V.6a): `raft_large` with the C_T_V1 weights, inputs 2*(x/255)-1 (RAFT's own normalisation), replicate
  padding split evenly to multiples of 8 (InputPadder 'sintel'), 20 flow updates, last prediction. The top-5 %
  mean is taken over the padded flow field, as VBench does; the threshold uses the unpadded first frame.
"""

from __future__ import annotations

import dataclasses
import math
from abc import abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from feedback_cli.errors import ScorerUnavailable
from feedback_cli.scoring import weights
from feedback_cli.scoring.base import TORCH_STACK, DefaultSet, VideoScorer
from feedback_cli.scoring.lazy import lazy
from feedback_cli.scoring.requirements import Requirement, hf, url
from feedback_cli.scoring.video_io import Video, read_video

# imported on first use, so that the classes' declarations are readable without torch
torch = lazy("torch")
F = lazy("torch.nn.functional")
transforms = lazy("torchvision.transforms")
InterpolationMode = lazy("torchvision.transforms", "InterpolationMode")
models = lazy("feedback_cli.scoring.loaders")

if TYPE_CHECKING:
    from feedback_cli.config import Settings

#: §V.11: dimension -> (Min, Max, DIM_WEIGHT)
NORMALIZATION: dict[str, tuple[float, float, float]] = {
    "subject_consistency": (0.1462, 1.0, 1.0),
    "background_consistency": (0.2615, 1.0, 1.0),
    "temporal_flickering": (0.6293, 1.0, 1.0),
    "motion_smoothness": (0.706, 0.9975, 1.0),
    "dynamic_degree": (0.0, 1.0, 0.5),
    "aesthetic_quality": (0.0, 1.0, 1.0),
    "imaging_quality": (0.0, 1.0, 1.0),
}
GRADED = "dynamic_degree_graded"

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vbench_normalize(dimension: str, raw: float) -> float:
    """100 x (raw - Min) / (Max - Min), clamped to 0..100 (§V.11)."""
    if math.isnan(raw):
        return raw
    if dimension == GRADED:
        return 100.0 * min(1.0, max(0.0, raw))
    low, high, _ = NORMALIZATION[dimension]
    return 100.0 * min(1.0, max(0.0, (raw - low) / (high - low)))


# --------------------------------------------------------------------------- transforms (§V.1)


def _div255(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(255.0)


def clip_transform(n: int) -> transforms.Compose:
    """VBench `clip_transform(n)`: bicubic short-side resize (no antialias), centre crop, /255, CLIP mean/std."""
    return transforms.Compose(
        [
            transforms.Resize(n, interpolation=InterpolationMode.BICUBIC, antialias=False),
            transforms.CenterCrop(n),
            transforms.Lambda(_div255),
            transforms.Normalize(CLIP_MEAN, CLIP_STD),
        ]
    )


def dino_transform(n: int) -> transforms.Compose:
    """VBench `dino_transform(n)`: short-side resize (bilinear, no antialias), no crop, /255, ImageNet mean/std."""
    return transforms.Compose(
        [
            transforms.Resize(size=n, antialias=False),
            transforms.Lambda(_div255),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def frames_tensor(video: Video) -> torch.Tensor:
    """(T, C, H, W) uint8, as VBench's `load_video` returns."""
    return torch.from_numpy(np.ascontiguousarray(video.frames)).permute(0, 3, 1, 2)


# --------------------------------------------------------------------------- formulas


def consistency(features: torch.Tensor) -> float:
    """Mean over i>=1 of (max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2 (§V.2, §V.3)."""
    if features.shape[0] < 2:
        raise ValueError("consistency needs at least two frames")
    f = F.normalize(features.double(), dim=-1, p=2)
    prev = (f[1:] * f[:-1]).sum(-1).clamp(min=0.0)
    first = (f[1:] * f[0:1]).sum(-1).clamp(min=0.0)
    return float(((prev + first) / 2).sum() / (f.shape[0] - 1))


def flicker_score(frames: np.ndarray) -> float:
    """(255 - mean_i MAE(frame_i, frame_{i+1})) / 255 over float32 frames (§V.4)."""
    if frames.shape[0] < 2:
        raise ValueError("temporal flickering needs at least two frames")
    maes = [
        float(np.mean(np.abs(frames[i].astype(np.float32) - frames[i + 1].astype(np.float32))))
        for i in range(frames.shape[0] - 1)
    ]
    return (255.0 - float(np.mean(np.array(maes, dtype=np.float32)))) / 255.0


def sample_interval(fps: float) -> int:
    """Every `max(1, round(fps / 8))`-th frame, about 8 fps (§V.6); Python's round (banker's)."""
    return max(1, round(fps / 8))


def pad_to_8(x: torch.Tensor) -> torch.Tensor:
    """RAFT's InputPadder, 'sintel' mode: replicate-pad H and W to multiples of 8, split evenly (§V.6a)."""
    ht, wd = x.shape[-2:]
    pad_ht = (((ht // 8) + 1) * 8 - ht) % 8
    pad_wd = (((wd // 8) + 1) * 8 - wd) % 8
    pad = [pad_wd // 2, pad_wd - pad_wd // 2, pad_ht // 2, pad_ht - pad_ht // 2]
    return F.pad(x, pad, mode="replicate")


def flow_score(flow: torch.Tensor) -> float:
    """Mean of the top 5 % flow magnitudes of one (2, H, W) flow field (§V.6 `get_score`)."""
    u, v = flow[0].double(), flow[1].double()
    rad = torch.sqrt(u * u + v * v).flatten()
    cut = int(rad.numel() * 0.05)
    if cut == 0:
        return float("nan")  # VBench: np.mean of an empty slice
    return float(torch.topk(rad, cut).values.mean())


def dynamic_decision(scores: Sequence[float], height: int, width: int, n_sampled: int) -> tuple[bool, float]:
    """VBench's `check_move` (§V.6) and the graded fraction of pairs above the threshold.

    thres = 6 x min(H, W) / 256 on the unpadded first frame; count_num = round(4 x N / 16) with N the number of
    sampled frames; dynamic as soon as count_num pair scores exceed thres (so count_num = 0 is True on the
    first pair).
    """
    thres = 6.0 * (min(height, width) / 256.0)
    count_num = round(4 * (n_sampled / 16.0))
    moving = False
    count = 0
    for s in scores:
        if s > thres:
            count += 1
        if count >= count_num:
            moving = True
            break
    above = sum(1 for s in scores if s > thres)
    return moving, (above / len(scores) if scores else 0.0)


def imaging_transform(frames: torch.Tensor, mode: str) -> torch.Tensor:
    """VBench imaging_quality `transform` (§V.8): resize so the longer (or shorter) side is 512 when larger
    (bilinear, antialias=False), optional centre crop, /255."""
    _, _, h, w = frames.shape
    if mode.startswith("shorter"):
        if min(h, w) > 512:
            scale = 512.0 / min(h, w)
            frames = transforms.Resize(size=(int(scale * h), int(scale * w)), antialias=False)(frames)
            if mode == "shorter_centercrop":
                frames = transforms.CenterCrop(512)(frames)
    elif mode == "longer":
        if max(h, w) > 512:
            scale = 512.0 / max(h, w)
            frames = transforms.Resize(size=(int(scale * h), int(scale * w)), antialias=False)(frames)
    elif mode != "None":
        raise ValueError(f"unknown imaging_quality preprocessing mode {mode!r}")
    return frames / 255.0


# --------------------------------------------------------------------------- scorers


class VBenchDimension(VideoScorer):
    """One VBench dimension; delegates to the official CLI when `vbench_backend=official`."""

    name: ClassVar[str]
    dimensions: ClassVar[tuple[str, ...]]
    default_weights: ClassVar[dict[str, float]]
    default_set: ClassVar[DefaultSet] = "standard"
    needs_modules: ClassVar[tuple[str, ...]] = TORCH_STACK

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def requirements(cls, settings: Settings) -> list[Requirement]:
        if settings.vbench_backend == "official":
            return [cls.official_requirement(settings)]
        return cls.native_requirements(settings)

    @classmethod
    def official_requirement(cls, settings: Settings) -> Requirement:
        env = settings.vbench_python or ""
        return Requirement(cls.name, "official", "VBench official CLI env", "vbench_python", env)

    @classmethod
    def native_requirements(cls, settings: Settings) -> list[Requirement]:
        """What the native (fbloop) implementation needs."""
        return []

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            cls.dimensions = cls.__dict__.get("dimensions", (cls.name,))
            cls.default_weights = cls.__dict__.get("default_weights", {cls.name: NORMALIZATION[cls.name][2]})

    def uses_official(self) -> bool:
        return self.settings.vbench_backend == "official"

    @property
    def model_id(self) -> str:
        if self.uses_official():
            return f"vbench-official ({self.settings.vbench_python})"
        return self.native_model_id()

    def native_model_id(self) -> str:
        return "n/a"

    def normalize(self, dimension: str, raw: float) -> float:
        return vbench_normalize(dimension, raw)

    def score(self, videos: Sequence[Path], prompt: str) -> dict[str, list[float]]:
        if not videos:
            return {d: [] for d in self.dimensions}
        if self.uses_official():
            from feedback_cli.scoring.vbench_official import run_official

            return run_official(videos, prompt, [self.name], self.settings)
        self.prepare()
        per_video = [self.score_video(read_video(Path(p))) for p in videos]
        return {d: [row[d] for row in per_video] for d in self.dimensions}

    def prepare(self) -> None:
        """Load models (and fail) before decoding any video."""

    @abstractmethod
    def score_video(self, video: Video) -> dict[str, float]:
        """The dimension(s) of one video."""

    def _need_pairs(self, video: Video) -> None:
        if video.num_frames < 2:
            raise ScorerUnavailable(f"{self.name} needs at least 2 frames; {video.path.name} has {video.num_frames}")

    def _chunks(self, n: int) -> range:
        return range(0, n, max(1, self.settings.score_batch_size))


class SubjectConsistency(VBenchDimension):
    """DINO ViT-B/16 CLS features, clamped cosine to the previous and the first frame (docs/scorers.md §V.2)."""

    name: ClassVar[str] = "subject_consistency"

    @classmethod
    def native_requirements(cls, settings: Settings) -> list[Requirement]:
        return [hf(cls.name, "dino_model", "DINO ViT-B/16", settings)]

    def native_model_id(self) -> str:
        return self.settings.dino_model

    def prepare(self) -> None:
        models.dino_model(self.settings.dino_model, self.settings, self.name)

    def score_video(self, video: Video) -> dict[str, float]:
        self._need_pairs(video)
        loaded = models.dino_model(self.settings.dino_model, self.settings, self.name)
        n = int(getattr(loaded.model.config, "image_size", 224))
        transform = dino_transform(n)
        frames = frames_tensor(video)
        feats = []
        with torch.inference_mode():
            for start in self._chunks(frames.shape[0]):
                x = transform(frames[start : start + self.settings.score_batch_size])
                x = x.to(device=loaded.device, dtype=loaded.dtype)
                out = loaded.model(pixel_values=x, interpolate_pos_encoding=True)
                feats.append(out.last_hidden_state[:, 0].float().cpu())
        return {self.name: consistency(torch.cat(feats))}


class BackgroundConsistency(VBenchDimension):
    """CLIP ViT-B/32 image features, same formula as subject consistency (docs/scorers.md §V.3)."""

    name: ClassVar[str] = "background_consistency"

    @classmethod
    def native_requirements(cls, settings: Settings) -> list[Requirement]:
        return [hf(cls.name, "vbench_clip_b32_model", "CLIP ViT-B/32", settings)]

    def native_model_id(self) -> str:
        return self.settings.vbench_clip_b32_model

    def prepare(self) -> None:
        models.clip_model(self.settings.vbench_clip_b32_model, self.settings, self.name)

    def score_video(self, video: Video) -> dict[str, float]:
        self._need_pairs(video)
        ref = self.settings.vbench_clip_b32_model
        loaded = models.clip_model(ref, self.settings, self.name)
        transform = clip_transform(int(loaded.model.config.vision_config.image_size))
        frames = frames_tensor(video)
        feats = torch.cat(
            [
                models.clip_frame_features(
                    ref, transform(frames[s : s + self.settings.score_batch_size]), self.settings, self.name
                )
                for s in self._chunks(frames.shape[0])
            ]
        )
        return {self.name: consistency(feats)}


class TemporalFlickering(VBenchDimension):
    """(255 - mean MAE between consecutive frames) / 255 (docs/scorers.md §V.4). Meant for static clips: on a moving
    clip it measures temporal stability, not pure flicker (VBench's own caveat)."""

    name: ClassVar[str] = "temporal_flickering"

    def native_model_id(self) -> str:
        return "none (pixel MAE)"

    def score_video(self, video: Video) -> dict[str, float]:
        self._need_pairs(video)
        return {self.name: flicker_score(video.frames)}


class MotionSmoothness(VBenchDimension):
    """AMT-S frame-interpolation error (docs/scorers.md §V.5): only VBench's official backend runs it."""

    name: ClassVar[str] = "motion_smoothness"
    #: only when named: it needs VBench's own env
    default_set: ClassVar[DefaultSet] = ""

    @classmethod
    def requirements(cls, settings: Settings) -> list[Requirement]:
        if settings.vbench_python or settings.vbench_backend == "official":
            req = cls.official_requirement(settings)
        else:
            req = Requirement(cls.name, "official", "VBench official CLI env (AMT-S)", "vbench_python", "")
        if settings.vbench_python:
            return [req]
        missing = "motion_smoothness needs the AMT-S interpolation network, which only VBench's official backend runs"
        hint = "install vbench in its own env and set FBLOOP_VBENCH_PYTHON=<that env's python>"
        return [dataclasses.replace(req, missing=missing, hint=hint)]

    def uses_official(self) -> bool:
        return self.settings.vbench_backend == "official" or bool(self.settings.vbench_python)

    def native_model_id(self) -> str:
        return "AMT-S (official backend only)"

    def prepare(self) -> None:
        raise ScorerUnavailable(
            "motion_smoothness needs the AMT-S interpolation network, which only VBench's official backend runs",
            hint="install vbench in its own env and set FBLOOP_VBENCH_PYTHON=<that env's python>",
        )

    def score_video(self, video: Video) -> dict[str, float]:
        self.prepare()
        return {}


class DynamicDegree(VBenchDimension):
    """RAFT optical flow at about 8 fps; dynamic if enough pairs move more than the threshold (docs/scorers.md §V.6)."""

    name: ClassVar[str] = "dynamic_degree"
    dimensions: ClassVar[tuple[str, ...]] = ("dynamic_degree", GRADED)
    default_weights: ClassVar[dict[str, float]] = {"dynamic_degree": 0.5, GRADED: 0.0}
    #: RAFT's correlation volume is (H/8 x W/8)^2 floats per pair and level; keep a batch under this
    MAX_BATCH_BYTES: ClassVar[int] = 1_500_000_000
    #: torchvision's RAFT refuses feature maps under 16 x 16, i.e. inputs under 128 px a side
    MIN_SIDE: ClassVar[int] = 128

    @classmethod
    def native_requirements(cls, settings: Settings) -> list[Requirement]:
        return [url(cls.name, "raft_weights", weights.RAFT_LARGE_C_T_V1, settings)]

    def __init__(self, settings: Settings, flow_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None):
        super().__init__(settings)
        #: (B,3,H,W) float 0..255 padded, twice -> (B,2,H,W) flow; None = RAFT
        self._flow_fn = flow_fn

    def weights_path(self) -> Path:
        return weights.resolve(
            weights.RAFT_LARGE_C_T_V1,
            self.settings.raft_weights,
            self.settings,
            self.name,
            setting_name="raft_weights",
        )

    def native_model_id(self) -> str:
        return self.settings.raft_weights or "torchvision raft_large C_T_V1"

    def prepare(self) -> None:
        if self._flow_fn is None:
            models.raft_model(self.weights_path(), self.settings, self.name)

    def raft_flow(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        loaded = models.raft_model(self.weights_path(), self.settings, self.name)
        x1 = (2 * (image1 / 255.0) - 1.0).to(loaded.device)
        x2 = (2 * (image2 / 255.0) - 1.0).to(loaded.device)
        with torch.inference_mode():
            flows = loaded.model(x1, x2, num_flow_updates=20)
        return flows[-1].float().cpu()

    def pair_scores(self, frames: torch.Tensor) -> list[float]:
        """Top-5 % flow score of each consecutive pair of (N, 3, H, W) uint8 frames."""
        flow_fn = self._flow_fn or self.raft_flow
        height, width = frames.shape[-2:]
        pad_h, pad_w = -(-height // 8) * 8, -(-width // 8) * 8
        if self._flow_fn is None and min(pad_h, pad_w) < self.MIN_SIDE:
            raise ScorerUnavailable(
                f"dynamic_degree: torchvision's RAFT needs frames of at least {self.MIN_SIDE} px a side; "
                f"got {height}x{width}"
            )
        n_pairs = frames.shape[0] - 1
        per_pair = max(1, ((pad_h // 8) * (pad_w // 8)) ** 2 * 4 * 2)
        batch = max(1, min(self.settings.score_batch_size, self.MAX_BATCH_BYTES // per_pair))
        scores: list[float] = []
        for start in range(0, n_pairs, batch):
            stop = min(n_pairs, start + batch)
            padded = pad_to_8(frames[start : stop + 1].float())  # padded per batch: frames stay uint8
            flow = flow_fn(padded[:-1], padded[1:])
            scores.extend(flow_score(f) for f in flow)
        return scores

    def score_video(self, video: Video) -> dict[str, float]:
        frames = frames_tensor(video)[:: sample_interval(video.fps)]
        height, width = frames.shape[-2:]
        scores = self.pair_scores(frames)
        moving, graded = dynamic_decision(scores, int(height), int(width), int(frames.shape[0]))
        return {self.name: 1.0 if moving else 0.0, GRADED: graded}


class AestheticQuality(VBenchDimension):
    """Mean over frames of LAION V1 linear head(normalised CLIP ViT-L/14 embedding) / 10 (docs/scorers.md §V.7)."""

    name: ClassVar[str] = "aesthetic_quality"

    @classmethod
    def native_requirements(cls, settings: Settings) -> list[Requirement]:
        return [
            hf(cls.name, "clip_model", "CLIP ViT-L/14", settings),
            url(cls.name, "vbench_aesthetic_head", weights.VBENCH_AESTHETIC_V1, settings),
        ]

    def head_path(self) -> Path:
        return weights.resolve(
            weights.VBENCH_AESTHETIC_V1,
            self.settings.vbench_aesthetic_head,
            self.settings,
            self.name,
            setting_name="vbench_aesthetic_head",
        )

    def native_model_id(self) -> str:
        head = self.settings.vbench_aesthetic_head or weights.VBENCH_AESTHETIC_V1.filename
        return f"{self.settings.clip_model} + {head}"

    def prepare(self) -> None:
        models.linear_head(self.head_path(), self.settings, self.name)
        models.clip_model(self.settings.clip_model, self.settings, self.name)

    def score_video(self, video: Video) -> dict[str, float]:
        ref = self.settings.clip_model
        head = models.linear_head(self.head_path(), self.settings, self.name)
        loaded = models.clip_model(ref, self.settings, self.name)
        transform = clip_transform(int(loaded.model.config.vision_config.image_size))
        frames = frames_tensor(video)
        scores = []
        for s in self._chunks(frames.shape[0]):
            feats = models.clip_frame_features(
                ref, transform(frames[s : s + self.settings.score_batch_size]), self.settings, self.name
            )
            feats = F.normalize(feats.float(), dim=-1, p=2)
            with torch.inference_mode():
                scores.append(head.model(feats.to(head.device)).float().cpu()[:, 0])
        return {self.name: float(torch.mean(torch.cat(scores) / 10).item())}


class ImagingQuality(VBenchDimension):
    """Mean MUSIQ-SPAQ over frames / 100 (docs/scorers.md §V.8); needs pyiqa."""

    name: ClassVar[str] = "imaging_quality"

    @classmethod
    def native_requirements(cls, settings: Settings) -> list[Requirement]:
        import importlib.util

        if settings.vbench_python and importlib.util.find_spec("pyiqa") is None:
            return [cls.official_requirement(settings)]
        return [
            Requirement(
                cls.name,
                "python",
                "pyiqa package (MUSIQ)",
                "",
                "pyiqa",
                hint="pip install pyiqa, or FBLOOP_VBENCH_PYTHON=<python of a VBench env> for the official backend",
            ),
            url(cls.name, "musiq_weights", weights.MUSIQ_SPAQ, settings),
        ]

    def uses_official(self) -> bool:
        if self.settings.vbench_backend == "official":
            return True
        if self.settings.vbench_python:
            import importlib.util

            return importlib.util.find_spec("pyiqa") is None
        return False

    def weights_path(self) -> Path:
        return weights.resolve(
            weights.MUSIQ_SPAQ,
            self.settings.musiq_weights,
            self.settings,
            self.name,
            setting_name="musiq_weights",
        )

    def native_model_id(self) -> str:
        return self.settings.musiq_weights or f"pyiqa MUSIQ {weights.MUSIQ_SPAQ.filename}"

    def prepare(self) -> None:
        models.musiq_model(self.weights_path(), self.settings, self.name)

    def score_video(self, video: Video) -> dict[str, float]:
        loaded = models.musiq_model(self.weights_path(), self.settings, self.name)
        frames = imaging_transform(frames_tensor(video), self.settings.vbench_imaging_preprocessing)
        total = 0.0
        with torch.inference_mode():
            for s in self._chunks(frames.shape[0]):
                x = frames[s : s + self.settings.score_batch_size].to(loaded.device)
                total += float(loaded.model(x).float().sum())
        return {self.name: total / frames.shape[0] / 100.0}


DIMENSION_CLASSES: dict[str, type[VBenchDimension]] = {
    cls.name: cls
    for cls in (
        SubjectConsistency,
        BackgroundConsistency,
        TemporalFlickering,
        MotionSmoothness,
        DynamicDegree,
        AestheticQuality,
        ImagingQuality,
    )
}
