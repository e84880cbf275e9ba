"""Generate a deterministic JSON instance that is valid for a JSON schema.

Covers what ``openai``'s ``to_strict_json_schema`` (pydantic models) and hand-written schemas use:
``type`` (also lists such as ``["string", "null"]``), ``object``/``properties``/``required``/
``additionalProperties``, ``array``/``items``/``prefixItems``/``minItems``/``maxItems``/``uniqueItems``,
``string`` (``enum``, ``const``, ``format``, ``minLength``/``maxLength``, ``examples``),
``number``/``integer`` (``minimum``/``maximum``, exclusive bounds, ``multipleOf``), ``boolean``,
``null``, ``$ref`` into ``$defs``/``definitions``, ``anyOf``/``oneOf``/``allOf``.

Strings reuse words of a *source text* (normally the last user message) so that fields such as
``prompt`` come back as plausible, non-empty text; numbers land in the upper-middle of their range
(70-90 % of ``[minimum, maximum]``). The same schema and text always give the same instance.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from tests.fakes.media import seed_for

JsonSchema = Mapping[str, Any]

DEFAULT_ARRAY_LENGTH = 3
MAX_DEPTH = 8
_FALLBACK_TEXT = "a quiet harbour at dawn with soft golden light and drifting fog"
_WORD = re.compile(r"[\w'-]+")
_ITEM_INDEX = re.compile(r"\[(\d+)\]")


class SchemaInstanceGenerator:
    """Builds instances for one root schema; ``$ref`` are resolved against that root."""

    def __init__(self, root: JsonSchema, source_text: str = "") -> None:
        self.root = root
        self.words = _WORD.findall(source_text)[:200] or _WORD.findall(_FALLBACK_TEXT)
        self.source_text = source_text

    def generate(self) -> Any:
        return self._value(self.root, path="$", depth=0)

    # -- helpers -------------------------------------------------------------------------------
    def _resolve(self, ref: str) -> JsonSchema:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref are supported, got {ref!r}")
        node: Any = self.root
        for part in filter(None, ref[1:].split("/")):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _fraction(self, path: str, low: float = 0.7, high: float = 0.9) -> float:
        """A stable pseudo-random number in [low, high] for this field and source text."""
        return low + (high - low) * (seed_for(path, self.source_text) % 1000) / 999

    # -- dispatch ------------------------------------------------------------------------------
    def _value(self, schema: JsonSchema | bool, path: str, depth: int) -> Any:
        if schema is True or schema is False or not schema:
            return self._text(path, {})
        if "$ref" in schema:
            merged = {**self._resolve(schema["$ref"]), **{k: v for k, v in schema.items() if k != "$ref"}}
            return self._value(merged, path, depth + 1)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        if "examples" in schema and isinstance(schema["examples"], list) and schema["examples"]:
            return schema["examples"][0]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._value(self._pick_option(schema[key]), path, depth + 1)
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged = _merge(merged, self._resolve(part["$ref"]) if "$ref" in part else part)
            return self._value(merged, path, depth + 1)

        kind = self._type_of(schema)
        if kind == "object":
            return self._object(schema, path, depth)
        if kind == "array":
            return self._array(schema, path, depth)
        if kind == "integer":
            return self._integer(schema, path)
        if kind == "number":
            return self._number(schema, path)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._text(path, schema)

    def _pick_option(self, options: list[JsonSchema]) -> JsonSchema:
        """The first option that is not plain ``null`` (nullable fields get a real value)."""
        for option in options:
            if option.get("type") != "null":
                return option
        return options[0]

    @staticmethod
    def _type_of(schema: JsonSchema) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            non_null = [k for k in kind if k != "null"]
            kind = non_null[0] if non_null else "null"
        if kind:
            return str(kind)
        if "properties" in schema or "additionalProperties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if "minimum" in schema or "maximum" in schema:
            return "number"
        return "string"

    # -- containers ----------------------------------------------------------------------------
    def _object(self, schema: JsonSchema, path: str, depth: int) -> dict[str, Any]:
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", properties))
        names = list(properties) if depth < MAX_DEPTH else [n for n in properties if n in required]
        result = {name: self._value(properties[name], f"{path}.{name}", depth + 1) for name in names}
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, Mapping) and depth < MAX_DEPTH:
            count = max(int(schema.get("minProperties", 0)), 2)
            for index in range(count):
                key = f"{self.words[index % len(self.words)].lower()}_{index + 1}"
                result[key] = self._value(extra, f"{path}.{key}", depth + 1)
        return result

    def _array(self, schema: JsonSchema, path: str, depth: int) -> list[Any]:
        prefix: list[JsonSchema] = list(schema.get("prefixItems", []))
        minimum = int(schema.get("minItems", 0))
        maximum = int(schema.get("maxItems", max(minimum, DEFAULT_ARRAY_LENGTH, len(prefix))))
        length = max(minimum, min(maximum, max(DEFAULT_ARRAY_LENGTH, len(prefix))))
        if depth >= MAX_DEPTH:
            length = minimum
        items = schema.get("items", {})
        values = [
            self._value(prefix[i] if i < len(prefix) else items, f"{path}[{i}]", depth + 1) for i in range(length)
        ]
        return values

    # -- scalars -------------------------------------------------------------------------------
    def _number(self, schema: JsonSchema, path: str) -> float:
        low, high = _range(schema) or (0.0, 1.0)
        value = low + (high - low) * self._fraction(path)
        if step := schema.get("multipleOf"):
            value = _snap(value, float(step), low, high)
        return round(value, 3)

    def _integer(self, schema: JsonSchema, path: str) -> int:
        bounds = _range(schema)
        if bounds is None:
            return 7 + seed_for(path, self.source_text) % 3
        low, high = math.ceil(bounds[0]), math.floor(bounds[1])
        value = float(round(low + (high - low) * self._fraction(path)))
        if step := schema.get("multipleOf"):
            value = _snap(value, float(step), low, high)
        return int(value)

    def _text(self, path: str, schema: JsonSchema) -> str:
        fmt = schema.get("format")
        if fmt in ("uri", "url", "uri-reference"):
            return "https://example.com/fake-asset.png"
        if fmt == "date-time":
            return "2025-01-01T12:00:00Z"
        if fmt == "date":
            return "2025-01-01"
        if fmt == "email":
            return "fake@example.com"
        if fmt == "uuid":
            return "00000000-0000-4000-8000-000000000000"
        # Fields of sibling array items share an offset shifted by their index, so siblings differ.
        indices = [int(i) for i in _ITEM_INDEX.findall(path)]
        index = sum(i * 31**level for level, i in enumerate(reversed(indices)))
        count = len(self.words)
        start = (seed_for(_ITEM_INDEX.sub("[]", path), self.source_text) + index) % count
        text = " ".join(self.words[(start + i) % count] for i in range(min(count, 12)))
        if count == 1 and index:
            text = f"{text} {index + 1}"
        min_length = int(schema.get("minLength", 1))
        max_length = schema.get("maxLength")
        while len(text) < min_length:
            text = f"{text} {text}"
        if max_length is not None:
            text = text[: int(max_length)].rstrip() or text[: int(max_length)]
        return text


def _bounds(schema: JsonSchema) -> tuple[float | None, float | None]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    exclusive_low, exclusive_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(exclusive_low, int | float) and not isinstance(exclusive_low, bool):
        low = exclusive_low + 1e-3 if schema.get("type") != "integer" else exclusive_low + 1
    if isinstance(exclusive_high, int | float) and not isinstance(exclusive_high, bool):
        high = exclusive_high - 1e-3 if schema.get("type") != "integer" else exclusive_high - 1
    return low, high


def _range(schema: JsonSchema) -> tuple[float, float] | None:
    """Closed numeric range of a schema; one missing side is set 10 away from the other."""
    low, high = _bounds(schema)
    if low is None and high is None:
        return None
    if low is None:
        low = high - 10  # type: ignore[operator]
    if high is None:
        high = low + 10
    return float(low), float(high)


def _snap(value: float, step: float, low: float, high: float) -> float:
    """Round ``value`` to a multiple of ``step`` that still lies inside [low, high]."""
    return min(max(round(value / step) * step, math.ceil(low / step) * step), math.floor(high / step) * step)


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if key == "properties":
            merged["properties"] = {**merged.get("properties", {}), **value}
        elif key == "required":
            merged["required"] = [*merged.get("required", []), *value]
        else:
            merged.setdefault(key, value)
    return merged


def instance_for_schema(schema: JsonSchema, source_text: str = "") -> Any:
    """A JSON value valid for ``schema`` whose strings are built from words of ``source_text``."""
    return SchemaInstanceGenerator(schema, source_text).generate()
