pytest_plugins = ["opa.testing.fixtures", "opa_redis_common.testing"]
