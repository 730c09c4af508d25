"""End to end: the gateway's record cache (nginx proxy_cache on GET/HEAD /record).

Which answers came from the cache is read from the gateway's access log ("cache": MISS when an
entry was filled, HIT when a fresh entry answered, REVALIDATED when an entry answered after
get_record confirmed the record, BYPASS when the cache left the request to get_record). What the
cache answers is compared with what get_record answers itself: the same request with the id in
capitals, which the cache leaves alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devstack.stack import Stack
from tests.helpers import pcm16
from tests.stacks import (
    COMPOSE_STACK,
    UNLIMITED,
    Gateway,
    gateway_under_test,
    needs_nginx,
    new_user,
    upload,
)

pytestmark = needs_nginx

MIB = 1024 * 1024
CACHE_BOUND = 8 * MIB
"""RECORD_CACHE_BYTES of the stack under test (devstack/compose.py sets the same for compose)."""
FROM_CACHE = {"HIT", "REVALIDATED"}
COMPARED_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "ETag",
    "Last-Modified",
    "Cache-Control",
    "Content-Disposition",
)


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    with gateway_under_test(
        request, RECORD_CACHE_BYTES=str(CACHE_BOUND), GUNICORN_WORKERS="2", **UNLIMITED
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def owner(stack: Gateway) -> dict[str, str]:
    return new_user(stack)


def store(stack: Gateway, user: dict[str, str], wav: bytes, name: str = "take.wav") -> str:
    """Upload `wav` for `user`; the record's download URL, as the service hands it out."""
    answer = upload(stack, user, wav, name=name)
    assert answer.status_code == 201, answer.text
    return f"{stack.url}/record?{answer.json()['url'].split('?', 1)[1]}"


@pytest.fixture
def record(stack: Gateway, owner: dict[str, str]) -> str:
    return store(stack, owner, pcm16(3.0, 44100, 2))


