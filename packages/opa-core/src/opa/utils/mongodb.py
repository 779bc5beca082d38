"""opa-stack's ``opa.utils.mongodb`` is not in opa: importing it says what replaces it."""

from opa._legacy import removed

raise removed(
    "opa.utils.mongodb (get_database)",
    "configure a MongoDB component and take its database from the client, as in "
    "get_instance('mongodb').get_default_database() or get_instance('mongodb')['opa']",
)
