"""Query parameters and form fields: one value each, UUIDs checked (400 with the reason)."""

from __future__ import annotations

import re
import uuid

import falcon

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def uuid_param(req: falcon.Request, name: str) -> uuid.UUID:
    """A required UUID from the query string: 400 if missing or malformed."""
    return required_uuid(name, single_param(req, name))


def required_uuid(name: str, raw: str | None) -> uuid.UUID:
    """`raw` (a parameter or form field called `name`) as a UUID: 400 if missing or malformed."""
    if raw is None or raw == "":
        raise falcon.HTTPBadRequest(title="Missing parameter", description=f"{name} is required")
    parsed = parse_uuid(raw)
    if parsed is None:
        raise falcon.HTTPBadRequest(
            title="Malformed parameter", description=f"{name} must be a UUID"
        )
    return parsed


def single_param(req: falcon.Request, name: str) -> str | None:
    values = req.get_param_as_list(name)
    if values is None:
        return None
    if len(values) > 1:
        raise falcon.HTTPBadRequest(
            title="Ambiguous parameter", description=f"{name} is given more than once"
        )
    return str(values[0])


def parse_uuid(raw: str) -> uuid.UUID | None:
    return uuid.UUID(raw) if _UUID.match(raw) else None
