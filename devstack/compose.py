"""The compose stack from the host: `make compose-up`, `make compose-down`, `make compose-test`.

`up` brings the stack described by docker-compose.yml and `.env` up on GATEWAY_PORT and returns once
every service is healthy; `down` removes its containers and keeps its data volume; `test` starts a
stack of its own (own project name, free ports, an env file of its own), runs the gateway's
end-to-end test modules against it through GATEWAY_URL, then the compose-only checks in
tests/compose/, and removes it with its volumes on every exit path.

A machine without a running engine gets one from docker/engine/ensure, and the official base images
are replaced by local stand-ins only where they cannot be pulled (docker/standins/build).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.routes import FUNCTIONS
from devstack.stack import ROOT, free_port

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
LONG_RUNNING = ("postgres", *FUNCTIONS, "nginx")
"""Services that stay up (and have a healthcheck); `migrate` runs once and exits."""

END_TO_END_MODULES = (
    "tests/end_to_end/test_gateway.py",
    "tests/end_to_end/test_large_upload.py",
    "tests/end_to_end/test_record_cache.py",
    "tests/end_to_end/test_tus_clients.py",
    "tests/browser/test_web_page.py",
    "tests/fuzz/test_schema_fuzz.py",
)
"""The gateway's end-to-end tests: the same modules that run against the local stack."""

RESOLVE_EVERY_S = 2.0
"""Long enough for nginx to see a container come or go (its resolver re-resolves every second)."""

TEST_SETTINGS = {
    # The 110 MB upload of test_large_upload fits; test_gateway's 413 sends one byte more.
    "MAX_UPLOAD_BYTES": str(128 << 20),
    # Lifted as an operator would for a trusted client: the suite sends many requests on purpose.
    "USER_RATE_LIMIT": "100000r/s",
    "USER_RATE_BURST": "1000",
    "UPLOAD_RATE_LIMIT": "100000r/s",
    "UPLOAD_RATE_BURST": "1000",
    "READ_CONN_LIMIT": "1000",
    "UPLOAD_CONN_LIMIT": "1000",
    # Small enough that tests/end_to_end/test_record_cache.py fills it and sees it evict.
    "RECORD_CACHE_BYTES": str(8 << 20),
}


class ComposeError(RuntimeError):
    pass


