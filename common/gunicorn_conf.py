"""Gunicorn settings of every function: `gunicorn -c python:common.gunicorn_conf ...`.

add_record is CPU-bound through its ffmpeg child: one conversion per worker, about one worker per
core, a timeout that covers the longest allowed conversion. create_user and get_record are
I/O-bound: threads per worker. gthread workers keep connections from nginx alive between requests.
Each value can be overridden by an environment variable (unset or empty: the default).
"""

import multiprocessing
import os
import shutil
import tempfile
from typing import Any


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


_FUNCTION = os.environ.get("FUNCTION", "")
_CORES = multiprocessing.cpu_count()
_CPU_BOUND = _FUNCTION == "add_record"
_CONVERSION_BUDGET_S = int(float(os.environ.get("FFMPEG_TIMEOUT_S") or "900")) + 60

bind = os.environ.get("BIND") or "0.0.0.0:8000"
worker_class = "gthread"
workers = _env_int("GUNICORN_WORKERS", _CORES if _CPU_BOUND else 2)
threads = _env_int("GUNICORN_THREADS", 1 if _CPU_BOUND else 8)
timeout = _env_int("GUNICORN_TIMEOUT", _CONVERSION_BUDGET_S if _CPU_BOUND else 60)
# A CPU-bound worker takes a connection only when a thread is free for it, so that a request never
# queues behind a conversion inside one worker while another worker idles (this also means no
# idle keep-alive connections are held by add_record).
worker_connections = threads if _CPU_BOUND else 1000
graceful_timeout = 30
# nginx bounds request lines and headers (8 KiB, answering 414/400 in JSON); a lower limit here
# would answer the few requests in between with gunicorn's own HTML error page.
limit_request_line = 0
limit_request_field_size = 0
keepalive = _env_int("GUNICORN_KEEPALIVE", 75)
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL") or "info"
proc_name = f"audiosvc-{_FUNCTION or 'function'}"
wsgi_app = f"functions.{_FUNCTION}.app:get_app()" if _FUNCTION else None
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Give the workers an empty directory for prometheus_client's multiprocess metrics."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=f"{proc_name}-metrics-")


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess  # noqa: PLC0415 - the master never imports it early

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
