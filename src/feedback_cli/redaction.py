"""One redactor for every secret fbloop knows, applied wherever text is shown, logged or stored.

What is a secret comes from one place, `Settings.secrets()`: the value of every `SecretStr` setting, and the
credentials inside every URL-valued setting (password or token, `user:password` and its `Basic` header
form, query values). A value shorter than `MIN_SECRET_LENGTH` is not treated as one: `OPENAI_API_KEY=x` is a
placeholder for a local server (any value works there), and replacing every "x" of every prompt would
mangle the run, not protect it.

Besides the literal values, the userinfo of any URL in any text (`scheme://user:password@host`) is masked, so
credentials of any length never pass, whichever setting or provider message they came from.

The redactor is applied where provider text enters the engine (error bodies, prediction errors) and again,
defensively, at every writer and printer: run folder files, the checkpoint, the run log, events, the terminal.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

#: values shorter than this are placeholders ("x", "1", "key", "ollama"), not secrets
MIN_SECRET_LENGTH = 8
REDACTED = "***redacted***"
MASK = "***"

# scheme://userinfo@ : userinfo has no "/", "?", "#", "@" or whitespace (RFC 3986); masked whatever its length
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]+@")


def url_secrets(url: str) -> list[str]:
    """The credentials inside a URL: the password (or a user name standing alone as a token),
    `user:password` and its `Basic` header form, and every query value."""
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return []
    found: list[str] = []
    if username is not None or password is not None:
        user, secret = unquote(username or ""), unquote(password or "")
        pair = f"{user}:{secret}"
        # a user name beside a password names, it does not unlock (and redacting it everywhere would mangle
        # paths such as /home/<user>); alone, as in https://TOKEN@host, it is the credential
        found.append(secret if password is not None else user)
        # httpx sends URL credentials as `Authorization: Basic base64(user:password)`; an echoed header
        # must not hand them back in a form the literal values miss
        found += [pair, base64.b64encode(pair.encode()).decode()]
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=False)]
    return [value for value in found if value]


def mask_url(url: str) -> str:
    """A URL fit for a trace: `http://***@host/v1?token=***` (no userinfo, no query values)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK  # unparsable: nothing of it is shown
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@" + netloc.rpartition("@")[2]
    query = "&".join(f"{name}={MASK}" for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    if parts.query and not query:  # a bare token without a name
        query = MASK
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def looks_like_url(value: object) -> bool:
    if not isinstance(value, str) or "://" not in value:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme and parts.netloc)


class Redactor:
    """Replaces every known secret value (and any URL's userinfo) in text and in JSON-like data."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        unique = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}
        # longest first: a value that contains another is replaced whole
        self.values: tuple[str, ...] = tuple(sorted(unique, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        return self.redact(text)

    def redact(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, REDACTED)
        if "@" in text and "://" in text:
            text = _URL_USERINFO.sub(rf"\1{MASK}@", text)
        return text

    def scrub(self, data: Any) -> Any:
        """A copy of JSON-like data (dicts, lists, strings) with every string redacted."""
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, dict):
            return {self.scrub(k) if isinstance(k, str) else k: self.scrub(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.scrub(v) for v in data]
        return data


#: secrets of the settings this process loaded (`config.load_settings`), for the last-resort printers
#: that run outside any run (the top-level error line); runs use their own Redactor from their settings
_process_values: set[str] = set()


def remember(values: Iterable[str]) -> None:
    _process_values.update(values)


def redact_known(text: str) -> str:
    return Redactor(_process_values).redact(text)
