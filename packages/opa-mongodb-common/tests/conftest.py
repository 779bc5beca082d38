pytest_plugins = ["opa.testing._fixtures"]
