"""Demo plugin, loaded in the ``dev`` environment: a route and a hook with a default."""

from opa import Hook, HookDefinition, call_hook, get_router

router = get_router(prefix="/demo", tags=["demo"])


class Greeting(HookDefinition):
    """How the demo greets; a plugin can override it with a higher-order hook."""

    name = "opa.demo.greeting"


class DefaultGreeting(Hook):
    name = "opa.demo.greeting"
    order = -1

    def run(self, who: str) -> str:
        return f"Hello, {who}!"


@router.get("/hello")
def hello(who: str = "world") -> str:
    return str(call_hook("opa.demo.greeting", who))
