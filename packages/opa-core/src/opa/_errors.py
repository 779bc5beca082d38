"""The project's own exception types.

Every message names the component, plugin, hook or setting at fault and, where
there is one, the fix. Callers can catch :class:`OpaError` to handle them all.
"""

from __future__ import annotations


class OpaError(Exception):
    """Base class for every error opa raises on purpose."""


class ConfigError(OpaError):
    """A setting has a value opa cannot use."""


class PluginError(OpaError):
    """A plugin could not be found, read, filtered or imported."""


class HookError(OpaError):
    """Hook definitions and implementations do not fit together."""


class DriverError(OpaError):
    """A driver is missing, malformed, clashing or built for another contract."""


class ComponentError(OpaError):
    """An optional component could not be configured, connected or validated."""


class OptionsError(ComponentError):
    """A component's ``OPTS`` do not match what its driver accepts."""


class ComponentUnavailableError(ComponentError, LookupError):
    """A component was asked for but is not connected (skipped, disabled or failed).

    FastAPI apps built by opa answer it with 503.
    """


class BadSignature(OpaError):
    """A signed token was altered, truncated, or made for another purpose or key."""


class SignatureExpired(BadSignature):
    """A signed token is genuine but older than the ``max_age`` asked for."""


class DriverNotInstalledError(DriverError, ImportError):
    """A driver's distribution is not installed; the message names it."""


class RemovedNameError(OpaError, ImportError):
    """An opa-stack name opa does not provide; the message says what replaces it.

    An ImportError, so ``from opa.utils import host_exists`` reports this message rather
    than Python's generic "cannot import name".
    """
