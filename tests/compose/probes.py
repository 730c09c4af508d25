"""Ways the compose-only checks probe the stack: users, uploads, downloads, SQL, containers."""

from __future__ import annotations

import hashlib

import requests

from devstack.compose import ComposeStack
from tests.helpers import pcm16
from tests.stacks import upload


def stored(stack: ComposeStack, user: dict[str, str], seconds: float = 1.0) -> str:
    """Upload a short WAV; return its download URL."""
    result = upload(stack, user, pcm16(seconds))
    assert result.status_code == 201, result.text
    return str(result.json()["url"])


def digests(urls: list[str]) -> dict[str, str]:
    """SHA-256 of each download, by URL."""
    found = {}
    for url in urls:
        result = requests.get(url, timeout=60)
        assert result.status_code == 200, (url, result.status_code, result.text[:200])
        found[url] = hashlib.sha256(result.content).hexdigest()
    return found


def psql(stack: ComposeStack, sql: str, database: str = "audio") -> str:
    """One SQL statement run by psql in the postgres container; its output, trimmed."""
    result = stack.compose.run(
        "exec", "-T", "postgres", "psql", "-U", "audio", "-d", database, "-tAc", sql
    )
    return result.stdout.strip()


def container_ids(stack: ComposeStack, service: str) -> list[str]:
    return [str(c["ID"]) for c in stack.compose.containers(service) if c["State"] == "running"]
