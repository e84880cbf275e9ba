"""LAION improved aesthetic predictor (docs/scorers.md §I.3).

The image embedding of CLIP ViT-L/14 (`settings.clip_model`, the same cached model as clip-score: one load) is
computed on OpenAI clip's own preprocessing (as the predictor's `simple_inference.py` does: PIL bicubic
resize, centre crop with rounded offsets; identical to clip-score's input for most image sizes, and then shared),
L2-normalised and fed to the MLP head `sac+logos+ava1-l14-linearMSE.pth` (Linear 768-1024-128-64-16-1 with the
ReLUs commented out, i.e. affine in eval mode). The head is `settings.aesthetic_head` (`FBLOOP_AESTHETIC_HEAD`, a
local file) or, by default, downloaded once from the published URL and checked by sha256 (§I.3, `weights.py`).

Raw value: the head's output, a rating on about 1..10 (SD1.5 about 5.5, SDXL about 5.9; can leave [1, 10]
because the head is linear).

0-100: clamp((raw - 1) / 9, 0, 1) x 100, the simple mapping of §I.3 "Normalisation"; the more discriminative
(4, 7) anchors are one setting away: `FBLOOP_SCORE_ANCHORS='{"aesthetic": [4, 7]}'`.

Not VBench's aesthetic_quality, which uses the older V1 linear head (§V.7, see `vbench.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from feedback_cli.scoring import weights
from feedback_cli.scoring.anchors import anchored, anchors_for
from feedback_cli.scoring.base import TORCH_STACK, DefaultSet, ImageScorer
from feedback_cli.scoring.lazy import lazy
from feedback_cli.scoring.requirements import Requirement, hf, url

if TYPE_CHECKING:
    from feedback_cli.config import Settings

torch = lazy("torch")
models = lazy("feedback_cli.scoring.loaders")


class AestheticScorer(ImageScorer):
    """LAION improved aesthetic MLP on L2-normalised CLIP ViT-L/14 image embeddings (docs/scorers.md §I.3)."""

    name: ClassVar[str] = "aesthetic"
    raw_range: ClassVar[str] = "about 1..10 (LAION aesthetic rating, linear head)"
    default_weight: ClassVar[float] = 1.0
    ANCHORS: ClassVar[tuple[float, float]] = (1.0, 10.0)
    default_set: ClassVar[DefaultSet] = "standard"
    needs_modules: ClassVar[tuple[str, ...]] = TORCH_STACK

    @classmethod
    def requirements(cls, settings: Settings) -> list[Requirement]:
        return [
            hf(cls.name, "clip_model", "CLIP ViT-L/14", settings),
            url(cls.name, "aesthetic_head", weights.AESTHETIC_MLP, settings),
        ]

    @property
    def model_id(self) -> str:
        head = self.settings.aesthetic_head or weights.AESTHETIC_MLP.filename
        return f"{self.settings.clip_model} + {head}"

    def head_path(self) -> Path:
        return weights.resolve(
            weights.AESTHETIC_MLP,
            self.settings.aesthetic_head,
            self.settings,
            self.name,
            setting_name="aesthetic_head",
        )

    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        if not images:
            return []
        s = self.settings
        head = models.aesthetic_mlp(self.head_path(), s, self.name)
        feats = models.clip_image_features(s.clip_model, s.clip_model, images, s, self.name, preprocess="openai-clip")
        feats = feats / feats.norm(dim=-1, keepdim=True)
        with torch.inference_mode():
            out = head.model(feats.to(head.device, torch.float32)).float().cpu()[:, 0]
        return [float(v) for v in out.to(torch.float64)]

    def normalize(self, raw: float) -> float:
        low, high = anchors_for(self.name, self.ANCHORS, self.settings)
        return anchored(raw, low, high)