def cache_status(stack: Gateway, answer: requests.Response) -> str:
    """The "cache" field of the access log line of `answer` (found by its request id)."""
    request_id = answer.headers["X-Request-ID"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for line in stack.log("nginx").splitlines():
            if f'"request_id":"{request_id}"' in line:
                return str(json.loads(line[line.index("{") :])["cache"])
        time.sleep(0.1)
    raise AssertionError(f"no access log line for request {request_id}")


def bypassing(url: str) -> str:
    """The same request as `url`, in a form the cache leaves to get_record: the id in capitals
    (get_record reads a UUID in any case)."""
    query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
    return url.replace(query["id"], query["id"].upper())


def answer_of(response: requests.Response) -> tuple[int, dict[str, str | None], bytes]:
    """What a client sees of an answer: status, the headers that describe the bytes, and the
    bytes (of an error, its title)."""
    headers = {name: response.headers.get(name) for name in COMPARED_HEADERS}
    if response.headers.get("Content-Type") == "application/json":
        # The gateway words its own errors' descriptions (and so their length) itself.
        del headers["Content-Length"]
        return response.status_code, headers, response.json()["title"].encode()
    return response.status_code, headers, response.content


def test_first_download_fills_the_cache_and_later_ones_come_from_it(
    stack: Gateway, record: str
) -> None:
    first = requests.get(record, timeout=30)
    second = requests.get(record, timeout=30)
    assert (first.status_code, second.status_code) == (200, 200)
    assert cache_status(stack, first) == "MISS"
    assert cache_status(stack, second) in FROM_CACHE
    assert second.content == first.content
    assert second.headers["ETag"] == f'"{hashlib.sha256(first.content).hexdigest()}"'
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert "X-Accel-Expires" not in second.headers
    # Fresh to the end of the second get_record found the record in; then confirmed first.
    time.sleep(1.1)
    later = requests.get(record, timeout=30)
    assert later.content == first.content
    assert cache_status(stack, later) == "REVALIDATED"


def test_parameter_order_and_other_parameters_share_the_entry(
    stack: Gateway, record: str, owner: dict[str, str]
) -> None:
    assert cache_status(stack, requests.get(record, timeout=30)) == "MISS"
    record_id = record.split("id=")[1].split("&", maxsplit=1)[0]
    reordered = requests.get(
        f"{stack.url}/record",
        params={"t": "1", "user": owner["id"], "token": owner["token"], "id": record_id},
        timeout=30,
    )
    assert reordered.status_code == 200
    assert cache_status(stack, reordered) in FROM_CACHE


def test_ambiguous_queries_never_touch_the_cache(
    stack: Gateway, record: str, owner: dict[str, str]
) -> None:
    """A query the cache cannot read as one id and one user goes to get_record as it is: its
    answer is get_record's, and no entry is made or used for it."""
    other = new_user(stack)
    record_id = record.split("id=")[1].split("&", maxsplit=1)[0]
    base = f"{stack.url}/record?id={record_id}"
    assert requests.get(f"{base}&user={other['id']}", timeout=30).status_code == 404
    for query in (
        f"&user={other['id']}&user={owner['id']}",
        f"&user={owner['id']}&user={other['id']}",
        f"&user={other['id']}&%75ser={owner['id']}",
        f"&id={record_id}&user={owner['id']}",
        f"&user={owner['id']}&id",
        f"&user={owner['id']}&user",
    ):
        answer = requests.get(base + query, timeout=30)
        assert cache_status(stack, answer) == "BYPASS", query
    # Whatever get_record made of those, the other user's entry is still theirs: 404.
    after = requests.get(f"{base}&user={other['id']}", timeout=30)
    assert after.status_code == 404
    assert cache_status(stack, after) != "BYPASS"


def test_conditions_nginx_would_judge_otherwise_go_to_get_record(
    stack: Gateway, record: str
) -> None:
    """If-None-Match with If-Modified-Since (RFC 9110: the first decides, nginx wants both),
    If-Match, If-Unmodified-Since and Ranges other than one plain range: get_record answers."""
    etag = requests.get(record, timeout=30).headers["ETag"]
    old_date = "Mon, 01 Jan 2001 00:00:00 GMT"
    for headers, status in (
        ({"If-None-Match": etag, "If-Modified-Since": old_date}, 304),
        ({"If-Match": '"another"'}, 412),
        ({"If-Match": etag}, 200),
        ({"If-Match": f'"x", {etag}'}, 200),
        ({"If-Match": etag, "If-Unmodified-Since": old_date}, 200),
        ({"If-Unmodified-Since": old_date}, 412),
        ({"If-Unmodified-Since": "yesterday"}, 200),
        ({"If-Modified-Since": "Xyz, 01 Jan 2099 00:00:00 GMT"}, 200),
        ({"Range": "bytes=0-1", "If-Range": "Xyz, 01 Jan 2099 00:00:00 GMT"}, 200),
        ({"Range": "bytes=0-1,5-6"}, 200),
        ({"Range": "bytes=0-1,999999999-"}, 200),
        ({"Range": "bytes=abc"}, 200),
        ({"Range": "bytes = 0-1"}, 206),
    ):
        answer = requests.get(record, headers=headers, timeout=30)
        assert (answer.status_code, cache_status(stack, answer)) == (status, "BYPASS"), headers


def test_users_never_see_each_others_record_through_the_cache(
    stack: Gateway, record: str, owner: dict[str, str]
) -> None:
    assert requests.get(record, timeout=30).status_code == 200
    stranger = new_user(stack)
    record_id = record.split("id=")[1].split("&", maxsplit=1)[0]
    for _ in range(2):
        answer = requests.get(
            f"{stack.url}/record", params={"id": record_id, "user": stranger["id"]}, timeout=30
        )
        assert answer.status_code == 404
        assert answer.headers["Content-Type"] == "application/json"
    assert requests.get(record, timeout=30).status_code == 200


def test_a_record_deleted_while_cached_is_gone_on_the_next_request(
    stack: Gateway, record: str, owner: dict[str, str]
) -> None:
    for _ in range(2):
        assert requests.get(record, timeout=30).status_code == 200
    deleted = requests.delete(
        record, headers={"Authorization": f"Bearer {owner['token']}"}, timeout=30
    )
    assert deleted.status_code == 204
    gone = requests.get(record, timeout=30)
    assert gone.status_code == 404
    assert cache_status(stack, gone) == "EXPIRED"
    assert requests.head(record, timeout=30).status_code == 404
    assert requests.get(record, headers={"Range": "bytes=0-9"}, timeout=30).status_code == 404
    etag_check = requests.get(record, headers={"If-None-Match": '"x"'}, timeout=30)
    assert etag_check.status_code == 404


def test_ranges_and_conditions_from_the_cache_answer_as_get_record(
    stack: Gateway, record: str
) -> None:
    whole = requests.get(record, timeout=30)
    etag, modified = whole.headers["ETag"], whole.headers["Last-Modified"]
    size = len(whole.content)
    cases: list[tuple[str, dict[str, str]]] = [
        ("GET", {}),
        ("GET", {"Range": "bytes=0-9"}),
        ("GET", {"Range": f"bytes={size - 100}-"}),
        ("GET", {"Range": "bytes=-100"}),
        ("GET", {"Range": f"bytes=100-{size * 2}"}),
        ("GET", {"Range": f"bytes={size}-"}),
        ("GET", {"Range": "bytes=5-4"}),
        ("GET", {"Range": "bytes=-0"}),
        ("GET", {"Range": "bytes=10-19", "If-Range": etag}),
        ("GET", {"Range": "bytes=10-19", "If-Range": '"another"'}),
        ("GET", {"Range": "bytes=10-19", "If-Range": modified}),
        ("GET", {"Range": "bytes=10-19", "If-Range": "Mon, 01 Jan 2001 00:00:00 GMT"}),
        ("GET", {"If-None-Match": etag}),
        ("GET", {"If-None-Match": f'"other", W/{etag}'}),
        ("GET", {"If-None-Match": '"other"'}),
        ("GET", {"If-Modified-Since": modified}),
        ("GET", {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}),
        ("HEAD", {}),
        ("HEAD", {"Range": "bytes=0-9"}),
        ("HEAD", {"If-None-Match": etag}),
    ]
    for method, headers in cases:
        cached = requests.request(method, record, headers=headers, timeout=30)
        assert cache_status(stack, cached) in FROM_CACHE, (method, headers)
        direct = requests.request(method, bypassing(record), headers=headers, timeout=30)
        assert cache_status(stack, direct) == "BYPASS", (method, headers)
        assert answer_of(cached) == answer_of(direct), (method, headers)
    # An empty If-Match (to nginx, as to get_record, a condition that fails): the JSON 412.
    failed = requests.get(record, headers={"If-Match": ""}, timeout=30)
    assert (failed.status_code, failed.json()["title"]) == (412, "Precondition failed")
    unsatisfiable = requests.get(record, headers={"Range": f"bytes={size}-"}, timeout=30)
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["Content-Range"] == f"bytes */{size}"
    assert f"{size} bytes" in unsatisfiable.json()["description"]
    assert unsatisfiable.headers["X-Request-ID"].count(",") == 0


def test_clients_asking_at_once_fill_the_entry_once(stack: Gateway, owner: dict[str, str]) -> None:
    url = store(stack, owner, pcm16(60.0, 44100, 2))
    together = threading.Barrier(8)

    def fetch(_: int) -> requests.Response:
        together.wait()
        return requests.get(url, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(fetch, range(8)))
    assert {answer.status_code for answer in answers} == {200}
    assert len({answer.content for answer in answers}) == 1
    assert [cache_status(stack, answer) for answer in answers].count("MISS") == 1


def cache_usage(stack: Gateway) -> int:
    """Bytes of the files in the gateway's record cache directory."""
    if isinstance(stack, Stack):
        assert stack.record_cache_dir is not None
        total = 0
        for path in stack.record_cache_dir.rglob("*"):
            with contextlib.suppress(FileNotFoundError):  # evicted meanwhile
                total += path.stat().st_size if path.is_file() else 0
        return total
    assert COMPOSE_STACK is not None
    # As the cache's owner, nginx's workers' user: root in the container has no capability to
    # read others' files.
    directory = "/var/cache/nginx-records"
    owner = COMPOSE_STACK.compose.run("exec", "-T", "nginx", "stat", "-c", "%u", directory).stdout
    usage = COMPOSE_STACK.compose.run(
        "exec",
        "-T",
        "--user",
        owner.strip(),
        "nginx",
        "sh",
        "-c",
        f"total=0; for file in $(find {directory} -type f); do"
        ' size=$(wc -c < "$file") || exit 1; total=$((total + size)); done; echo $total',
    ).stdout
    return int(usage.split()[0])


def test_a_full_cache_evicts_and_keeps_serving(stack: Gateway, owner: dict[str, str]) -> None:
    wav = pcm16(100.0, 44100, 1)
    urls = [store(stack, owner, wav, f"take {n}.wav") for n in range(4)]
    sizes = [len(requests.get(url, timeout=60).content) for url in urls]
    assert sum(sizes) > CACHE_BOUND, sizes
    # nginx's cache manager evicts the least recently used entries, the first record among them,
    # until the cache is back within its bound.
    deadline = time.monotonic() + 30
    while cache_usage(stack) > CACHE_BOUND and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cache_usage(stack) <= CACHE_BOUND
    evicted = requests.get(urls[0], timeout=60)
    assert evicted.status_code == 200
    assert len(evicted.content) == sizes[0]
    assert cache_status(stack, evicted) == "MISS"


def test_a_restarted_gateway_serves_from_its_warm_cache(stack: Gateway, record: str) -> None:
    before = requests.get(record, timeout=30)
    assert cache_status(stack, before) == "MISS"
    stack.restart_gateway()
    after = requests.get(record, timeout=30)
    assert after.status_code == 200
    assert after.content == before.content
    assert cache_status(stack, after) in FROM_CACHE
    ranged = requests.get(record, headers={"Range": "bytes=1-2"}, timeout=30)
    assert ranged.content == before.content[1:3]


def test_a_cached_record_is_not_served_while_get_record_is_down(
    stack: Gateway, record: str
) -> None:
    """Never stale: once an answer has lapsed, without get_record to confirm the record the
    gateway answers 502."""
    assert requests.get(record, timeout=30).status_code == 200
    stack.stop_function("get_record")
    time.sleep(1.1)
    try:
        down = requests.get(record, timeout=30)
        assert down.status_code == 502
        assert down.headers["Content-Type"] == "application/json"
    finally:
        stack.start_function("get_record")
        stack.wait_function("get_record")
    assert requests.get(record, timeout=30).status_code == 200


def test_the_cache_directory_is_the_gateways_own(stack: Gateway) -> None:
    """Local stacks keep it beside nginx's run directory; compose on its own volume."""
    if isinstance(stack, Stack):
        assert stack.record_cache_dir is not None
        assert stack.record_cache_dir.is_dir()
        return
    assert COMPOSE_STACK is not None
    mounts = subprocess.run(
        COMPOSE_STACK.compose.command("config", "--format", "json"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    volumes = json.loads(mounts)["services"]["nginx"]["volumes"]
    assert any(
        volume.get("target") == "/var/cache/nginx-records" and volume.get("type") == "volume"
        for volume in volumes
    )
