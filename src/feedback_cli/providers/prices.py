"""The price table: a dated data file shipped with fbloop, overridable by a user file (`FBLOOP_PRICE_FILE`,
same shape, merged over the shipped one). Prices estimate a call before it is made (budget cap, --dry-run)
and cost it after (the ledger)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from feedback_cli.errors import InputError

#: a typical writer or critic exchange, for estimates before the call
TYPICAL_PROMPT_TOKENS = 1500
TYPICAL_COMPLETION_TOKENS = 400


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    llm: dict[str, dict[str, float]]
    replicate: dict[str, dict[str, float]]

    def llm_price(self, model: str) -> dict[str, float] | None:
        if model in self.llm:
            return self.llm[model]
        # dated snapshots ("gpt-4.1-mini-2025-04-14") cost what their family costs
        family = max((name for name in self.llm if model.startswith(name + "-")), key=len, default=None)
        return self.llm[family] if family else None

    def llm_cost(self, model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float | None:
        price = self.llm_price(model)
        if price is None:
            return None
        fresh = max(prompt_tokens - cached_tokens, 0)
        usd = (
            fresh * price["input"]
            + cached_tokens * price.get("cached_input", price["input"])
            + completion_tokens * price["output"]
        )
        return usd / 1_000_000

    def llm_estimate(self, model: str) -> float | None:
        return self.llm_cost(model, TYPICAL_PROMPT_TOKENS, TYPICAL_COMPLETION_TOKENS)

    def media_cost(
        self, model: str, *, outputs: int = 1, seconds: float = 0.0, end_frame: bool = False
    ) -> float | None:
        """A Replicate prediction's price: per image, per second of video, or per video; None if unknown."""
        price = self.replicate.get(model)
        if price is None:
            return None
        if "per_image" in price:
            return price["per_image"] * outputs
        if "per_second" in price:
            rate = price.get("per_second_end_frame", price["per_second"]) if end_frame else price["per_second"]
            return rate * seconds
        if "per_video" in price:
            return price["per_video"] * outputs
        return None


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@cache
def load_prices(user_file: Path | None = None) -> PriceTable:
    data = json.loads(resources.files("feedback_cli.data").joinpath("prices.json").read_text())
    if user_file is not None:
        from feedback_cli.files import read_regular  # a FIFO named here must not block the run

        try:
            data = _merge(data, json.loads(read_regular(Path(user_file), "price file")))
        except (OSError, ValueError, RecursionError) as exc:
            raise InputError(f"price file {user_file} cannot be read as JSON: {exc}") from None
    return PriceTable(
        as_of=str(data.get("as_of", "unknown")),
        llm=data.get("llm_per_million_tokens", {}),
        replicate=data.get("replicate", {}),
    )
