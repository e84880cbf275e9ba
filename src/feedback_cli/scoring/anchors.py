"""Linear 0-100 mappings with tunable anchors (docs/scorers.md §I.1-§I.3 "Normalisation", §V.11).

`anchored(raw, low, high)` = clamp((raw - low) / (high - low), 0, 1) x 100. Each scorer names its default
anchors; `settings.score_anchors[name] = (low, high)` overrides them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feedback_cli.config import Settings


def anchored(raw: float, low: float, high: float) -> float:
    """clamp((raw - low) / (high - low), 0, 1) * 100; NaN stays NaN (it is never silently made a number)."""
    if math.isnan(raw):
        return raw
    if high == low:
        return 100.0 if raw >= high else 0.0
    return 100.0 * min(1.0, max(0.0, (raw - low) / (high - low)))


def anchors_for(name: str, default: tuple[float, float], settings: Settings | None) -> tuple[float, float]:
    if settings is not None and name in settings.score_anchors:
        low, high = settings.score_anchors[name]
        return float(low), float(high)
    return default
