"""A third-party image scorer: mean luma of the image, distance to a reference brightness.

It declares everything fbloop needs: name, kind (an ImageScorer), its own settings (`Options`, read from
FBLOOP_MEANLUMA_<FIELD>), what it needs (`requirements`: a python module, named by an option, so a test can make
it missing) and its default-set membership (none: used only when named).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from feedback_cli.scoring.base import ImageScorer, ScorerOptions
from feedback_cli.scoring.requirements import Requirement


class MeanLumaOptions(ScorerOptions):
    #: the brightness (0-255) that scores 100
    reference: float = 128.0
    #: the module the scorer imports to read images
    module: str = "PIL"


class MeanLuma(ImageScorer):
    name: ClassVar[str] = "meanluma"
    raw_range: ClassVar[str] = "0..255 (mean of the L channel)"
    Options = MeanLumaOptions

    @classmethod
    def requirements(cls, settings) -> list[Requirement]:
        module = cls.options(settings).module
        return [Requirement(cls.name, "python", f"{module} package", "", module)]

    @property
    def model_id(self) -> str:
        return "meanluma-statistic"

    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        from PIL import Image, ImageStat

        values = []
        for path in images:
            with Image.open(path) as image:
                values.append(float(ImageStat.Stat(image.convert("L")).mean[0]))
        return values

    def normalize(self, raw: float) -> float:
        reference = self.options(self.settings).reference
        return max(0.0, 100.0 - abs(raw - reference) / 255.0 * 100.0)
