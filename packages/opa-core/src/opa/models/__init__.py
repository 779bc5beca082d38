"""opa-stack's ``opa.models`` is not in opa: importing it says what replaces it."""

from opa._legacy import removed

raise removed(
    "opa.models",
    "opa ships no data models; define your pydantic models in your own plugin",
)
