"""Who is asking: the request's token, however it came, checked against the user's (401)."""

from __future__ import annotations

import re
import uuid

import falcon

from common.http.params import parse_uuid, single_param
from common.storage.accounts import Accounts

_BEARER = re.compile(r"^\s*bearer\s+(\S+)\s*$", re.IGNORECASE)
NO_CREDENTIALS = (
    "the token is missing: send it as Authorization: Bearer <token>, or as the token field"
    " (a form) or query parameter"
)


def authenticate(accounts: Accounts, user_id: uuid.UUID, token: str | None) -> None:
    """401 unless `token` (as sent: a token that is not a UUID is simply wrong) is the user's."""
    if not token:
        raise unauthorized(NO_CREDENTIALS)
    if not accounts.authenticate(user_id, parse_uuid(token)):
        raise unauthorized()


def token_owner(accounts: Accounts, token: str) -> uuid.UUID:
    """The user whose token `token` is (as sent); 401 when it is nobody's."""
    parsed = parse_uuid(token)
    owner = accounts.owner_of(parsed) if parsed else None
    if owner is None:
        raise unauthorized()
    return owner


def unauthorized(description: str = "the user or the token is wrong") -> falcon.HTTPUnauthorized:
    """The single 401 answer: unknown user and wrong token must not be told apart."""
    return falcon.HTTPUnauthorized(
        title="Unauthorized", description=description, challenges=["Bearer"]
    )


def request_token(req: falcon.Request, form_field: str | None = None) -> str | None:
    """The token of a request, whichever way it came: `Authorization: Bearer <token>`, the
    `token` query parameter, or the `token` form field (`form_field`, as sent).

    A client sends the token one way (RFC 6750 §2): two ways carrying different tokens are a
    400 invalid_request; the same token twice is served.
    """
    sent = [bearer_token(req), single_param(req, "token"), form_field]
    tokens = {token.strip() for token in sent if token and token.strip()}
    if len({token.lower() for token in tokens}) > 1:
        raise falcon.HTTPBadRequest(
            title="Invalid request",
            description="invalid_request: the token came more than one way (Authorization: "
            "Bearer, token parameter, token field) with different values; send it one way only",
            headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
        )
    return min(tokens, default=None)


def bearer_token(req: falcon.Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one (the part of
    `request_token` that tells whether the token came as the header)."""
    header = req.get_header("Authorization")
    if header is None:
        return None
    match = _BEARER.match(header)
    return match.group(1) if match else None
