"""The URLs the service hands out, on the host and port the client called."""

from __future__ import annotations

import re
import uuid

import falcon

_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::[0-9]{1,5})?$"
)


def record_url(base: str, record_id: uuid.UUID, user_id: uuid.UUID) -> str:
    return f"{base}/record?id={record_id}&user={user_id}"


def upload_url(base: str, upload_id: uuid.UUID) -> str:
    return f"{base}/uploads/{upload_id}"


def base_url(req: falcon.Request, public_base_url: str | None) -> str:
    """scheme://host:port the client called, as the gateway passed it on (or the configured one)."""
    if public_base_url:
        return public_base_url.rstrip("/")
    proto = (req.get_header("X-Forwarded-Proto") or req.scheme).split(",")[0].strip().lower()
    if proto not in ("http", "https"):
        proto = req.scheme
    host = (req.get_header("X-Forwarded-Host") or req.get_header("Host") or "").split(",")[0]
    host = host.strip()
    if not _HOST.match(host):
        raise falcon.HTTPBadRequest(
            title="Bad Host header", description="the Host header is not a valid host[:port]"
        )
    return f"{proto}://{host}"
