"""``uvicorn opa.main:app`` serves the app configured by the environment and settings folder.

A bad setting (or any other opa error while building the app) ends the process with one
``error: ...`` line and status 1, not uvicorn's traceback of the import.
"""

from opa._app import create_app
from opa._entry_errors import exit_on_opa_error

with exit_on_opa_error():
    app = create_app()
