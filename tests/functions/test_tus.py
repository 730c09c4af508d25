"""Resumable uploads (tus 1.0.0, contract v1.3) through falcon.testing, on the real PostgreSQL and
the real ffmpeg: the protocol's answers, the record a finished upload becomes, and bad input."""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from falcon.testing import TestClient
from sqlalchemy.engine import Engine

from common.config import Settings
from common.storage.db import create_engine, records, upload_chunks, uploads, utc_now
from common.storage.uploads import LockLost, UploadStore
from functions.add_record.app import create_app
from functions.add_record.tus import MIN_PATCH_BYTES
from functions.create_user.app import create_app as create_user_app
from tests.helpers import ima_adpcm, nothing_stored, pcm16

WAV = pcm16(3.0, 44100, 2)
HOST = "example.org:8080"
OFFSET_STREAM = "application/offset+octet-stream"


def tus(token: str, **headers: str) -> dict[str, str]:
    return {"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}", "Host": HOST, **headers}


def encoded(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def create(
    client: TestClient,
    user: dict[str, str],
    length: int,
    body: bytes | None = None,
    **pairs: str,
) -> Any:
    meta = encoded(user=user["id"], **pairs)
    headers = tus(user["token"], **{"Upload-Length": str(length), "Upload-Metadata": meta})
    if body is not None:
        headers["Content-Type"] = OFFSET_STREAM
    return client.simulate_post("/uploads", headers=headers, body=body)


def patch(
    client: TestClient, user: dict[str, str], location: str, offset: int, body: bytes, **more: Any
) -> Any:
    headers = tus(user["token"], **{"Upload-Offset": str(offset), "Content-Type": OFFSET_STREAM})
    headers.update(more.pop("headers", {}))
    return client.simulate_patch(_path(location), headers=headers, body=body, **more)


def head(client: TestClient, user: dict[str, str], location: str) -> Any:
    return client.simulate_head(_path(location), headers=tus(user["token"]))


def _path(location: str) -> str:
    return location.removeprefix(f"http://{HOST}")


def new_upload(client: TestClient, user: dict[str, str], wav: bytes = WAV, **pairs: str) -> str:
    created = create(client, user, len(wav), **pairs)
    assert created.status_code == 201, created.text
    return str(created.headers["location"])


def sha_of(engine: Engine, record_location: str) -> tuple[str, str | None]:
    record_id = record_location.split("id=")[1].split("&", maxsplit=1)[0]
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(records.c.sha256, records.c.name).where(records.c.id == uuid.UUID(record_id))
        ).one()
    return row.sha256, row.name


def posted_sha(client: TestClient, user: dict[str, str], engine: Engine, name: str) -> str:
    result = client.simulate_post(
        "/record",
        params={"user": user["id"], "name": name},
        body=WAV,
        headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {user['token']}"},
    )
    assert result.status_code == 201, result.text
    return sha_of(engine, result.json["url"])[0]


def test_options_says_what_the_server_speaks(add_record_client: TestClient) -> None:
    result = add_record_client.simulate_options("/uploads")
    assert result.status_code == 204
    assert result.headers["tus-version"] == "1.0.0"
    assert result.headers["tus-resumable"] == "1.0.0"
    assert result.headers["tus-extension"] == "creation,creation-with-upload,termination,expiration"
    assert result.headers["tus-max-size"] == str(1 << 30)


@pytest.mark.parametrize("version", [None, "0.2.2", "1.0"])
def test_another_or_no_version_is_412(
    add_record_client: TestClient, user: dict[str, str], version: str | None
) -> None:
    headers = tus(user["token"], **{"Upload-Length": "100"})
    del headers["Tus-Resumable"]
    if version:
        headers["Tus-Resumable"] = version
    result = add_record_client.simulate_post("/uploads", headers=headers)
    assert result.status_code == 412
    assert result.headers["tus-version"] == "1.0.0"
    assert result.headers["tus-resumable"] == "1.0.0"
    assert result.json["title"] == "Unsupported tus version"


