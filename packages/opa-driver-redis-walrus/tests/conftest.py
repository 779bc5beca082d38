pytest_plugins = ["opa.testing._fixtures", "opa_redis_common.testing"]
