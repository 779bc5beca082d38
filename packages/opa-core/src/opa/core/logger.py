"""Deprecated: ``opa.core.logger``, where opa-stack kept ``log``; ``from opa import log`` now."""

from opa import _log
from opa._legacy import alias_module_getattr

__getattr__ = alias_module_getattr(__name__, moved={"log": _log.log}, gone={})