@dataclass
class Compose:
    """`docker compose` for one project, with its env file and variables from the shell."""

    project: str | None = None
    env_file: Path | None = None
    environ: Mapping[str, str] = field(default_factory=dict)

    def command(self, *args: str) -> list[str]:
        command = [
            "docker",
            "compose",
            "--project-directory",
            str(ROOT),
            "--file",
            str(COMPOSE_FILE),
        ]
        if self.project:
            command += ["--project-name", self.project]
        if self.env_file:
            command += ["--env-file", str(self.env_file)]
        return [*command, *args]

    @property
    def env(self) -> dict[str, str]:
        """What `docker compose` typed by a person would see to address this same project."""
        env = {**os.environ, **self.environ}
        if self.project:
            env["COMPOSE_PROJECT_NAME"] = self.project
        if self.env_file:
            env["COMPOSE_ENV_FILES"] = str(self.env_file)
        env["COMPOSE_FILE"] = str(COMPOSE_FILE)
        return env

    def run(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.command(*args),
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise ComposeError(
                f"docker compose {' '.join(args)} exited with {result.returncode}:\n"
                f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
            )
        return result

    def containers(self, service: str | None = None) -> list[dict[str, Any]]:
        """`docker compose ps --all` of the project (or one service) as dicts."""
        args = ["ps", "--all", "--format", "json"]
        output = self.run(*args, *([service] if service else [])).stdout.strip()
        if not output:
            return []
        if output.startswith("["):
            return list(json.loads(output))
        return [json.loads(line) for line in output.splitlines()]

    def inspect(self, container: str) -> dict[str, Any]:
        result = subprocess.run(
            ["docker", "inspect", container], capture_output=True, text=True, check=True
        )
        return dict(json.loads(result.stdout)[0])

    def wait_healthy(self, services: Sequence[str] = LONG_RUNNING, timeout: float = 180) -> None:
        """Return once every container of `services` is running and healthy."""
        deadline = time.monotonic() + timeout
        last: list[str] = []
        while time.monotonic() < deadline:
            migrate = self.containers("migrate") if "migrate" not in services else []
            for container in migrate:
                if container["State"] == "exited" and container.get("ExitCode", 0) != 0:
                    raise ComposeError(f"migrate failed:\n{self.logs('migrate')}")
            last = [
                f"{container['Name']}: {container['State']} {container.get('Health', '')}"
                for service in services
                for container in self.containers(service) or [{"Name": service, "State": "none"}]
                if container["State"] != "running" or container.get("Health") != "healthy"
            ]
            if not last:
                return
            time.sleep(1)
        raise ComposeError(f"not healthy after {timeout:.0f} s: {', '.join(last)}")

    def logs(self, service: str) -> str:
        return self.run("logs", "--no-color", "--no-log-prefix", service).stdout

    def up(self, *args: str) -> None:
        """`up --detach` with `args`, then wait until every service is healthy."""
        try:
            self.run("up", "--detach", *args, timeout=1200)
        except ComposeError as error:
            migrate = self.logs("migrate").strip().splitlines()[-5:]
            raise ComposeError(f"{error}\nthe migrate job said:\n" + "\n".join(migrate)) from None
        self.wait_healthy()


@dataclass
class ComposeStack:
    """A running compose stack, seen by the end-to-end tests like devstack's local Stack."""

    compose: Compose
    port: int
    max_upload_bytes: int

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ComposeStack | None:
        """The stack `make compose-test` started, or None outside it."""
        project = environ.get("AUDIOSVC_COMPOSE_PROJECT")
        if not project:
            return None
        return cls.of(Compose(project=project, env_file=Path(environ["AUDIOSVC_COMPOSE_ENV_FILE"])))

    @classmethod
    def of(cls, compose: Compose) -> ComposeStack:
        """The stack of a project whose env file sets GATEWAY_PORT and MAX_UPLOAD_BYTES."""
        assert compose.env_file is not None  # noqa: S101 - a programming error, not input
        settings = read_env_file(compose.env_file)
        return cls(
            compose=compose,
            port=int(settings["GATEWAY_PORT"]),
            max_upload_bytes=int(settings["MAX_UPLOAD_BYTES"]),
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def public_base_url(self) -> str:
        """The base of the links the stack hands out: the env file's PUBLIC_BASE_URL, or
        docker-compose.yml's default for it."""
        assert self.compose.env_file is not None  # noqa: S101 - set by `of`
        value = read_env_file(self.compose.env_file).get("PUBLIC_BASE_URL")
        return value or f"http://localhost:{self.port}"

    def stop_function(self, name: str) -> None:
        self.compose.run("stop", name)
        time.sleep(RESOLVE_EVERY_S)

    def start_function(self, name: str) -> None:
        self.compose.run("start", name)

    def wait_function(self, name: str, timeout: float = 60.0) -> None:
        self.compose.wait_healthy([name], timeout)
        time.sleep(RESOLVE_EVERY_S)

    def restart_gateway(self) -> None:
        """Restart the nginx container; its record cache is a volume, and stays."""
        self.compose.run("restart", "nginx")
        self.compose.wait_healthy(["nginx"])

    def log(self, name: str) -> str:
        return self.compose.logs(name)

    def function_get(self, name: str, path: str) -> str:
        """GET a function's own route (not published: from inside its container)."""
        fetch = (
            "import sys, urllib.request; "
            "sys.stdout.write(urllib.request.urlopen("
            "'http://127.0.0.1:8000' + sys.argv[1], timeout=10).read().decode())"
        )
        return self.compose.run("exec", "-T", name, "python", "-c", fetch, path).stdout


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose env file (comments and blank lines skipped)."""
    settings = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
    return settings


def write_env_file(path: Path, overrides: Mapping[str, str]) -> None:
    """`.env.example` with `overrides` set (added at the end when the example lacks them)."""
    lines, seen = [], set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        key = line.partition("=")[0].strip()
        if not line.lstrip().startswith("#") and "=" in line and key in overrides:
            seen.add(key)
            lines.append(f"{key}={overrides[key]}")
        else:
            lines.append(line)
    lines += [f"{key}={value}" for key, value in overrides.items() if key not in seen]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def new_passwords() -> dict[str, str]:
    """The two database passwords a new env file needs: the owner's and the functions' role's."""
    return {name: secrets.token_hex(24) for name in ("POSTGRES_PASSWORD", "POSTGRES_APP_PASSWORD")}


def engine_answers() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def prepare_engine() -> None:
    """A running engine with Compose v2, and the base images (pulled, or local stand-ins)."""
    subprocess.run([str(ROOT / "docker" / "engine" / "ensure")], check=True)
    subprocess.run([str(ROOT / "docker" / "standins" / "build")], check=True)


def stop_engine() -> None:
    """Stop dockerd if docker/engine/ensure started it; an engine found running stays."""
    subprocess.run([str(ROOT / "docker" / "engine" / "stop")], check=True)


def up(env_file: Path) -> None:
    prepare_engine()
    if not env_file.exists():
        # Ports given in the shell go into the file too, so that later plain `docker compose`
        # commands address the same stack instead of recreating it on the defaults.
        ports = {
            key: os.environ[key] for key in ("GATEWAY_PORT", "POSTGRES_PORT") if key in os.environ
        }
        write_env_file(env_file, {**new_passwords(), **ports})
        print(f"wrote {env_file} from .env.example with random passwords", flush=True)
    compose = Compose(env_file=env_file)
    compose.up("--build")
    port = os.environ.get("GATEWAY_PORT") or read_env_file(env_file).get("GATEWAY_PORT") or "8080"
    print(f"the service is up on http://127.0.0.1:{port} (make compose-down stops it)", flush=True)


def down(env_file: Path, volumes: bool = False) -> None:
    if engine_answers():
        # Without .env, compose still needs a value for the required password to read its file.
        environ = {} if env_file.exists() else dict.fromkeys(new_passwords(), "unused-by-down")
        compose = Compose(env_file=env_file if env_file.exists() else None, environ=environ)
        compose.run("down", "--remove-orphans", *(["--volumes"] if volumes else []))
    stop_engine()


@contextmanager
def test_stack(work: Path) -> Iterator[ComposeStack]:
    """A throwaway stack of the compose file on free ports; removed with its volumes on exit."""
    env_file = work / "compose.env"
    gateway_port = free_port()
    write_env_file(
        env_file,
        {
            **new_passwords(),
            "GATEWAY_PORT": str(gateway_port),
            "POSTGRES_PORT": str(free_port()),
            # As in production, links carry a configured base, not the request's Host: the
            # address the tests reach the gateway at (ComposeStack.url).
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{gateway_port}",
            **TEST_SETTINGS,
        },
    )
    compose = Compose(project=f"audiosvc-test-{secrets.token_hex(4)}", env_file=env_file)
    try:
        compose.up("--build")
        yield ComposeStack.of(compose)
    finally:
        compose.run("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)


def run_tests(pytest_args: Sequence[str]) -> int:
    # A SIGTERM (CI's time-out, kill) unwinds like Ctrl-C, so the stack is still removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    engine_was_running = engine_answers()
    started = time.monotonic()
    try:
        prepare_engine()
        print(f"engine and base images ready in {time.monotonic() - started:.0f} s", flush=True)
        with tempfile.TemporaryDirectory(prefix="audiosvc-compose-") as work:
            begun = time.monotonic()
            with test_stack(Path(work)) as stack:
                print(f"stack up and healthy in {time.monotonic() - begun:.0f} s", flush=True)
                env = {
                    **os.environ,
                    "AUDIOSVC_COMPOSE_PROJECT": str(stack.compose.project),
                    "AUDIOSVC_COMPOSE_ENV_FILE": str(stack.compose.env_file),
                }
                command = [sys.executable, "-m", "pytest", *END_TO_END_MODULES, "tests/compose"]
                return subprocess.run(
                    [*command, *pytest_args], cwd=ROOT, env=env, check=False
                ).returncode
    finally:
        if not engine_was_running:
            stop_engine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the stack of .env; return once it is healthy")
    sub.add_parser("down", help="remove the containers of .env's stack, keep the data volume")
    sub.add_parser("purge", help="remove the containers and the data volume")
    sub.add_parser("test", help="end-to-end and compose-only tests on a stack of their own")
    # Whatever follows `test` goes to pytest (-x, -k EXPR, ...).
    args, pytest_args = parser.parse_known_args()
    if pytest_args and args.command != "test":
        parser.error(f"unrecognized arguments: {' '.join(pytest_args)}")
    env_file = ROOT / ".env"
    try:
        if args.command == "up":
            up(env_file)
        elif args.command == "down":
            down(env_file)
        elif args.command == "purge":
            down(env_file, volumes=True)
        else:
            raise SystemExit(run_tests(pytest_args))
    except subprocess.CalledProcessError as failed:
        # The helper scripts say why in their own last line, just above.
        step = Path(str(failed.cmd[0])).relative_to(ROOT)
        raise SystemExit(
            f"make compose-{args.command} stopped: {step} failed (status {failed.returncode});"
            " its last line above says why"
        ) from None
    except ComposeError as error:
        raise SystemExit(f"make compose-{args.command} stopped: {error}") from None


if __name__ == "__main__":
    main()
