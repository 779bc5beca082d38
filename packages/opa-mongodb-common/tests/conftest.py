pytest_plugins = ["opa.testing.fixtures"]