def test_one_patch_makes_the_record_post_would(
    add_record_client: TestClient, user: dict[str, str], engine: Engine
) -> None:
    location = new_upload(add_record_client, user, filename="Take one.wav")
    assert location.startswith(f"http://{HOST}/uploads/")
    done = patch(add_record_client, user, location, 0, WAV)
    assert done.status_code == 204, done.text
    assert done.headers["upload-offset"] == str(len(WAV))
    assert done.headers["tus-resumable"] == "1.0.0"
    record_location = done.headers["record-location"]
    assert record_location.startswith(f"http://{HOST}/record?id=")
    assert sha_of(engine, record_location) == (
        posted_sha(add_record_client, user, engine, "Take one.wav"),
        "Take one.wav",
    )
    after = head(add_record_client, user, location)
    assert after.status_code == 200
    assert after.headers["record-location"] == record_location
    assert after.headers["upload-offset"] == str(len(WAV))
    assert "upload-expires" not in after.headers
    assert after.headers["cache-control"] == "no-store"


def test_cut_and_resumed_gives_the_same_mp3(
    add_record_client: TestClient, user: dict[str, str], engine: Engine
) -> None:
    location = new_upload(add_record_client, user, name="cut.wav")
    cut = 200_001
    # The connection breaks after `cut` bytes of a PATCH that declared them all.
    broken = patch(
        add_record_client,
        user,
        location,
        0,
        b"",
        headers={"Content-Length": str(len(WAV))},
        extras={"wsgi.input": io.BytesIO(WAV[:cut])},
    )
    assert broken.status_code == 400, broken.text
    state = head(add_record_client, user, location)
    assert state.status_code == 200
    assert state.headers["upload-offset"] == str(cut)
    assert state.headers["upload-length"] == str(len(WAV))
    assert "upload-expires" in state.headers
    done = patch(add_record_client, user, location, cut, WAV[cut:])
    assert done.status_code == 204, done.text
    sha, name = sha_of(engine, done.headers["record-location"])
    assert (sha, name) == (posted_sha(add_record_client, user, engine, "cut.wav"), "cut.wav")


def test_many_patches_then_the_last(
    add_record_client: TestClient, user: dict[str, str], engine: Engine
) -> None:
    location = new_upload(add_record_client, user)
    step = MIN_PATCH_BYTES * 3
    offset = 0
    while offset + step < len(WAV):
        result = patch(add_record_client, user, location, offset, WAV[offset : offset + step])
        assert result.status_code == 204, result.text
        assert "record-location" not in result.headers
        offset += step
        assert result.headers["upload-offset"] == str(offset)
    done = patch(add_record_client, user, location, offset, WAV[offset:])
    assert done.status_code == 204
    assert sha_of(engine, done.headers["record-location"])[0] == posted_sha(
        add_record_client, user, engine, ""
    )


def test_creation_with_upload(add_record_client: TestClient, user: dict[str, str]) -> None:
    created = create(add_record_client, user, len(WAV), WAV, filename="direct.wav")
    assert created.status_code == 201, created.text
    assert created.headers["upload-offset"] == str(len(WAV))
    assert "record-location" in created.headers
    partial = create(add_record_client, user, len(WAV), WAV[:MIN_PATCH_BYTES])
    assert partial.status_code == 201
    assert partial.headers["upload-offset"] == str(MIN_PATCH_BYTES)
    assert "record-location" not in partial.headers


def test_a_repeated_last_patch_stores_nothing_twice(
    add_record_client: TestClient, user: dict[str, str], engine: Engine
) -> None:
    location = new_upload(add_record_client, user)
    first = patch(add_record_client, user, location, 0, WAV)
    before = count_records(engine, user)
    again = patch(add_record_client, user, location, len(WAV), b"")
    assert again.status_code == 204
    assert again.headers["record-location"] == first.headers["record-location"]
    stale = patch(add_record_client, user, location, 0, WAV)
    assert stale.status_code == 409
    assert count_records(engine, user) == before


def count_records(engine: Engine, user: dict[str, str]) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(records)
                .where(records.c.user_id == uuid.UUID(user["id"]))
            ).scalar_one()
        )


@pytest.mark.parametrize("offset", ["-1", "abc", "1, 2", "99999999999999999999999", ""])
def test_a_malformed_offset_is_400(
    add_record_client: TestClient, user: dict[str, str], offset: str
) -> None:
    location = new_upload(add_record_client, user)
    result = patch(add_record_client, user, location, 0, WAV, headers={"Upload-Offset": offset})
    assert result.status_code == 400, result.text
    assert head(add_record_client, user, location).headers["upload-offset"] == "0"


