"""Signed, expiring tokens for plugins, keyed by the app's ``SECRET_KEY``.

``signer("password-reset").sign("alice")`` gives a token that ``unsign`` turns back into
``"alice"`` only if nobody changed it, it was made for the same purpose, and (given
``max_age``) it is recent enough. Each purpose signs with a key of its own derived from
``SECRET_KEY``, so a token made for one purpose is refused by every other.

This is the feature that needs ``SECRET_KEY``: outside the ``dev`` environment an empty or
short key is refused when a signer is asked for, so a plugin that builds one at import or
set-up time stops the app from starting. In ``dev`` an empty key is replaced by a random
one for the process, with a warning (tokens then die with the process).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time

from opa._errors import BadSignature, ConfigError, SignatureExpired
from opa._log import log
from opa._runtime import config

MIN_KEY_LENGTH = 32
MAX_VALUE_BYTES = 4096
# A token is three base64url/decimal parts; anything longer than the largest value's
# token is refused before any decoding work.
MAX_TOKEN_LENGTH = 2 * MAX_VALUE_BYTES
_SEPARATOR = "."
_DERIVATION = b"opa.signing.v1\x00"

_dev_key = secrets.token_bytes(32)  # per process, used only for an empty key in dev
_warned = False  # the dev warning is given once per process, as the random key is made

__all__ = ["BadSignature", "SignatureExpired", "Signer", "signer"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _now() -> float:
    return time.time()


class Signer:
    """Signs and checks values for one purpose; build it with :func:`signer`."""

    __slots__ = ("_key", "purpose")

    def __init__(self, purpose: str, key: bytes) -> None:
        self.purpose = purpose
        self._key = hmac.new(key, _DERIVATION + purpose.encode(), hashlib.sha256).digest()

    def __repr__(self) -> str:
        return f"Signer(purpose={self.purpose!r})"  # never the key

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def sign(self, value: str) -> str:
        """A URL-safe token holding *value* and the time it was made, signed."""
        if not isinstance(value, str):
            kind = type(value).__name__
            raise TypeError(f"signer {self.purpose!r}: sign() takes a str, not {kind}")
        data = value.encode("utf-8")
        if len(data) > MAX_VALUE_BYTES:
            raise ValueError(
                f"signer {self.purpose!r}: the value is {len(data)} bytes; "
                f"at most {MAX_VALUE_BYTES} can be signed"
            )
        payload = f"{_b64(data)}{_SEPARATOR}{int(_now())}"
        return f"{payload}{_SEPARATOR}{self._mac(payload)}"

    def unsign(self, token: str, max_age: float | None = None) -> str:
        """The value inside *token*; :class:`BadSignature` or :class:`SignatureExpired` if not.

        *max_age* is in seconds; None accepts a token of any age.
        """
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise BadSignature(f"signer {self.purpose!r}: not a token (wrong type or too long)")
        payload, _, mac = token.rpartition(_SEPARATOR)
        if not payload or not token.isascii():
            raise BadSignature(f"signer {self.purpose!r}: not a token (malformed)")
        if not hmac.compare_digest(mac, self._mac(payload)):
            raise BadSignature(
                f"signer {self.purpose!r}: the signature does not match "
                "(altered, made for another purpose, or with another SECRET_KEY)"
            )
        encoded, _, stamp = payload.partition(_SEPARATOR)
        try:
            value = _unb64(encoded).decode("utf-8")
            made = int(stamp)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            # Only reachable with the right key: a token opa did not make.
            raise BadSignature(f"signer {self.purpose!r}: not a token (malformed)") from None
        if max_age is not None:
            age = _now() - made
            if age > max_age:
                raise SignatureExpired(
                    f"signer {self.purpose!r}: the token is {age:.0f} s old; "
                    f"at most {max_age:g} s is accepted"
                )
        return value


def _secret_key() -> bytes:
    """SECRET_KEY of the running app (or of the environment's settings, as ``opa.config``
    reads them before an app runs), refused outside dev when empty or short."""
    # A key that is not a string was refused when the settings loaded; a null one is empty.
    raw: str = config.get("SECRET_KEY") or ""
    env = str(config.current_env).lower()
    how = (
        f"set a random one of at least {MIN_KEY_LENGTH} characters in OPA_SECRET_KEY "
        "or the settings folder, e.g. from: "
        'python -c "import secrets; print(secrets.token_urlsafe(32))"'
    )
    if raw:
        if env != "dev" and len(raw) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"SECRET_KEY is shorter than {MIN_KEY_LENGTH} characters in the {env!r} "
                f"environment, and signing needs it: {how}"
            )
        return raw.encode("utf-8")
    if env != "dev":
        raise ConfigError(
            f"SECRET_KEY is empty in the {env!r} environment, and signing needs it: {how}"
        )
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "SECRET_KEY is empty: signing with a random key for this process only "
            "(its tokens stop working on restart); outside dev an empty key is refused"
        )
    return _dev_key


def signer(purpose: str) -> Signer:
    """A :class:`Signer` for *purpose* (e.g. ``"password-reset"``), keyed by ``SECRET_KEY``.

    Raises :class:`~opa._errors.ConfigError` outside ``dev`` when ``SECRET_KEY`` is empty or
    shorter than 32 characters; call it at import or in a ``Setup`` to fail at start-up.
    """
    if not isinstance(purpose, str) or not purpose.strip():
        raise ValueError(f"signer(): purpose must be a non-empty string, got {purpose!r}")
    return Signer(purpose, _secret_key())
