"""CLIP-Score, the torchmetrics definition (docs/scorers.md §I.2).

Model and processor `settings.clip_model` (default openai/clip-vit-large-patch14, transformers CLIPModel /
CLIPProcessor), shared with `aesthetic` and VBench's aesthetic_quality through the model cache.

Raw value per image: max(100 x cos(E_I, E_C), 0) with both embeddings L2-normalised and no prompt prefix. This is
torchmetrics' `CLIPScore` for a batch of one image (it clamps after averaging over the batch, so per image the
clamp applies to that image's own value). Range 0..100, typically 25-35 for current T2I models.

Images go through the checkpoint's processor on the PIL backend, as torchmetrics' `CLIPProcessor` did under
transformers 4. One deliberate deviation: a prompt longer than CLIP's 77 tokens is cut by the tokenizer, which
keeps the end-of-text token CLIP pools; torchmetrics slices it off and pools a prompt token instead. Such a
prompt gets a note in scores.json.

0-100: clamp((raw - 15) / (40 - 15), 0, 1) x 100 (§I.2 "Normalisation"); anchors tunable via
`FBLOOP_SCORE_ANCHORS='{"clip-score": [15, 40]}'`.
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


class ClipScoreScorer(ImageScorer):
    """max(100 x cosine(text, image), 0) on CLIP ViT-L/14 (docs/scorers.md §I.2, torchmetrics)."""

    name: ClassVar[str] = "clip-score"
    raw_range: ClassVar[str] = "0..100 (100 x cosine, clamped at 0)"
    default_weight: ClassVar[float] = 1.0
    ANCHORS: ClassVar[tuple[float, float]] = (15.0, 40.0)
    default_set: ClassVar[DefaultSet] = "standard"
    needs_modules: ClassVar[tuple[str, ...]] = TORCH_STACK

    @classmethod
    def requirements(cls, settings: Settings) -> list[Requirement]:
        return [hf(cls.name, "clip_model", "CLIP ViT-L/14", settings)]

    @property
    def model_id(self) -> str:
        return self.settings.clip_model

    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        return [v.raw for v in self.score_with_notes(images, prompt)]

    def score_with_notes(self, images: Sequence[Path], prompt: str) -> list[NotedValue]:
        if not images:
            return []
        s = self.settings
        img = models.clip_image_features(s.clip_model, s.clip_model, images, s, self.name)
        txt = models.clip_text_features(s.clip_model, s.clip_model, [prompt], s, self.name)
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        scores = torch.clamp(100.0 * (img @ txt[0]), min=0.0)
        note = models.truncation_note(
            models.clip_token_count(s.clip_model, prompt, self.name),
            models.clip_text_context(s.clip_model, s, self.name),
        )
        notes = (note,) if note else ()
        return [NotedValue(float(v), notes) for v in scores.to(torch.float64)]

    def normalize(self, raw: float) -> float:
        low, high = anchors_for(self.name, self.ANCHORS, self.settings)
        return anchored(raw, low, high)