def test_the_wrong_offset_is_409_and_nothing_is_kept(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    location = new_upload(add_record_client, user)
    result = patch(add_record_client, user, location, 100, WAV[100:])
    assert result.status_code == 409
    assert result.json["description"] == "the upload is at byte 0, not 100"
    assert head(add_record_client, user, location).headers["upload-offset"] == "0"


def test_wrong_content_type_is_415(add_record_client: TestClient, user: dict[str, str]) -> None:
    location = new_upload(add_record_client, user)
    result = patch(add_record_client, user, location, 0, WAV, headers={"Content-Type": "audio/wav"})
    assert result.status_code == 415


def test_bytes_past_the_length_are_413_and_nothing_is_kept(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    location = new_upload(add_record_client, user)
    result = patch(add_record_client, user, location, 0, WAV + b"more")
    assert result.status_code == 413
    assert head(add_record_client, user, location).headers["upload-offset"] == "0"


def test_a_small_patch_that_does_not_end_the_upload_is_400(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    location = new_upload(add_record_client, user)
    result = patch(add_record_client, user, location, 0, WAV[:1000])
    assert result.status_code == 400
    assert result.json["title"] == "PATCH too small"


def test_not_a_wav_is_415_at_once_and_the_upload_is_removed(
    add_record_client: TestClient, user: dict[str, str], engine: Engine
) -> None:
    body = b"ID3" + bytes(len(WAV) - 3)
    with nothing_stored(engine):
        location = new_upload(add_record_client, user, body)
        result = patch(add_record_client, user, location, 0, body[: 2 * MIN_PATCH_BYTES])
        assert result.status_code == 415, result.text
        assert head(add_record_client, user, location).status_code == 404
    assert upload_rows(engine, location) == (0, 0)


def upload_rows(engine: Engine, location: str) -> tuple[int, int]:
    upload_id = uuid.UUID(location.rsplit("/", 1)[1])
    with engine.connect() as conn:
        return (
            conn.execute(
                sa.select(sa.func.count()).select_from(uploads).where(uploads.c.id == upload_id)
            ).scalar_one(),
            conn.execute(
                sa.select(sa.func.count())
                .select_from(upload_chunks)
                .where(upload_chunks.c.upload_id == upload_id)
            ).scalar_one(),
        )


def test_a_wav_declaring_too_long_is_422_at_its_first_patch(
    settings: Settings, engine: Engine, user: dict[str, str]
) -> None:
    client = TestClient(create_app(replace(settings, max_duration_s=1), engine))
    location = new_upload(client, user)
    result = patch(client, user, location, 0, WAV[: 2 * MIN_PATCH_BYTES])
    assert result.status_code == 422, result.text
    assert result.json["title"] == "Audio too long"
    assert head(client, user, location).status_code == 404


def test_a_wav_at_fault_only_at_its_end_is_422_at_the_last_patch(
    settings: Settings, engine: Engine, user: dict[str, str]
) -> None:
    """IMA ADPCM: its length is known only by decoding it, so only the last PATCH can tell."""
    client = TestClient(create_app(replace(settings, max_duration_s=2), engine))
    wav = ima_adpcm(blocks=250, rate=22050)
    location = new_upload(client, user, wav)
    half = len(wav) // 2
    assert patch(client, user, location, 0, wav[:half]).status_code == 204
    with nothing_stored(engine):
        result = patch(client, user, location, half, wav[half:])
        assert result.status_code == 422, result.text
    assert head(client, user, location).status_code == 404
    assert upload_rows(engine, location) == (0, 0)


def test_another_users_token_finds_nothing(
    add_record_client: TestClient, user: dict[str, str], create_user_client: TestClient
) -> None:
    location = new_upload(add_record_client, user)
    other = create_user_client.simulate_post("/user", json={"name": f"o-{uuid.uuid4()}"}).json
    assert head(add_record_client, other, location).status_code == 404
    assert patch(add_record_client, other, location, 0, WAV).status_code == 404
    path = _path(location)
    assert add_record_client.simulate_delete(path, headers=tus(other["token"])).status_code == 404
    assert head(add_record_client, user, location).status_code == 200


@pytest.mark.parametrize("token", [None, "not-a-uuid", str(uuid.uuid4())])
def test_no_or_a_wrong_token_is_401(
    add_record_client: TestClient, user: dict[str, str], token: str | None
) -> None:
    location = new_upload(add_record_client, user)
    headers = tus(token or "")
    if token is None:
        del headers["Authorization"]
    result = add_record_client.simulate_head(_path(location), headers=headers)
    assert result.status_code == 401
    assert result.headers["www-authenticate"] == "Bearer"
    created = add_record_client.simulate_post(
        "/uploads",
        headers={**headers, "Upload-Length": "100", "Upload-Metadata": encoded(user=user["id"])},
    )
    assert created.status_code == 401


@pytest.mark.parametrize(
    ("meta", "status"),
    [
        ("user !!!", 400),
        ("user", 400),
        ("user a b c", 400),
        ("filename eA==", 400),
        (encoded(user="not-a-uuid"), 400),
        (encoded(user=str(uuid.uuid4())), 401),
    ],
)
def test_bad_metadata(
    add_record_client: TestClient, user: dict[str, str], meta: str, status: int
) -> None:
    headers = tus(user["token"], **{"Upload-Length": "100", "Upload-Metadata": meta})
    result = add_record_client.simulate_post("/uploads", headers=headers)
    assert result.status_code == status, result.text


def test_duplicate_metadata_keys_are_400(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    meta = encoded(user=user["id"]) + "," + encoded(user=user["id"])
    headers = tus(user["token"], **{"Upload-Length": "100", "Upload-Metadata": meta})
    result = add_record_client.simulate_post("/uploads", headers=headers)
    assert result.status_code == 400
    assert "more than once" in result.json["description"]


@pytest.mark.parametrize(
    ("length", "status"), [(None, 400), ("x", 400), ("0", 400), ("-5", 400), (str(2 << 30), 413)]
)
def test_bad_upload_length(
    add_record_client: TestClient, user: dict[str, str], length: str | None, status: int
) -> None:
    headers = tus(user["token"], **{"Upload-Metadata": encoded(user=user["id"])})
    if length is not None:
        headers["Upload-Length"] = length
    result = add_record_client.simulate_post("/uploads", headers=headers)
    assert result.status_code == status, result.text
    deferred = add_record_client.simulate_post(
        "/uploads", headers={**headers, "Upload-Defer-Length": "1"}
    )
    assert deferred.status_code == 400


def test_open_uploads_per_user_are_bounded(
    settings: Settings, engine: Engine, user: dict[str, str]
) -> None:
    client = TestClient(create_app(replace(settings, max_open_uploads=2), engine))
    first = new_upload(client, user)
    new_upload(client, user)
    refused = create(client, user, len(WAV))
    assert refused.status_code == 429
    assert refused.json["title"] == "Too many unfinished uploads"
    assert client.simulate_delete(_path(first), headers=tus(user["token"])).status_code == 204
    new_upload(client, user)


def test_a_user_at_the_quota_cannot_start_one(
    add_record_client: TestClient, settings: Settings, engine: Engine, user: dict[str, str]
) -> None:
    location = new_upload(add_record_client, user)
    assert patch(add_record_client, user, location, 0, WAV).status_code == 204
    full = TestClient(create_app(replace(settings, user_quota_bytes=1), engine))
    refused = create(full, user, len(WAV))
    assert refused.status_code == 507
    assert refused.json["title"] == "Quota exceeded"


def test_delete_removes_the_bytes_but_not_the_record(
    add_record_client: TestClient, user: dict[str, str], engine: Engine
) -> None:
    location = new_upload(add_record_client, user)
    assert (
        patch(add_record_client, user, location, 0, WAV[: 2 * MIN_PATCH_BYTES]).status_code == 204
    )
    assert upload_rows(engine, location)[1] >= 1
    gone = add_record_client.simulate_delete(_path(location), headers=tus(user["token"]))
    assert gone.status_code == 204
    assert upload_rows(engine, location) == (0, 0)
    assert head(add_record_client, user, location).status_code == 404
    done = new_upload(add_record_client, user)
    record = patch(add_record_client, user, done, 0, WAV).headers["record-location"]
    add_record_client.simulate_delete(_path(done), headers=tus(user["token"]))
    assert sha_of(engine, record)[0]


def test_an_expired_upload_is_404_and_swept(
    settings: Settings, engine: Engine, user: dict[str, str]
) -> None:
    client = TestClient(create_app(settings, engine))
    location = new_upload(client, user)
    assert patch(client, user, location, 0, WAV[: 2 * MIN_PATCH_BYTES]).status_code == 204
    upload_id = uuid.UUID(location.rsplit("/", 1)[1])
    with engine.begin() as conn:
        conn.execute(
            uploads.update()
            .where(uploads.c.id == upload_id)
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )
    assert head(client, user, location).status_code == 404
    assert (
        patch(client, user, location, 2 * MIN_PATCH_BYTES, WAV[2 * MIN_PATCH_BYTES :]).status_code
        == 404
    )
    store = UploadStore(engine, utc_now, expiry=timedelta(days=1), lease=timedelta(seconds=15))
    assert store.sweep() >= 1
    assert upload_rows(engine, location) == (0, 0)


@pytest.fixture
def store(engine: Engine) -> UploadStore:
    return UploadStore(engine, utc_now, expiry=timedelta(days=1), lease=timedelta(seconds=15))


def owned(store: UploadStore, location: str, user: dict[str, str]) -> Any:
    found = store.find(uuid.UUID(location.rsplit("/", 1)[1]), uuid.UUID(user["id"]))
    assert found is not None
    return found


def test_a_patch_in_flight_makes_another_409(
    add_record_client: TestClient, user: dict[str, str], store: UploadStore
) -> None:
    location = new_upload(add_record_client, user)
    with store.patch(owned(store, location, user)) as holder:
        assert holder is not None
        result = patch(add_record_client, user, location, 0, WAV)
        assert result.status_code == 409
        assert "in flight" in result.json["description"]
    assert patch(add_record_client, user, location, 0, WAV).status_code == 204


def test_a_lapsed_patch_is_taken_over_and_writes_no_more(
    add_record_client: TestClient, user: dict[str, str], engine: Engine, store: UploadStore
) -> None:
    """A PATCH whose worker died (or whose client went silent) past its lease: the next PATCH
    takes the upload over, and the old one can no longer add a byte."""
    location = new_upload(add_record_client, user)
    lapsed = UploadStore(engine, utc_now, expiry=timedelta(days=1), lease=timedelta(seconds=-1))
    with lapsed.patch(owned(store, location, user)) as old:
        assert old is not None
        old.append(WAV[:MIN_PATCH_BYTES])
        # ... then nothing for longer than its lease.
        with engine.begin() as conn:
            conn.execute(uploads.update().values(patch_until=utc_now() - timedelta(seconds=1)))
        result = patch(add_record_client, user, location, MIN_PATCH_BYTES, WAV[MIN_PATCH_BYTES:])
        assert result.status_code == 204, result.text
        with pytest.raises(LockLost):
            old.append(b"late")
    assert head(add_record_client, user, location).headers["upload-offset"] == str(len(WAV))


def test_a_patch_after_completion_with_another_offset_is_409(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    location = new_upload(add_record_client, user)
    patch(add_record_client, user, location, 0, WAV)
    result = patch(add_record_client, user, location, 10, WAV[10:])
    assert result.status_code == 409
    assert "complete" in result.json["description"]


def test_every_answer_says_tus_resumable(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    answers: Iterator[Any] = iter(
        [
            add_record_client.simulate_post("/uploads", headers=tus(user["token"])),
            add_record_client.simulate_head("/uploads/nope", headers=tus(user["token"])),
            add_record_client.simulate_patch("/uploads/nope", headers=tus(user["token"])),
        ]
    )
    for answer in answers:
        assert answer.status_code in (400, 404)
        assert answer.headers["tus-resumable"] == "1.0.0"
        assert (
            answer.headers["content-type"].startswith("application/json")
            or answer.status_code == 404
        )


def test_the_length_cannot_change_on_a_later_request(
    add_record_client: TestClient, user: dict[str, str]
) -> None:
    location = new_upload(add_record_client, user)
    result = patch(
        add_record_client, user, location, 0, WAV, headers={"Upload-Length": str(len(WAV) + 1)}
    )
    assert result.status_code == 400
    assert result.json["title"] == "Invalid Upload-Length"
    assert head(add_record_client, user, location).headers["upload-offset"] == "0"


def test_resumable_uploads_on_sqlite(sqlite_url: str, spool_dir: Any) -> None:
    """The embedded database of `make run` keeps uploads too: create, cut, resume, record."""
    engine = create_engine(sqlite_url)
    settings = Settings(database_url=sqlite_url, spool_dir=str(spool_dir), ffmpeg_timeout_s=60)
    try:
        who = TestClient(create_user_app(settings, engine)).simulate_post(
            "/user", json={"name": f"sqlite-{uuid.uuid4()}"}
        )
        client = TestClient(create_app(settings, engine))
        sqlite_user = dict(who.json)
        location = new_upload(client, sqlite_user, name="lite.wav")
        half = 2 * MIN_PATCH_BYTES
        assert patch(client, sqlite_user, location, 0, WAV[:half]).status_code == 204
        assert head(client, sqlite_user, location).headers["upload-offset"] == str(half)
        done = patch(client, sqlite_user, location, half, WAV[half:])
        assert done.status_code == 204, done.text
        assert "record-location" in done.headers
    finally:
        engine.dispose()
