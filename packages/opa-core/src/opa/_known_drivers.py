"""Which first-party distribution adds a command opa-core does not have.

Placeholder: the generated module (from packages/*/pyproject.toml) replaces this one.
"""

COMMANDS: dict[str, str] = {"worker": "opa-driver-celery"}
"""``opa`` command name → the distribution that adds it."""


def command_hint(command: str) -> str:
    """The install line for the distribution that adds ``opa <command>``."""
    return f"pip install {COMMANDS[command]}"
