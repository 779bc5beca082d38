"""A driver instance built outside any app, its options checked as configuration's are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from opa._component_config import ComponentSpec, validate_options
from opa._drivers import Driver

D = TypeVar("D", bound=Driver)


def make_driver(driver_class: type[D], opts: Mapping[str, Any], component: str = "test") -> D:
    """*driver_class* for component *component*, its *opts* validated by its ``Options`` model.

    Bad options raise the :class:`opa.OptionsError` an app's start-up would, naming the
    component and the option, so a driver's tests can check the messages users will read.
    """
    spec = ComponentSpec(component, "yes", driver_class.name or driver_class.__name__, dict(opts))
    return driver_class(component, validate_options(spec, driver_class.Options))
