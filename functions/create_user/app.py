"""POST /user: create an account and hand out its token, once."""

from __future__ import annotations

import json

import falcon
from sqlalchemy.engine import Engine

from common.config import Settings
from common.http.app import THE_BODY, FunctionApp, create_base_app, max_body, too_large
from common.names import clean_user_name
from common.storage.accounts import Accounts, NameTaken
from common.storage.db import create_engine, utc_now

MAX_BODY = 64 * 1024


class Users:
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    @falcon.before(max_body(MAX_BODY))
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.content_type is None or req.content_type.split(";")[0].strip().lower() != (
            falcon.MEDIA_JSON
        ):
            raise falcon.HTTPUnsupportedMediaType(
                title="Unsupported media type", description="send the body as application/json"
            )
        body = req.bounded_stream.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise too_large(THE_BODY, MAX_BODY)
        name = _name_from(body)
        try:
            user = self._accounts.create(name)
        except NameTaken:
            raise falcon.HTTPConflict(
                title="Name taken", description="another user already has this name"
            ) from None
        req.context.user_id = user.id
        resp.status = falcon.HTTP_CREATED
        resp.set_header("Cache-Control", "no-store")
        resp.media = {"id": str(user.id), "token": str(user.token)}


def _name_from(body: bytes) -> str:
    document = _json(body)
    if not isinstance(document, dict):
        raise falcon.HTTPBadRequest(
            title="Invalid body", description='send a JSON object {"name": "..."}'
        )
    raw = document.get("name", document.get("username"))
    if raw is None:
        raise falcon.HTTPBadRequest(title="Missing name", description="name is required")
    try:
        return clean_user_name(raw)
    except ValueError as error:
        raise falcon.HTTPBadRequest(title="Invalid name", description=str(error)) from None


def _json(body: bytes) -> object:
    """The body's JSON document; 400, saying what is wrong, for anything the parser refuses."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _malformed(f"the body is not valid UTF-8 (at byte {error.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise _malformed(
            f"the body is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    except RecursionError:
        raise _malformed("the body's JSON is nested too deeply") from None
    except ValueError:  # int() refuses numbers of more than 4300 digits
        raise _malformed("the body's JSON holds a number too long to parse") from None


def _malformed(description: str) -> falcon.HTTPBadRequest:
    return falcon.HTTPBadRequest(title="Malformed JSON", description=description)


def create_app(settings: Settings, engine: Engine | None = None) -> FunctionApp:
    """The function's app; `engine` defaults to a new one for this worker process."""
    engine = engine or create_engine(settings.database_url, settings.db_pool_size)
    app = create_base_app("create_user", engine)
    app.add_route("/user", Users(Accounts(engine, now=utc_now)))
    return app


def get_app() -> FunctionApp:
    return create_app(Settings.from_env())
