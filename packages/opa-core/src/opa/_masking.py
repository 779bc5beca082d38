"""Masking of credentials, so they never reach a log line, CLI output or response.

It runs on every log line, so its cost is linear in the length of the text whatever the
text holds: each pass anchors on a literal (``://``, a secret-looking name) and looks
around it, and no pattern is retried from every position. A line holding neither marker
costs a lower-casing and a few substring searches (about 1 µs for an access line).

Over-masking a little is the price of never leaking: a password may hold any character,
so a URL's user-info runs to the last ``@`` on its line, as client libraries split it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# Names that say a value is secret, both for settings (masked whole) and for free text
# (``NAME=value``, ``NAME: value``, JSON and dict forms, HTTP authorization headers).
# ``pass`` counts unless a letter follows it (``pass=``, ``DBPASS``, ``smtp_pass``; not
# ``passed``, ``passive``). A bare ``key`` counts only as a URL's query parameter
# (``?key=``, as many APIs take their keys): elsewhere it names a cache, routing or sort
# key, which logs must show.
_SECRET_NAMES = re.compile(
    r"passw(?:or)?d|pwd|passphrase|pass(?![a-z])|secret|token|credential|bearer"
    r"|authorization|cookie|api[-_]?key|private[-_]?key|access[-_]?key|key(?<=[?&]key)(?![a-z])"
    r"|session[-_]?id",
    re.IGNORECASE,
)
# The same names, searched in lower-cased text: ten times faster than ignoring case.
_LOWER_SECRET_NAMES = re.compile(_SECRET_NAMES.pattern)
# One of these is in every name above. Looking for them in a lower-cased line is cheaper
# still, and most lines hold none.
_NAME_MARKERS = (
    "pass",
    "pwd",
    "secret",
    "token",
    "credential",
    "key",
    "auth",
    "bearer",
    "cookie",
    "session",
)

# A scheme and its "://": a maximal run (the look-behind), taken possessively.
_URL_START = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z0-9+.\-]*+://")
# What may stand before a URL in free text; anything else puts the "://" inside the
# previous URL (a password such as "a@b://c").
_URL_BOUNDARY = frozenset(" \t\r\n\"'`(<[{=,;|")
# Where an authority without a password ends, as every URL parser has it.
_AUTHORITY_END = re.compile(r"[/?#\s]")

_NAME_TAIL = re.compile(r"[\w.\-]*+")
_BLANKS = re.compile(r"[ \t]*+")
# After a quoted name, the comma and opening of a quoted value: ``(b'cookie', b'sid=...')``.
_PAIR_VALUE = re.compile(r",[ \t]*+b?+(?=[\"'])")
_UNQUOTED_VALUE = re.compile(r"[^\s\"'&]*+")
_QUOTED_VALUE = {
    '"': re.compile(r'(?:[^"\\\n]++|\\.)*+'),
    "'": re.compile(r"(?:[^'\\\n]++|\\.)*+"),
}
# Inside \"...\" (a quoted value within a quoted string): up to \" or the line's end.
_ESCAPED_QUOTED_VALUE = {
    '"': re.compile(r'(?:[^\\\n]++|\\[^"\n])*+'),
    "'": re.compile(r"(?:[^\\\n]++|\\[^'\n])*+"),
}
# A list or mapping after a secret name: up to its closing bracket or the line's end.
_BRACKETED_VALUE = {
    "[": re.compile(r"[^\]\n]*+"),
    "(": re.compile(r"[^)\n]*+"),
    "{": re.compile(r"[^}\n]*+"),
}
# What opens a quoted or bracketed value, which ends at its own closing character.
_OPENERS = frozenset("\"'\\[({")
# What follows the closing quote of a value; anything else continues the value.
_AFTER_QUOTE = frozenset(" \t\r,;:)]}>&\"'")
_AFTER_ESCAPED_QUOTE = _AFTER_QUOTE | frozenset("\\")
# What may follow a mask that an earlier pass wrote (``password:***@host``, ``"***",``).
_AFTER_MASK = _AFTER_QUOTE | frozenset("@")
# An authorization header's scheme stays readable; what follows it is masked to the end
# of the line (Digest carries several parameters).
_AUTH_SCHEME = re.compile(r"(?:basic|bearer|digest|token|negotiate|ntlm)[ \t]++", re.IGNORECASE)

_NOT_SECRETS = frozenset({"true", "false", "null", "none"})

_Span = tuple[int, int]


def mask_secrets(text: str) -> str:
    """Return *text* with URL credentials and the values of secret-named keys masked."""
    spans = _url_credentials(text) if "://" in text else []
    lowered = text.lower()
    if _may_name_a_secret(lowered):
        # Both passes read the same text, and what either finds is masked: a URL's user-info
        # may swallow the name of a value ("redis://:a@b password='c@d'"), a value may hold
        # a URL. A URL's own password (redis://password:x@h) is left to the URL pass.
        url_passwords = {start for start, _ in spans}
        named = [span for span in _named_values(text, lowered) if span[0] not in url_passwords]
        spans = _union(spans, named)
    return _replace(text, spans)


def _may_name_a_secret(lowered: str) -> bool:
    # A plain loop: any() over a generator costs a third more, on every log line.
    for marker in _NAME_MARKERS:  # noqa: SIM110
        if marker in lowered:
            return True
    return False


def is_secret_key(key: str) -> bool:
    """Tell whether a setting's name says it holds a secret (``SECRET_KEY``, ``PASSWORD``...)."""
    return bool(_SECRET_NAMES.search(key))


