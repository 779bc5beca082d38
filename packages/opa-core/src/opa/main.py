"""``uvicorn opa.main:app`` serves the app configured by the environment and settings folder.

A bad setting (or any other opa error while building the app) ends the process with one
``error: ...`` line and status 1, not uvicorn's traceback of the import. uvicorn's own
``--log-level`` sets the app's ``LOG_LEVEL`` too, as it did in opa-stack; ``celery -A opa.main``,
opa-stack's worker command, is refused in one line naming ``opa worker``.
"""

import sys

from opa._app import create_app
from opa._entry_errors import exit_on_opa_error
from opa._old_settings import refuse_celery_on_the_api, uvicorn_log_level

with exit_on_opa_error():
    refuse_celery_on_the_api(sys.argv)
    level = uvicorn_log_level(sys.argv)
    app = create_app({"LOG_LEVEL": level} if level else None)
