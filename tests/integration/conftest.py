"""Cross-package tests: every package of the monorepo installed together (`nox -s integration`)."""

pytest_plugins = ["opa.testing.fixtures"]
