"""`python -m devstack`: migrate, then run the gateway and the three functions until Ctrl-C.

Every expected mistake (a psycopg2 URL, a database not created yet, a busy port, a function that
does not start) ends in one line that says what to do, before or instead of "serving".
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import threading
from pathlib import Path

from common.config import ConfigError, Settings
from devstack.preflight import database_exists, migrated, port_is_free
from devstack.stack import ROOT, Stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument(
        "--host",
        default=os.environ.get("LISTEN_ADDRESS") or "127.0.0.1",
        help="the address the gateway listens on (0.0.0.0: every interface)",
    )
    parser.add_argument("--run-dir", type=Path, help="logs and nginx.conf (.run/<port>)")
    args = parser.parse_args()
    run_dir: Path = args.run_dir or ROOT / ".run" / str(args.port)

    try:
        settings = Settings.from_env()
    except ConfigError as error:
        raise SystemExit(str(error)) from None
    port_is_free(args.host, args.port)
    if created := database_exists(settings.database_url):
        print(created, flush=True)
    migrated(settings.database_url)
    stack = Stack(
        run_dir=run_dir,
        env={"DATABASE_URL": settings.database_url},
        port=args.port,
        host=args.host,
    )
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        stack.start()
    except subprocess.CalledProcessError as failed:  # nginx/derived.envsh refused a setting
        said = (failed.stderr or "").strip().splitlines()
        raise SystemExit(said[-1] if said else f"the gateway's settings: {failed}") from None
    except (RuntimeError, TimeoutError) as error:
        raise SystemExit(f"the stack did not start: {error}; see the logs in {run_dir}") from None
    gateway = "nginx" if stack.use_nginx else "the built-in dispatcher (nginx is not installed)"
    shown = stack.url if args.host == "127.0.0.1" else f"http://{args.host}:{args.port}"
    print(f"serving on {shown} through {gateway}; logs in {run_dir}; Ctrl-C stops", flush=True)
    try:
        while not stopped.wait(1):
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    raise SystemExit(
                        f"{name} exited with status {process.returncode}; "
                        f"see {run_dir / (name + '.log')}"
                    )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
