"""Masking of credentials, so they never reach a log line, CLI output or response."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# scheme://user:password@host  and  scheme://:password@host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^@\s/]+)@")
# password=... style query parameters and key/value strings
_QUERY_SECRET = re.compile(
    r"(?P<head>(?:password|passwd|pwd|secret|token|api_key|apikey)=)(?P<secret>[^&\s;,'\"]+)",
    re.IGNORECASE,
)
_SECRET_KEY_NAMES = re.compile(r"password|passwd|secret|token|api_?key|credential", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """Return *text* with the password of every URL and ``password=`` value masked."""
    if "@" not in text and "=" not in text:
        return text
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}{MASK}", text)


def is_secret_key(key: str) -> bool:
    """Tell whether a setting's name says it holds a secret (``SECRET_KEY``, ``PASSWORD``...)."""
    return bool(_SECRET_KEY_NAMES.search(key))


def mask_value(key: str, value: Any) -> Any:
    """Mask one setting: whole value for secret-named keys, URL passwords elsewhere."""
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(key, v) for v in value]
    if is_secret_key(key) and value not in (None, "") and not isinstance(value, bool):
        return MASK
    if isinstance(value, str):
        return mask_secrets(value)
    return value
