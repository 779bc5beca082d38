"""opa-stack's package ``opa.core``: its modules ``plugin`` and ``logger`` are deprecated
aliases of names ``opa`` exports."""
