"""What each process of ``opa run --workers N`` serves: ``opa.main``'s app, in a process
whose uvicorn log holds back the traceback of each request cut at ``SHUTDOWN_GRACE``, as
``opa run`` does in a single process (uvicorn's one line still counts them), and which
leaves ``METRICS_PORT`` to the supervisor, which serves it once for every worker."""

from opa._metrics_port import leave_port_to_supervisor
from opa._serve import hold_back_cut_requests
from opa.main import app

hold_back_cut_requests()
leave_port_to_supervisor()  # read when the app starts, after this import

__all__ = ["app"]
