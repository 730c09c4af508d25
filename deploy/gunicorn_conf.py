"""Gunicorn settings of every function: `gunicorn -c python:deploy.gunicorn_conf`.

add_record is CPU-bound through its ffmpeg children, about one worker per core; but the gateway
streams upload bodies through as they arrive, so each upload holds a thread for as long as its
client takes to send it: 64 threads per worker, most of them waiting on a client (a waiting thread
costs little memory), and at most CONVERSION_MEMORY_BYTES / CONVERSION_FOOTPRINT_BYTES (32) of the
instance's threads running an ffmpeg (common/audio/ffmpeg.py's ConversionSlots, shared by the
workers). A connection that sends headers and no body holds its thread for BODY_START_TIMEOUT_S
(functions/add_record/pace.py), and one address holds at most UPLOAD_CONN_LIMIT of them.
create_user and get_record are I/O-bound: threads per worker. gthread workers keep connections from
nginx alive between requests, and report to the arbiter from their main loop, so a long upload in a
thread never trips the worker timeout. Each value is a declared setting (common/config.py); unset or
empty means the default.
"""

import multiprocessing
import os
import shutil
import tempfile
from typing import Any

from common.config import declared
from common.spool import owned_prefix, sweep

_SETTINGS = {
    name: os.environ.get(name) or default for name, default in declared("gunicorn").items()
}
_FUNCTION = os.environ.get("FUNCTION", "")
_CPU_BOUND = _FUNCTION == "add_record"
_METRICS_PREFIX = "audiosvc-metrics-"

bind = os.environ.get("BIND") or "0.0.0.0:8000"
worker_class = "gthread"
workers = int(_SETTINGS["GUNICORN_WORKERS"] or (multiprocessing.cpu_count() if _CPU_BOUND else 2))
threads = int(_SETTINGS["GUNICORN_THREADS"] or (64 if _CPU_BOUND else 8))
timeout = int(_SETTINGS["GUNICORN_TIMEOUT"])
# add_record takes a connection only when a thread is free for it, so that an upload never queues
# inside one busy worker while another has threads to spare (this also means no idle keep-alive
# connections are held by add_record).
worker_connections = threads if _CPU_BOUND else 1000
graceful_timeout = 30
# nginx bounds request lines and headers (8 KiB, answering 414/400 in JSON); a lower limit here
# would answer the few requests in between with gunicorn's own HTML error page.
limit_request_line = 0
limit_request_field_size = 0
keepalive = int(_SETTINGS["GUNICORN_KEEPALIVE"])
accesslog = None
errorlog = "-"
loglevel = _SETTINGS["LOG_LEVEL"]
proc_name = f"audiosvc-{_FUNCTION or 'function'}"
wsgi_app = f"functions.{_FUNCTION}.app:get_app()" if _FUNCTION else None
control_socket_disable = True


def on_starting(server: Any) -> None:
    """Give the workers an empty directory for prometheus_client's multiprocess metrics.

    Without PROMETHEUS_MULTIPROC_DIR, a directory of this master's own is made in the temp dir and
    removed at exit; those of masters that died without exiting are swept here (common/spool.py).
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)
        return
    sweep(tempfile.gettempdir(), _METRICS_PREFIX)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=owned_prefix(_METRICS_PREFIX))


def on_exit(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if os.path.basename(directory).startswith(owned_prefix(_METRICS_PREFIX)):
        shutil.rmtree(directory, ignore_errors=True)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess  # noqa: PLC0415 - the master never imports it early

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
