"""What only the compose stack can show: its hardening, its volume, its scaling, its recoveries.

Run by `make compose-test` after the end-to-end modules, in this order: the checks that read the
stack come first, those that restart, scale or remove parts of it after.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import requests
from tusclient.client import TusClient

from devstack.compose import LONG_RUNNING, RESOLVE_EVERY_S, ROOT, ComposeStack
from devstack.routes import FUNCTIONS
from devstack.wavgen import RATE, write_wav
from tests.compose.probes import container_ids, digests, psql, stored
from tests.helpers import pcm16
from tests.stacks import new_user, upload

FFMPEG_MEMORY_BYTES = 1 << 30


def inspect(stack: ComposeStack, service: str) -> dict[str, Any]:
    ids = [str(c["ID"]) for c in stack.compose.containers(service)]
    assert ids, f"no container of {service}"
    return stack.compose.inspect(ids[0])


def test_every_container_is_hardened(stack: ComposeStack) -> None:
    for service in (*LONG_RUNNING, "migrate"):
        info = inspect(stack, service)
        host = info["HostConfig"]
        where = f"{service}: "
        assert host["ReadonlyRootfs"], where + "the root filesystem is writable"
        assert host["CapDrop"] == ["ALL"], (
            where + f"capabilities not all dropped: {host['CapDrop']}"
        )
        assert "no-new-privileges:true" in (host["SecurityOpt"] or []), where + "may escalate"
        assert host["Memory"] > 0, where + "no memory limit"
        assert host["NanoCpus"] > 0, where + "no CPU limit"
        assert (host["PidsLimit"] or 0) > 0, where + "no PID limit"
        assert host["LogConfig"]["Type"] == "json-file", where + "logs not in json-file"
        assert host["LogConfig"]["Config"].get("max-size"), where + "logs never rotate"
        policy = "no" if service == "migrate" else "unless-stopped"
        assert host["RestartPolicy"]["Name"] == policy, where + f"restart {host['RestartPolicy']}"
    functions_caps = {
        service: inspect(stack, service)["HostConfig"]["CapAdd"] for service in FUNCTIONS
    }
    assert functions_caps == dict.fromkeys(FUNCTIONS), (
        f"functions add capabilities: {functions_caps}"
    )
    add_record = inspect(stack, "add_record")["HostConfig"]
    assert add_record["Memory"] > FFMPEG_MEMORY_BYTES, "add_record's limit is under ffmpeg's rlimit"
    assert "/tmp" in add_record["Tmpfs"], "add_record has no tmpfs for its spool"


def test_functions_run_as_non_root(stack: ComposeStack) -> None:
    for service in FUNCTIONS:
        container = container_ids(stack, service)[0]
        top = subprocess.run(
            ["docker", "top", container, "-o", "pid,uid,args"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()[1:]
        assert top, f"{service}: no processes"
        for line in top:
            uid = line.split()[1]
            assert uid != "0", f"{service} runs a process as root: {line}"


def test_functions_connect_as_a_role_that_only_reads_and_writes_rows(stack: ComposeStack) -> None:
    user = new_user(stack)
    stored(stack, user)
    over_tcp = psql(
        stack,
        "SELECT DISTINCT usename FROM pg_stat_activity "
        "WHERE client_addr IS NOT NULL AND datname = 'audio'",
    )
    assert over_tcp.split() == ["audio_app"], f"the functions connect as {over_tcp.split()}"
    role = psql(
        stack,
        "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = 'audio_app'",
    )
    assert role == "f|f|f"
    owns = psql(stack, "SELECT count(*) FROM pg_tables WHERE tableowner = 'audio_app'")
    assert owns == "0"


def test_only_the_gateway_is_published(stack: ComposeStack) -> None:
    for service in LONG_RUNNING:
        ports = inspect(stack, service)["NetworkSettings"]["Ports"] or {}
        bound = [
            (binding["HostIp"], binding["HostPort"]) for b in ports.values() for binding in b or []
        ]
        if service == "nginx":
            assert ("0.0.0.0", str(stack.port)) in bound  # noqa: S104 - the public entry point, f"gateway not on :{stack.port}: {bound}"
        elif service == "postgres":
            assert bound, "PostgreSQL is not reachable from the host"
            assert {ip for ip, _ in bound} == {"127.0.0.1"}, f"PostgreSQL beyond loopback: {bound}"
        else:
            assert not bound, f"{service} is published: {bound}"


def test_the_gateway_has_a_healthcheck_that_passes(stack: ComposeStack) -> None:
    info = inspect(stack, "nginx")
    assert info["Config"]["Healthcheck"]["Test"][0] == "CMD", "nginx has no healthcheck"
    assert info["State"]["Health"]["Status"] == "healthy"


def test_migrate_is_idempotent(stack: ComposeStack) -> None:
    first = stack.compose.logs("migrate")
    assert "migration(s) applied" in first, first
    stack.compose.up()
    second = stack.compose.logs("migrate").strip().splitlines()[-2:]
    assert second[0].endswith("is up to date"), f"the second run of migrate said: {second}"
    assert second[1].endswith("audio_app may read and write the service's rows, and nothing else")


def test_migrate_refuses_a_database_not_in_utf8(stack: ComposeStack) -> None:
    psql(
        stack,
        "CREATE DATABASE latin ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
    )
    try:
        password = read_password(stack)
        result = stack.compose.run(
            "run",
            "--rm",
            "--no-deps",
            "-e",
            f"DATABASE_URL=postgresql+psycopg://audio:{password}@postgres:5432/latin",
            "migrate",
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert "encoded SQL_ASCII" in output, output
        assert "needs UTF8" in output, output
        assert "Traceback" not in output, output
    finally:
        psql(stack, "DROP DATABASE latin")


def read_password(stack: ComposeStack) -> str:
    assert stack.compose.env_file is not None
    for line in stack.compose.env_file.read_text().splitlines():
        if line.startswith("POSTGRES_PASSWORD="):
            return line.partition("=")[2]
    raise AssertionError("no POSTGRES_PASSWORD in the env file")


def test_a_crash_of_add_record_mid_upload_stores_nothing_and_heals(
    stack: ComposeStack, tmp_path: Path
) -> None:
    user = new_user(stack)
    unowned_before = psql(
        stack,
        "SELECT count(*) FROM record_chunks WHERE record_id NOT IN (SELECT id FROM records)"
        " AND record_id NOT IN (SELECT id FROM pending_records)",
    )
    container = container_ids(stack, "add_record")[0]
    restarts = inspect(stack, "add_record")["RestartCount"]
    wav = write_wav(tmp_path / "long.wav", 600 * RATE)
    answers: list[requests.Response] = []
    with wav.open("rb") as body:
        sender = threading.Thread(target=lambda: answers.append(upload(stack, user, body)))
        sender.start()
        converting = wait_for_process(container, "ffmpeg", timeout=60)
        pid = stack.compose.inspect(container)["State"]["Pid"]
        if converting:
            os.kill(pid, signal.SIGKILL)
        sender.join(timeout=120)
    assert converting, "ffmpeg never started in add_record"
    assert answers, "the upload got no answer"
    assert answers[0].status_code == 502, answers[0].text
    assert answers[0].json()["title"] == "Bad Gateway"
    listed = requests.get(
        f"{stack.url}/records",
        params={"user": user["id"]},
        headers={"Authorization": f"Bearer {user['token']}"},
        timeout=30,
    )
    assert listed.status_code == 200, listed.text
    assert listed.json()["records"] == [], "the crashed upload is listed"
    # What the dead worker committed stays under its pending row, invisible, until the sweep
    # takes it once the lease has lapsed (common/storage/records.py).
    unowned = (
        "SELECT count(*) FROM record_chunks WHERE record_id NOT IN (SELECT id FROM records)"
        " AND record_id NOT IN (SELECT id FROM pending_records)"
    )
    assert psql(stack, unowned) == unowned_before, "chunks were left without an owner"
    deadline = time.monotonic() + 90
    while inspect(stack, "add_record")["RestartCount"] == restarts and time.monotonic() < deadline:
        time.sleep(1)
    assert inspect(stack, "add_record")["RestartCount"] == restarts + 1, (
        "not restarted by its policy"
    )
    stack.wait_function("add_record", timeout=90)
    assert requests.get(stored(stack, user), timeout=30).status_code == 200


def wait_for_process(container: str, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        top = subprocess.run(
            ["docker", "top", container, "-o", "pid,comm"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if name in top.split():
            return True
        time.sleep(0.1)
    return False


def test_postgres_restarted_gives_503_then_recovers_without_restarting_functions(
    stack: ComposeStack,
) -> None:
    user = new_user(stack)
    before = digests([stored(stack, user)])
    functions = {c: inspect_started(stack, c) for s in FUNCTIONS for c in container_ids(stack, s)}
    postgres = container_ids(stack, "postgres")[0]
    subprocess.run(["docker", "stop", postgres], check=True, capture_output=True)
    try:
        for method, path, body in (
            ("POST", "/user", {"name": "during-outage"}),
            ("GET", "/records", None),
        ):
            result = requests.request(
                method,
                f"{stack.url}{path}",
                json=body,
                timeout=30,
                params={"user": user["id"]} if body is None else None,
                headers={"Authorization": f"Bearer {user['token']}"},
            )
            assert result.status_code == 503, (path, result.status_code, result.text)
            assert result.json()["description"], result.text
            assert int(result.headers["Retry-After"]) > 0
    finally:
        subprocess.run(["docker", "start", postgres], check=True, capture_output=True)
    stack.compose.wait_healthy(["postgres"], timeout=120)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        created = requests.post(
            f"{stack.url}/user", json={"name": f"after-{time.time()}"}, timeout=30
        )
        if created.status_code == 201:
            break
        time.sleep(1)
    assert created.status_code == 201, created.text
    assert digests(list(before)) == before
    after = {c: inspect_started(stack, c) for s in FUNCTIONS for c in container_ids(stack, s)}
    assert after == functions, "a function was restarted"


def inspect_started(stack: ComposeStack, container: str) -> tuple[str, int]:
    info = stack.compose.inspect(container)
    return str(info["State"]["StartedAt"]), int(info["RestartCount"])


def test_scaled_add_record_replicas_all_take_uploads_without_a_gateway_restart(
    stack: ComposeStack,
) -> None:
    gateway = container_ids(stack, "nginx")[0]
    gateway_started = inspect_started(stack, gateway)
    stack.compose.run("up", "--detach", "--no-build", "--no-recreate", "--scale", "add_record=3")
    try:
        stack.compose.wait_healthy(["add_record"], timeout=120)
        replicas = container_ids(stack, "add_record")
        assert len(replicas) == 3
        user = new_user(stack)
        served: dict[str, int] = dict.fromkeys(replicas, 0)
        deadline = time.monotonic() + 90
        while min(served.values()) == 0 and time.monotonic() < deadline:
            result = upload(stack, user, pcm16(0.2))
            assert result.status_code == 201, result.text
            request_id = result.headers["X-Request-ID"]
            for replica in replicas:
                if request_id in docker_logs(replica):
                    served[replica] += 1
        assert min(served.values()) > 0, f"uploads per replica (by its own log): {served}"
        assert container_ids(stack, "nginx") == [gateway]
        assert inspect_started(stack, gateway) == gateway_started, "nginx was restarted"
    finally:
        scale_back_to_one(stack)


class SlowFile(io.BytesIO):
    """A WAV that tuspy reads at `bytes_per_s`: its upload spans whatever the test does."""

    def __init__(self, data: bytes, bytes_per_s: int) -> None:
        super().__init__(data)
        self._rate = bytes_per_s

    def read(self, size: int | None = -1) -> bytes:
        piece = super().read(size)
        time.sleep(len(piece) / self._rate)
        return piece


def test_a_resumable_upload_lives_through_restarts_of_each_add_record_replica(
    stack: ComposeStack, tmp_path: Path
) -> None:
    """A rolling deploy by hand: with two add_record replicas, each is restarted in turn
    (`docker restart`: SIGTERM, gunicorn's graceful stop, start) while a tus client sends."""
    stack.compose.run("up", "--detach", "--no-build", "--no-recreate", "--scale", "add_record=2")
    try:
        stack.compose.wait_healthy(["add_record"], timeout=120)
        replicas = container_ids(stack, "add_record")
        assert len(replicas) == 2
        user = new_user(stack)
        wav = write_wav(tmp_path / "deploy.wav", 60 * RATE).read_bytes()
        client = TusClient(
            f"{stack.url}/uploads", headers={"Authorization": f"Bearer {user['token']}"}
        )
        uploader = client.uploader(
            file_stream=SlowFile(wav, 250_000),
            chunk_size=256 * 1024,
            metadata={"user": user["id"], "filename": "take.wav"},
            retries=30,
            retry_delay=1,
        )
        failures: list[BaseException] = []

        def send() -> None:
            try:
                uploader.upload()
            except BaseException as error:  # reported by the assertion below
                failures.append(error)

        sender = threading.Thread(target=send)
        sender.start()
        for replica in replicas:
            time.sleep(3)
            subprocess.run(["docker", "restart", replica], check=True, capture_output=True)
            stack.compose.wait_healthy(["add_record"], timeout=120)
            assert sender.is_alive(), "the upload ended before every replica was restarted"
        sender.join(timeout=300)
        assert not failures, failures
        state = requests.head(
            uploader.url,
            headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {user['token']}"},
            timeout=30,
        )
        assert state.status_code == 200
        mp3 = requests.get(state.headers["Record-Location"], timeout=60).content
        posted = upload(stack, user, wav)
        assert posted.status_code == 201, posted.text
        assert mp3 == requests.get(posted.json()["url"], timeout=60).content
    finally:
        scale_back_to_one(stack)


def scale_back_to_one(stack: ComposeStack) -> None:
    """One add_record replica again, once nginx has let go of the others: until its resolver
    sees a stopped replica's name gone (every second), a request may still be sent to its
    address, and waits out the 5 s connect timeout there (504)."""
    stack.compose.run("up", "--detach", "--no-build", "--no-recreate", "--scale", "add_record=1")
    time.sleep(RESOLVE_EVERY_S)


def docker_logs(container: str) -> str:
    result = subprocess.run(
        ["docker", "logs", container], capture_output=True, text=True, check=True
    )
    return result.stdout + result.stderr


def test_data_survives_down_and_up(stack: ComposeStack) -> None:
    user = new_user(stack)
    before = digests([stored(stack, user, seconds) for seconds in (1.0, 2.5)])
    stack.compose.run("down", "--timeout", "30")
    assert not stack.compose.containers(), "down left containers"
    stack.compose.up()
    assert digests(list(before)) == before


def operations_block(heading: str) -> str:
    """The first sh block under a heading of docs/operations.md, as a person would copy it."""
    guide = (ROOT / "docs" / "operations.md").read_text()
    section = guide.split(f"## {heading}\n", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, f"no sh block under ## {heading}"
    return match.group(1)


def test_backup_and_restore_as_the_operations_guide_says(
    stack: ComposeStack, tmp_path: Path
) -> None:
    user = new_user(stack)
    urls = [stored(stack, user, seconds) for seconds in (1.5, 3.0)]
    before = digests([*urls, *_every_record_url(stack)])
    env = {**stack.compose.env}
    subprocess.run(["sh", "-ec", operations_block("Backup")], cwd=tmp_path, env=env, check=True)
    dumps = list(tmp_path.glob("*.dump"))
    assert len(dumps) == 1, dumps
    assert dumps[0].stat().st_size > 0
    stack.compose.run("down", "--volumes", "--timeout", "30")
    env["BACKUP"] = str(dumps[0])
    subprocess.run(["sh", "-ec", operations_block("Restore")], cwd=tmp_path, env=env, check=True)
    stack.compose.wait_healthy()
    assert digests(list(before)) == before


def _every_record_url(stack: ComposeStack) -> list[str]:
    rows = psql(stack, "SELECT id || ' ' || user_id FROM records").splitlines()
    return [
        f"{stack.url}/record?id={record}&user={user}"
        for record, user in (row.split() for row in rows)
    ]
