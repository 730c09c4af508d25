"""`python -m devstack`: migrate, then run the gateway and the three functions until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from common.config import Settings
from common.storage.db import migrate
from devstack.stack import ROOT, Stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".run")
    args = parser.parse_args()

    settings = Settings.from_env()
    migrate(settings.database_url)
    stack = Stack(run_dir=args.run_dir, env={"DATABASE_URL": settings.database_url}, port=args.port)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stack.start()
    gateway = "nginx" if stack.use_nginx else "the built-in dispatcher (nginx is not installed)"
    print(
        f"serving on {stack.url} through {gateway}; logs in {args.run_dir}; Ctrl-C stops",
        flush=True,
    )
    try:
        while not stopped.wait(1):
            for name, process in stack.processes.items():
                if process.poll() is not None:
                    raise SystemExit(
                        f"{name} exited with status {process.returncode}; "
                        f"see {args.run_dir / (name + '.log')}"
                    )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
