"""A module object that imports the real module on first attribute access.

Scorer modules are imported to read their declarations (name, kind, requirements, default set) by
`fbloop models list`, preflight and `--dry-run`, none of which may import torch. Their scoring code names
`torch`, `F`, `transforms` or `models` at module level the usual way; binding those names to `lazy(...)`
defers the heavy import to the first call that uses them.
"""

from __future__ import annotations

import importlib
from typing import Any


class _LazyModule:
    def __init__(self, module: str, attr: str = "") -> None:
        self._lazy_module = module
        self._lazy_attr = attr

    def _lazy_target(self) -> Any:
        target = importlib.import_module(self._lazy_module)
        return getattr(target, self._lazy_attr) if self._lazy_attr else target

    def __getattr__(self, item: str) -> Any:
        return getattr(self._lazy_target(), item)

    def __repr__(self) -> str:
        where = f"{self._lazy_module}:{self._lazy_attr}" if self._lazy_attr else self._lazy_module
        return f"<lazy {where}>"


def lazy(module: str, attr: str = "") -> Any:
    """`module` (or its attribute `attr`), imported when first used."""
    return _LazyModule(module, attr)