def mask_value(key: str, value: Any, inside_secret: bool = False) -> Any:
    """Mask one setting: whole value for secret-named keys, URL passwords elsewhere.

    Everything under a secret-named key is secret too (``CREDENTIALS: {user: ..., pass:
    ...}``). Booleans and empty values stay readable: they tell only whether one is set.
    """
    secret = inside_secret or is_secret_key(key)
    if isinstance(value, Mapping):
        return {k: mask_value(str(k), v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(key, v, secret) for v in value]
    if secret and value not in (None, "") and not isinstance(value, bool):
        return MASK
    if isinstance(value, str):
        return mask_secrets(value)
    return value


def _union(first: list[_Span], second: list[_Span]) -> list[_Span]:
    """The spans of both lists, in order, overlapping ones merged."""
    merged: list[_Span] = []
    for start, end in sorted(first + second):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _replace(text: str, spans: list[_Span]) -> str:
    """*text* with each of the ordered, disjoint *spans* replaced by the mask."""
    pieces, cursor = [], 0
    for start, end in spans:
        pieces += [text[cursor:start], MASK]
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _url_credentials(text: str) -> list[_Span]:
    """The user-info secrets of every URL in *text*.

    A URL's region runs from its "://" to the end of its line or the next URL, and its
    user-info to the last "@" of that region. With a ":" in the user-info, the part after
    it is the password and the user name stays readable; without one, the user-info is a
    token (``https://TOKEN@host``) and is masked whole, but then it ends where a URL
    parser ends the authority, so an "@" in a path is left alone.
    """
    starts: list[_Span] = []
    line_end = -1
    for match in _URL_START.finditer(text):
        begin, authority = match.span()
        # A "://" after no boundary lies inside the previous URL on its line, if any.
        if begin > line_end or begin == 0 or text[begin - 1] in _URL_BOUNDARY:
            starts.append((begin, authority))
            if authority > line_end:
                line_end = _line_end(text, authority)
    spans: list[_Span] = []
    line_end = -1
    for number, (_, authority) in enumerate(starts):
        if authority > line_end:
            line_end = _line_end(text, authority)
        region_end = line_end
        if number + 1 < len(starts):
            region_end = min(region_end, starts[number + 1][0])
        span = _user_info_secret(text, authority, region_end)
        if span is not None:
            spans.append(span)
    return spans


def _user_info_secret(text: str, start: int, end: int) -> _Span | None:
    """The secret part of the user-info of the URL whose authority begins at *start*."""
    at = text.rfind("@", start, end)
    if at == -1:
        return None
    colon = text.find(":", start, at)
    stop = _AUTHORITY_END.search(text, start, at)
    if colon != -1 and (stop is None or colon < stop.start()):
        span = (colon + 1, at)
    else:
        if stop is not None:
            at = text.rfind("@", start, stop.start())
        span = (start, at)
    if span[0] >= span[1] or text[span[0] : span[1]] == MASK:
        return None
    return span


def _named_values(text: str, lowered: str) -> list[_Span]:
    """The values that follow a secret-looking name and ``=`` or ``:`` (or ``Bearer``).

    Names are searched in *lowered*, whose positions are those of *text* when lower-casing
    kept every character one character (it does for all but a few letters, such as "İ").
    """
    spans: list[_Span] = []
    scanned = 0  # names inside text already looked at (a long identifier, a value) are skipped
    if len(lowered) == len(text):
        names = _LOWER_SECRET_NAMES.finditer(lowered)
    else:
        names = _SECRET_NAMES.finditer(text)
    for match in names:
        if match.start() < scanned:
            continue
        name_end = _NAME_TAIL.match(text, match.end()).end()  # type: ignore[union-attr]
        scanned = name_end
        word = match[0].lower()
        cookies = word == "cookie" and name_end == match.end()  # not COOKIE_SECURE
        span = _value_after(text, name_end, bearer=word == "bearer", cookies=cookies)
        if span is not None:
            scanned = max(span[1], name_end)
            if not _already_masked(text, span):
                spans.append(span)
    return spans


def _already_masked(text: str, span: _Span) -> bool:
    """A value that is a mask already (``password:***@host``, ``Bearer ***",``), or a
    word that tells only whether a secret is set (``COOKIE_SECURE: false``, JSON's ``null``).
    """
    start, end = span
    if text.startswith(MASK, start):
        return end == start + len(MASK) or text[start + len(MASK)] in _AFTER_MASK
    return text[start:end].rstrip(",;)]}").lower() in _NOT_SECRETS


def _value_after(text: str, position: int, bearer: bool, cookies: bool) -> _Span | None:
    """The span of the value that a name ending at *position* introduces, if any.

    A ``Cookie:`` or ``Set-Cookie:`` header's unquoted value runs to the end of its line:
    it holds several ``name=value`` pairs, any of which may be a session.
    """
    quoted_key = text.startswith(('"', "'"), position)
    if quoted_key:  # the closing quote of a quoted key
        position += 1
    blank_end = _BLANKS.match(text, position).end()  # type: ignore[union-attr]
    pair = _PAIR_VALUE.match(text, blank_end) if quoted_key else None
    if pair is not None:  # a (name, value) pair's repr: ASGI headers, list(dict.items())
        return _value_at(text, pair.end())
    if text.startswith(("=", ":"), blank_end):
        position = _BLANKS.match(text, blank_end + 1).end()  # type: ignore[union-attr]
    elif bearer and blank_end > position:
        position = blank_end
    else:
        return None
    scheme = _AUTH_SCHEME.match(text, position)
    if scheme is not None:
        return _to_line_end(text, scheme.end())
    if (
        cookies
        and text.startswith(":", blank_end)
        and text[position : position + 1] not in _OPENERS
    ):
        return _to_line_end(text, position)
    return _value_at(text, position)


def _value_at(text: str, start: int) -> _Span | None:
    """A bracketed or quoted value's inside, else a run up to a blank, a quote or "&"."""
    bracket = _BRACKETED_VALUE.get(text[start : start + 1])
    if bracket is not None:  # a list or mapping: its inside on this line
        end = bracket.match(text, start + 1).end()  # type: ignore[union-attr]
        return (start + 1, end) if end > start + 1 else None
    escaped = text.startswith("\\", start)
    quote = text[start + escaped : start + escaped + 1]
    if quote not in _QUOTED_VALUE:
        end = _UNQUOTED_VALUE.match(text, start).end()  # type: ignore[union-attr]
        return (start, end) if end > start else None
    inside = start + escaped + 1
    closing = _closing_quote(text, inside, quote, escaped)
    if closing is None:  # not closed on its line: mask the rest of the line
        return _to_line_end(text, inside)
    return (inside, closing) if closing > inside else None


def _closing_quote(text: str, position: int, quote: str, escaped: bool) -> int | None:
    """Where a quoted value ends: at its quote (``\\"`` inside ``\\"...\\"``) followed by a
    delimiter. A quote followed by more text is one nobody escaped, so it is passed over.
    """
    closing = "\\" + quote if escaped else quote
    inside = (_ESCAPED_QUOTED_VALUE if escaped else _QUOTED_VALUE)[quote]
    after = _AFTER_ESCAPED_QUOTE if escaped else _AFTER_QUOTE
    while True:
        end = inside.match(text, position).end()  # type: ignore[union-attr]
        if not text.startswith(closing, end):  # the line or the text ended first
            return None
        following = end + len(closing)
        if following == len(text) or text[following] == "\n" or text[following] in after:
            return end
        position = following


def _line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end == -1 else end


def _to_line_end(text: str, start: int) -> _Span | None:
    end = _line_end(text, start)
    return (start, end) if end > start else None
