"""PickScore (docs/scorers.md §I.1).

Model `settings.pickscore_model` (default yuvalkirstain/PickScore_v1, a transformers CLIPModel fine-tuned from
CLIP-H) with the processor `settings.pickscore_processor` (default laion/CLIP-ViT-H-14-laion2B-s32B-b79K:
shortest edge 224 bicubic, centre crop 224, CLIP mean/std, on the PIL backend as in PickScore's own code; text
padded and truncated to 77 tokens by the tokenizer, which keeps the end-of-text token, as PickScore's code does).
A prompt longer than 77 tokens gets a note in scores.json.

Raw value: exp(logit_scale) x cos(text, image), with logit_scale read from the checkpoint at run time and no
clamp (§I.1 "Formula"). Typical 17-24, SDXL about 21.7; compare only within one prompt.

0-100: clamp((raw - 17) / (24 - 17), 0, 1) x 100 (§I.1 "Normalisation (b) absolute"); the anchors are tunable
with `FBLOOP_SCORE_ANCHORS='{"pickscore": [17, 24]}'`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from feedback_cli.scoring.anchors import anchored, anchors_for
from feedback_cli.scoring.base import TORCH_STACK, DefaultSet, ImageScorer, NotedValue
from feedback_cli.scoring.lazy import lazy
from feedback_cli.scoring.requirements import Requirement, hf

if TYPE_CHECKING:
    from feedback_cli.config import Settings

torch = lazy("torch")
models = lazy("feedback_cli.scoring.loaders")


class PickScoreScorer(ImageScorer):
    """exp(logit_scale) x cosine(text, image) on PickScore_v1 (docs/scorers.md §I.1)."""

    name: ClassVar[str] = "pickscore"
    raw_range: ClassVar[str] = "about 17..24 (exp(logit_scale) x cosine, unclamped)"
    default_weight: ClassVar[float] = 1.0
    ANCHORS: ClassVar[tuple[float, float]] = (17.0, 24.0)
    default_set: ClassVar[DefaultSet] = "standard"
    needs_modules: ClassVar[tuple[str, ...]] = TORCH_STACK

    @classmethod
    def requirements(cls, settings: Settings) -> list[Requirement]:
        return [
            hf(cls.name, "pickscore_model", "PickScore_v1 (CLIP-H)", settings),
            hf(cls.name, "pickscore_processor", "CLIP-H processor", settings, "hf-processor"),
        ]

    @property
    def model_id(self) -> str:
        return self.settings.pickscore_model

    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        return [v.raw for v in self.score_with_notes(images, prompt)]

    def score_with_notes(self, images: Sequence[Path], prompt: str) -> list[NotedValue]:
        if not images:
            return []
        s = self.settings
        img = models.clip_image_features(s.pickscore_model, s.pickscore_processor, images, s, self.name)
        txt = models.clip_text_features(s.pickscore_model, s.pickscore_processor, [prompt], s, self.name)
        loaded = models.clip_model(s.pickscore_model, s, self.name)
        scale = loaded.model.logit_scale.detach().float().exp().cpu()
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        scores = scale * (txt @ img.T)[0]
        note = models.truncation_note(
            models.clip_token_count(s.pickscore_processor, prompt, self.name),
            models.clip_text_context(s.pickscore_model, s, self.name),
        )
        notes = (note,) if note else ()
        return [NotedValue(float(v), notes) for v in scores.to(torch.float64)]

    def normalize(self, raw: float) -> float:
        low, high = anchors_for(self.name, self.ANCHORS, self.settings)
        return anchored(raw, low, high)
