"""The whole service on loopback without Docker: three gunicorn functions behind nginx.

`make run`, the end-to-end tests and the benchmark all start the service through this module, with
the same gateway template and the same `bin/run-function` command the images use.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from common.config import DEFAULTS, declared
from devstack.gateway import DERIVED, TEMPLATE, derived_gateway_values, render
from devstack.routes import FUNCTIONS

ROOT = Path(__file__).resolve().parent.parent
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - names it, binds nothing


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], deadline: float, host: str = "127.0.0.1"
) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            name = Path(str(process.args[0] if isinstance(process.args, list) else process.args))
            raise RuntimeError(f"{name.name} exited with status {process.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@dataclass
class Stack:
    """Processes of one running stack; `start()` returns once the gateway accepts connections."""

    run_dir: Path
    env: Mapping[str, str]
    port: int = 8080
    host: str = "127.0.0.1"
    """Where the gateway listens: loopback unless asked (`make run HOST=0.0.0.0`)."""
    use_nginx: bool = field(default_factory=lambda: shutil.which("nginx") is not None)
    root: Path = ROOT
    """The checkout whose code, gateway template and web page the stack runs (the benchmark
    runs an older revision's from a git worktree)."""
    function_ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)
    _cleanup: list[Path] = field(default_factory=list)
    _record_cache_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def max_upload_bytes(self) -> int:
        return int(
            {**os.environ, **self.env}.get("MAX_UPLOAD_BYTES") or DEFAULTS["MAX_UPLOAD_BYTES"]
        )

    @property
    def public_base_url(self) -> str | None:
        """PUBLIC_BASE_URL as the functions get it (None: links follow the request's Host)."""
        return {**os.environ, **self.env}.get("PUBLIC_BASE_URL") or None

    def start(self, timeout: float = 30.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        try:
            if self.use_nginx:
                for name in FUNCTIONS:
                    self.start_function(name)
                self.start_nginx()
            else:
                self._start_dispatcher()
            for name, process in self.processes.items():
                gateway = name in ("nginx", "dispatcher")
                port = self.port if gateway else self.function_ports[name]
                wait_for_port(port, process, deadline, self._reachable if gateway else "127.0.0.1")
        except BaseException:
            self.stop()
            raise

    @property
    def _reachable(self) -> str:
        """Where this machine reaches the gateway."""
        return "127.0.0.1" if self.host == EVERY_INTERFACE else self.host

    def wait_gateway(self, timeout: float = 10.0) -> None:
        """Return once the gateway started alone (start_nginx) accepts connections."""
        wait_for_port(
            self.port, self.processes["nginx"], time.monotonic() + timeout, self._reachable
        )

    def start_function(self, name: str) -> None:
        """(Re)start one function on its port (the same port when it ran before)."""
        port = self.function_ports.setdefault(name, free_port())
        self._spawn(
            name, [str(self.root / "bin" / "run-function"), name], {"BIND": f"127.0.0.1:{port}"}
        )

    def stop_function(self, name: str, timeout: float = 30.0) -> None:
        """Stop one function; return once nothing listens on its port (gunicorn's workers, which
        share the master's socket, may outlive the master by a moment)."""
        _terminate(self.processes.pop(name))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.function_ports[name]), 0.5):
                    pass
            except OSError:
                return
            time.sleep(0.05)
        raise TimeoutError(f"{name} still listens on port {self.function_ports[name]}")

    def wait_function(self, name: str, timeout: float = 20.0) -> None:
        """Return once the (re)started function accepts connections."""
        wait_for_port(self.function_ports[name], self.processes[name], time.monotonic() + timeout)

    def start_nginx(self) -> None:
        """nginx alone, in front of whatever listens on `function_ports`."""
        # nginx's workers (`nobody` when started as root) write request bodies below its run
        # directory, so that directory gets a path they can traverse, whatever run_dir's parents.
        nginx_dir = self._traversable_dir("audiosvc-nginx-")
        if self._record_cache_dir is None:
            self._record_cache_dir = self._traversable_dir("audiosvc-record-cache-")
        env = {**os.environ, **self.env}
        nginx_conf = self.root / TEMPLATE.relative_to(ROOT)
        config = render(
            {
                "NGINX_PORT": f"{self.host}:{self.port}",
                "NGINX_RUN_DIR": str(nginx_dir),
                "RECORD_CACHE_DIR": str(self._record_cache_dir),
                "NGINX_RESOLVER": "127.0.0.1",
                "STATIC_ROOT": str(self.root / "nginx" / "web"),
                **{name: env.get(name) or default for name, default in declared("gateway").items()},
                **derived_gateway_values(env, self.root / DERIVED.relative_to(ROOT)),
                **{
                    f"{name.upper()}_UPSTREAM": f"127.0.0.1:{self.function_ports[name]}"
                    for name in FUNCTIONS
                },
            },
            nginx_conf,
        )
        config_path = self.run_dir / "nginx.conf"
        config_path.write_text(config)
        self._spawn(
            "nginx",
            [
                "nginx",
                "-e",
                "stderr",
                "-p",
                str(self.run_dir),
                "-c",
                str(config_path),
                "-g",
                "daemon off;",
            ],
            {},
        )

    def restart_gateway(self) -> None:
        """Stop nginx and start it again; its record cache stays (the directory outlives it, as a
        volume does in compose)."""
        _terminate(self.processes.pop("nginx"))
        self.start_nginx()
        self.wait_gateway()

    @property
    def record_cache_dir(self) -> Path | None:
        """Where the gateway keeps its record cache (None before nginx first started)."""
        return self._record_cache_dir

    def _traversable_dir(self, prefix: str) -> Path:
        """A new directory, removed by stop(), that nginx's workers can reach whatever run_dir's
        parents are."""
        directory = Path(tempfile.mkdtemp(prefix=prefix))
        directory.chmod(0o755)
        self._cleanup.append(directory)
        return directory

    def _start_dispatcher(self) -> None:
        self._spawn(
            "dispatcher",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "python:deploy.gunicorn_conf",
                "devstack.dispatcher:get_app()",
            ],
            {"BIND": f"{self.host}:{self.port}"},
        )

    def _spawn(self, name: str, args: list[str], extra_env: Mapping[str, str]) -> None:
        bin_dir = str(Path(sys.executable).parent)
        env = {
            **os.environ,
            **self.env,
            **extra_env,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            # The root's packages before the installed (editable) ones.
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(self.root), os.environ.get("PYTHONPATH")])
            ),
        }
        log = (self.run_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        self.processes[name] = subprocess.Popen(
            args,
            cwd=self.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        for name in list(self.processes):
            _terminate(self.processes.pop(name))
        for log in self._logs:
            log.close()
        self._logs.clear()
        for directory in self._cleanup:
            shutil.rmtree(directory, ignore_errors=True)
        self._cleanup.clear()
        self._record_cache_dir = None

    def log(self, name: str) -> str:
        return (self.run_dir / f"{name}.log").read_text(errors="replace")

    def function_get(self, name: str, path: str) -> str:
        """GET a function's own route (health, metrics), bypassing the gateway."""
        url = f"http://127.0.0.1:{self.function_ports[name]}{path}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            return str(answer.read().decode())


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
