"""The overall score of a candidate from its per-scorer 0-100 values.

Two selection rules (setting `selection`): `weighted` is a weighted mean of the 0-100 values of the
scorers that ran; `rank` is the mean rank across scorers (1 = best), which one gamed scorer cannot
dominate. Scorers that failed are absent from the values and so from both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def weighted_mean(values: Mapping[str, float], weights: Mapping[str, float]) -> float | None:
    """Weighted mean over the names present in `values`; None when nothing was scored.

    Weights are divided by the largest one first, so huge finite weights (1e308) cannot overflow the sums into
    inf/inf = NaN; non-finite values and weights that are not positive and finite count as absent.
    """
    used = {
        name: (value, weights.get(name, 1.0))
        for name, value in values.items()
        if math.isfinite(value) and math.isfinite(weights.get(name, 1.0)) and weights.get(name, 1.0) > 0
    }
    if not used:
        return None
    largest = max(w for _, w in used.values())
    total_weight = 0.0
    acc = 0.0
    for value, w in used.values():
        acc += (w / largest) * value
        total_weight += w / largest
    return acc / total_weight


def mean_ranks(candidates: Sequence[Mapping[str, float]]) -> list[float | None]:
    """Mean rank (1 = best) per candidate over every scorer; ties share the average rank."""
    names = sorted({name for c in candidates for name in c})
    sums = [0.0] * len(candidates)
    counts = [0] * len(candidates)
    for name in names:
        scored = [(c[name], i) for i, c in enumerate(candidates) if name in c and math.isfinite(c[name])]
        scored.sort(key=lambda t: -t[0])
        pos = 0
        while pos < len(scored):
            end = pos
            while end + 1 < len(scored) and scored[end + 1][0] == scored[pos][0]:
                end += 1
            rank = (pos + end) / 2 + 1
            for k in range(pos, end + 1):
                sums[scored[k][1]] += rank
                counts[scored[k][1]] += 1
            pos = end + 1
    return [s / n if n else None for s, n in zip(sums, counts, strict=True)]


def pick_best(
    candidates: Sequence[Mapping[str, float]], weights: Mapping[str, float], rule: str = "weighted", *, digits: int = 3
) -> tuple[int | None, list[float | None]]:
    """Index of the best candidate and each candidate's overall value under `rule`, rounded to `digits`.

    For `weighted` the overall is the 0-100 weighted mean (higher is better); for `rank` it is the mean
    rank (lower is better). The choice is made on the rounded values, the ones recorded and shown, so two
    candidates whose recorded overall is equal are a tie, and ties go to the earlier candidate: the pick is
    always the one the recorded scores name, and deterministic.
    """
    if rule == "rank":
        overall = _rounded(mean_ranks(candidates), digits)
        best = min((i for i, v in enumerate(overall) if v is not None), key=lambda i: overall[i], default=None)
        return best, overall
    overall = _rounded([weighted_mean(c, weights) for c in candidates], digits)
    best = max((i for i, v in enumerate(overall) if v is not None), key=lambda i: overall[i], default=None)
    return best, overall


def _rounded(values: Sequence[float | None], digits: int) -> list[float | None]:
    return [None if v is None else round(v, digits) for v in values]
