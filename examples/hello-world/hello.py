"""The smallest opa plugin: one route."""

from opa import get_router

router = get_router()


@router.get("/hello")
def hello() -> str:
    return "Hello, world!"
