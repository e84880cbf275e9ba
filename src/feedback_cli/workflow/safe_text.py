"""Characters that must not reach a terminal (or an HTML page) as they are.

A prompt, a model reply or a file name can carry ESC sequences (clear the screen, set the window title,
rewrite the line), C1 controls (which some terminals also obey), and bidi or zero-width characters that make
text read differently from what it is. `printable` removes them; the terminal wrapper (ui/console.py) and the
HTML report apply it to everything they print, so no call site has to remember.
"""

from __future__ import annotations

import re
import unicodedata

#: whole escape sequences (ECMA-48), so that no parameters like "[2J" or "]0;title" are left behind:
#: control strings (OSC, DCS, SOS, PM, APC) up to their terminator, CSI up to its final byte, and the
#: two-character ESC sequences; in 7-bit (ESC x) and 8-bit (C1) spellings
ESCAPE_SEQUENCE = re.compile(
    r"(?:\x1b[\]P X^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)

#: bidi embeddings, overrides and isolates, and the marks that reorder neutral characters
BIDI_CONTROLS = frozenset([0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
#: zero-width characters with no job in displayed text (ZWJ/ZWNJ stay: they shape emoji and scripts)
ZERO_WIDTH = frozenset([0x180E, 0x200B, 0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF])

_REMOVE: dict[int, str | None] = {
    **{c: None for c in range(0x00, 0x20) if c not in (0x09, 0x0A)},  # C0 incl. ESC, CR, BEL, BS
    0x7F: None,  # DEL
    **{c: None for c in range(0x80, 0xA0)},  # C1 incl. CSI (0x9B) and OSC (0x9D)
    **{c: None for c in BIDI_CONTROLS},
    **{c: None for c in ZERO_WIDTH},
    0x2028: " ",  # line and paragraph separators: some terminals break the line on them
    0x2029: " ",
}
_REMOVE_SINGLE_LINE = {**_REMOVE, 0x0A: " ", 0x09: " "}


def printable(text: str, *, single_line: bool = False) -> str:
    """`text` without control, bidi and zero-width characters; newlines and tabs stay unless `single_line`."""
    return ESCAPE_SEQUENCE.sub("", text).translate(_REMOVE_SINGLE_LINE if single_line else _REMOVE)


def has_visible_text(text: str) -> bool:
    """True when `text` has at least one character that shows: not whitespace, control or format."""
    return any(not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf") for ch in text)


#: JSON leaves these as they are (it escapes only C0): written as \\uXXXX, the data is the same and a
#: terminal showing `--json` output sees plain ASCII in their place
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in [0x7F, *range(0x80, 0xA0), *BIDI_CONTROLS, *ZERO_WIDTH, 0x2028, 0x2029]}


def json_safe(json_text: str) -> str:
    """JSON text (from json.dumps) with the characters `printable` removes escaped, so still the same data."""
    return json_text.translate(_JSON_ESCAPES)
