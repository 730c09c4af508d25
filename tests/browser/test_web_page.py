"""The web page at `/` in a real browser (Playwright + Debian's chromium) against the whole stack.

Everything goes through nginx as a person would: create an account, upload WAVs, play, seek,
download and delete the MP3s. `make screenshot` also renews docs/screenshot.png (the page with two
records); otherwise the screenshot goes to a temporary directory and the tree stays clean.
"""

from __future__ import annotations

import os
import re
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.helpers import pcm16
from tests.stacks import (
    COMPOSE_STACK,
    CuttableProxy,
    Gateway,
    gateway_under_test,
    module_gateway,
    needs_nginx,
    records_of,
)

try:
    from playwright.sync_api import (
        Browser,
        Locator,
        Page,
        ViewportSize,
        expect,
        sync_playwright,
    )
except ImportError:
    HAVE_PLAYWRIGHT = False
else:
    HAVE_PLAYWRIGHT = True

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "screenshot.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1100, "height": 900}
PHONE: ViewportSize = {"width": 360, "height": 740}
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Conversions take a few seconds on a busy machine; the page waits for them, so do the tests.
SLOW_MS = 60_000

pytestmark = [
    pytest.mark.skipif(
        not HAVE_PLAYWRIGHT,
        reason="the playwright package is not installed (it is in the project's test extras)",
    ),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is missing (apt-get install chromium; .ci/run installs it)",
    ),
    needs_nginx,
]


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    with gateway_under_test(request, GUNICORN_WORKERS="2") as stack:
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_page(browser: Browser, viewport: ViewportSize) -> Page:
    context = browser.new_context(
        viewport=viewport,
        locale="en-US",
        accept_downloads=True,
        permissions=["clipboard-read", "clipboard-write"],
    )
    page = context.new_page()
    page.set_default_timeout(SLOW_MS)
    return page


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    page = new_page(browser, DESKTOP)
    yield page
    page.context.close()


def sign_up(
    page: Page, stack: Gateway, name: str | None = None, via: str | None = None
) -> dict[str, str]:
    """Create an account through the page (served by the gateway, or `via` another address in
    front of it); returns what the page stored."""
    page.goto(via or stack.url)
    page.get_by_label("Your name").fill(name or f"Tester {uuid.uuid4().hex[:8]}")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#credentials")).to_be_visible()
    return stored_account(page)


def stored_account(page: Page) -> Any:
    return page.evaluate("JSON.parse(localStorage.getItem('audio-uploads.account'))")


def choose_files(page: Page, tmp_path: Path, files: dict[str, bytes]) -> None:
    paths = []
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content)
        paths.append(path)
    page.get_by_label("Drop WAV files here").set_input_files(paths)


def upload_row(page: Page, name: str) -> Locator:
    return page.locator(".upload", has_text=name)


def record_item(page: Page, name: str) -> Locator:
    return page.locator(".record").filter(has=page.get_by_role("heading", name=name, exact=True))


def upload(page: Page, tmp_path: Path, name: str, seconds: float) -> Locator:
    choose_files(page, tmp_path, {name: pcm16(seconds, 44100, 2)})
    expect(upload_row(page, name)).to_contain_text("Done", timeout=SLOW_MS)
    record = record_item(page, name)
    expect(record).to_be_visible()
    return record


def audio_duration(audio: Locator) -> float:
    """The <audio> element's duration, once its metadata has loaded."""
    return float(
        audio.evaluate(
            """audio => new Promise((resolve, reject) => {
                if (audio.readyState >= HTMLMediaElement.HAVE_METADATA) resolve(audio.duration);
                audio.addEventListener("loadedmetadata", () => resolve(audio.duration));
                audio.addEventListener("error", () => reject(new Error("audio error")));
                setTimeout(() => reject(new Error(`no metadata from ${audio.src}`)), 60000);
            })"""
        )
    )


def test_creating_an_account_shows_the_token_once_and_keeps_it(
    browser: Browser, stack: Gateway
) -> None:
    page = new_page(browser, DESKTOP)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    name = f"Алиса {uuid.uuid4().hex[:6]}"

    account = sign_up(page, stack, name)

    credentials = page.locator("#credentials")
    expect(credentials).to_contain_text("cannot be shown again")
    token = page.locator("#credentials-token").inner_text()
    assert UUID.match(token)
    assert account == {
        "id": page.locator("#credentials-id").inner_text(),
        "token": token,
        "name": name,
    }
    expect(page.locator("#who")).to_have_text(f"Signed in as {name}")
    expect(page.get_by_role("status")).to_contain_text("Account created")
    listing = records_of(stack, {"id": account["id"], "token": token})
    assert listing.status_code == 200
    # A new visit: still signed in, the token is not shown again.
    page.reload()
    expect(page.locator("#who")).to_have_text(f"Signed in as {name}")
    expect(credentials).to_be_hidden()
    expect(page.get_by_text("No records yet")).to_be_visible()
    assert token not in page.content()
    assert problems == []  # no script errors, no Content-Security-Policy violations
    page.context.close()


def test_a_taken_name_is_refused_in_words(page: Page, stack: Gateway) -> None:
    name = f"Taken {uuid.uuid4().hex[:8]}"
    requests.post(f"{stack.url}/user", json={"name": name}, timeout=10).raise_for_status()
    page.goto(stack.url)
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("status")).to_have_text(
        "Name taken: another user already has this name"
    )
    assert stored_account(page) is None


def test_forget_and_use_an_existing_account(page: Page, stack: Gateway, tmp_path: Path) -> None:
    account = sign_up(page, stack)
    upload(page, tmp_path, "kept.wav", 1.0)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Forget this account").click()
    expect(page.get_by_label("Your name")).to_be_visible()
    expect(page.locator("#who")).to_be_hidden()
    assert stored_account(page) is None

    page.get_by_text("Use an existing account").click()
    page.get_by_label("Account id").fill(account["id"])
    page.get_by_label("Token").fill(str(uuid.uuid4()))
    page.get_by_role("button", name="Use this account").click()
    expect(page.get_by_role("status")).to_contain_text("Unauthorized")
    assert stored_account(page) is None

    page.get_by_label("Token").fill(account["token"])
    page.get_by_label(re.compile("^Name")).fill("Back again")
    page.get_by_role("button", name="Use this account").click()
    expect(page.locator("#who")).to_have_text("Signed in as Back again")
    expect(record_item(page, "kept.wav")).to_be_visible()
    assert stored_account(page) == {**account, "name": "Back again"}


def test_upload_shows_real_progress_then_the_record_plays_and_seeks(
    page: Page, stack: Gateway, tmp_path: Path
) -> None:
    sign_up(page, stack)
    media_statuses: list[int] = []
    page.on(
        "response",
        lambda r: media_statuses.append(r.status) if "/record?id=" in r.url else None,
    )
    choose_files(page, tmp_path, {"three seconds.wav": pcm16(3.0, 44100, 2)})

    row = upload_row(page, "three seconds.wav")
    expect(row).to_contain_text("Done", timeout=SLOW_MS)
    progress = row.locator("progress")
    size = (tmp_path / "three seconds.wav").stat().st_size
    assert progress.evaluate("p => p.max") == size  # the WAV's bytes, as the server kept them
    assert progress.evaluate("p => p.value") == size

    record = record_item(page, "three seconds.wav")
    expect(record).to_contain_text("0:03")
    expect(record.locator(".record-size")).to_have_text(re.compile(r"^\d+ KB$"))
    audio = record.locator("audio")
    expect(audio).to_have_attribute("preload", "metadata")
    assert audio_duration(audio) == pytest.approx(3.0, abs=0.1)

    seeked = audio.evaluate(
        """audio => new Promise(resolve => {
            audio.addEventListener("seeked", () => resolve({
                current: audio.currentTime,
                end: audio.seekable.length ? audio.seekable.end(0) : -1,
            }), {once: true});
            audio.currentTime = 2.0;
        })"""
    )
    assert seeked["current"] == pytest.approx(2.0, abs=0.05)
    assert seeked["end"] == pytest.approx(audio_duration(audio), abs=0.05)
    assert 206 in media_statuses  # the browser read the MP3 in ranges


def test_download_and_copy_link(page: Page, stack: Gateway, tmp_path: Path) -> None:
    sign_up(page, stack)
    record = upload(page, tmp_path, "Take 1.wav", 1.5)

    with page.expect_download() as download_info:
        record.get_by_role("link", name="Download").click()
    download = download_info.value
    assert download.suggested_filename == "Take 1.mp3"
    mp3 = Path(download.path()).read_bytes()
    assert len(mp3) > 0
    assert mp3.startswith(b"ID3")

    record.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("status")).to_have_text("Link copied to the clipboard.")
    path = record.locator("audio").get_attribute("src")
    assert path is not None
    assert path.startswith("/record?id=")  # played from the page's own origin
    public = stack.public_base_url or stack.url
    assert page.evaluate("navigator.clipboard.readText()") == f"{public}{path}"


PUBLIC_BASE_URL = "https://audio.example.com"
public_stack = module_gateway("public", PUBLIC_BASE_URL=PUBLIC_BASE_URL)
"""A gateway whose record URLs name the public host, not the address the page came from."""


@pytest.mark.skipif(
    COMPOSE_STACK is not None,
    reason="the compose stack has its own PUBLIC_BASE_URL; the cut-network tests reach it through"
    " another address",
)
def test_the_page_plays_from_its_own_origin_whatever_the_public_url(
    page: Page, public_stack: Gateway, tmp_path: Path
) -> None:
    """Record URLs name PUBLIC_BASE_URL (another host than the one serving the page, which its
    Content-Security-Policy keeps media to): the page plays and downloads from its own origin,
    and "Copy link" gives the public URL."""
    sign_up(page, public_stack)
    record = upload(page, tmp_path, "public.wav", 1.0)
    plays_for(record, 1.0)
    path = record.locator("audio").get_attribute("src")
    assert path is not None
    record.get_by_role("button", name="Copy link").click()
    expect(page.get_by_role("status")).to_have_text("Link copied to the clipboard.")
    assert page.evaluate("navigator.clipboard.readText()") == f"{PUBLIC_BASE_URL}{path}"


def test_delete_removes_the_record(page: Page, stack: Gateway, tmp_path: Path) -> None:
    sign_up(page, stack)
    upload(page, tmp_path, "keep me.wav", 1.0)
    record = upload(page, tmp_path, "drop me.wav", 1.0)
    path = record.locator("audio").get_attribute("src")
    assert path is not None
    url = f"{stack.url}{path}"
    assert requests.get(url, timeout=10).status_code == 200
    both = page.locator("#usage").inner_text()
    assert re.fullmatch(r"\d+ KB of \d+\.\d GB used", both), both

    page.once("dialog", lambda dialog: dialog.dismiss())
    record.get_by_role("button", name="Delete").click()
    expect(record).to_be_visible()

    page.once("dialog", lambda dialog: dialog.accept())
    record.get_by_role("button", name="Delete").click()
    expect(record).to_have_count(0)
    expect(page.get_by_role("status")).to_contain_text("Deleted")
    expect(record_item(page, "keep me.wav")).to_be_visible()
    expect(page.locator("#usage")).not_to_have_text(both)
    assert requests.get(url, timeout=10).status_code == 404
    page.reload()
    expect(record_item(page, "keep me.wav")).to_be_visible()
    expect(record_item(page, "drop me.wav")).to_have_count(0)


def test_a_text_file_is_refused_in_words(page: Page, stack: Gateway, tmp_path: Path) -> None:
    sign_up(page, stack)
    choose_files(page, tmp_path, {"notes.wav": b"hello"})
    row = upload_row(page, "notes.wav")
    expect(row).to_contain_text("Failed")
    expect(row).to_contain_text("Not a WAV file: the body is not a RIFF/WAVE file")
    expect(page.get_by_role("status")).to_have_text(
        "Not a WAV file: the body is not a RIFF/WAVE file"
    )
    expect(page.get_by_text("No records yet")).to_be_visible()


def test_a_dropped_file_is_uploaded(page: Page, stack: Gateway) -> None:
    sign_up(page, stack)
    page.locator("#drop-zone").evaluate(
        """(zone, bytes) => {
            const files = new DataTransfer();
            files.items.add(new File([new Uint8Array(bytes)], "dropped.wav", {type: "audio/wav"}));
            for (const type of ["dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, {dataTransfer: files, cancelable: true}));
            }
        }""",
        list(pcm16(0.5, 8000, 1)),
    )
    expect(upload_row(page, "dropped.wav")).to_contain_text("Done", timeout=SLOW_MS)
    expect(record_item(page, "dropped.wav")).to_be_visible()


def test_a_network_error_is_shown_in_words_and_the_upload_waits_it_out(
    page: Page, stack: Gateway, tmp_path: Path
) -> None:
    sign_up(page, stack)
    page.route(re.compile(r"/uploads"), lambda route: route.abort("connectionreset"))
    choose_files(page, tmp_path, {"lost.wav": pcm16(0.5, 8000, 1)})
    row = upload_row(page, "lost.wav")
    expect(row).to_contain_text("Waiting")
    expect(row).to_contain_text("Network error")
    expect(page.get_by_role("status")).to_contain_text("Network error")
    page.unroute(re.compile(r"/uploads"))
    expect(row).to_contain_text("Done", timeout=SLOW_MS)
    expect(record_item(page, "lost.wav")).to_be_visible()


@pytest.fixture
def slow_network(stack: Gateway) -> Iterator[CuttableProxy]:
    """A 1.5 MB/s uplink to the gateway that the test can cut."""
    network = CuttableProxy(stack.port, upload_bytes_per_s=1_500_000)
    yield network
    network.close()


def patch_offsets(page: Page) -> list[int]:
    """The Upload-Offset of every PATCH the page sends from now on."""
    offsets: list[int] = []
    page.on(
        "request",
        lambda r: offsets.append(int(r.headers["upload-offset"])) if r.method == "PATCH" else None,
    )
    return offsets


def wait_for_kept(page: Page, stack: Gateway) -> None:
    """Until the server has kept some of the page's (only) unfinished upload."""
    token = stored_account(page)["token"]
    for _ in range(600):
        pending = page.evaluate("JSON.parse(localStorage.getItem('audio-uploads.pending'))")
        if pending:
            state = requests.head(
                f"{stack.url}{pending[0]['url']}",
                headers={"Tus-Resumable": "1.0.0", "Authorization": f"Bearer {token}"},
                timeout=10,
            )
            if int(state.headers.get("Upload-Offset", 0)) > 0:
                return
        page.wait_for_timeout(100)
    raise AssertionError("the server kept nothing of the upload")


def progress_share(row: Locator) -> float:
    return float(row.locator("progress").evaluate("p => p.value / p.max"))


def wait_for_share(page: Page, row: Locator, share: float) -> None:
    row.locator("progress").evaluate(
        """(p, share) => new Promise(resolve => {
            const check = () => p.value / p.max >= share ? resolve() : setTimeout(check, 50);
            check();
        })""",
        share,
    )


def plays_for(record: Locator, seconds: float) -> None:
    assert audio_duration(record.locator("audio")) == pytest.approx(seconds, abs=0.1)


RESUMED_SECONDS = 60.0
RESUMED_WAV = pcm16(RESUMED_SECONDS, 44100, 2)
"""10.6 MB: seven seconds on the slow network. Chromium counts a body as sent once its network
stack and the kernel hold it (here the first 4 MB or so at once), so the tests act when the
progress bar is well past that."""


def test_a_cut_network_resumes_where_the_server_stopped(
    page: Page, stack: Gateway, tmp_path: Path, slow_network: CuttableProxy
) -> None:
    """The network drops mid-upload (every connection cut, the browser offline), then comes
    back: the page asks the server where it stopped and sends the rest."""
    sign_up(page, stack, via=slow_network.url)
    offsets = patch_offsets(page)
    choose_files(page, tmp_path, {"train.wav": RESUMED_WAV})
    row = upload_row(page, "train.wav")
    wait_for_share(page, row, 0.6)
    page.context.set_offline(True)
    slow_network.cut()
    expect(row).to_contain_text("Network error")
    expect(row.locator(".upload-state")).to_have_text("Waiting…")
    page.context.set_offline(False)
    expect(row).to_contain_text("Done", timeout=SLOW_MS)
    assert offsets[0] == 0
    assert any(0 < offset < len(RESUMED_WAV) for offset in offsets[1:]), offsets
    plays_for(record_item(page, "train.wav"), RESUMED_SECONDS)


def test_a_reloaded_page_resumes_when_the_file_is_chosen_again(
    page: Page, stack: Gateway, tmp_path: Path, slow_network: CuttableProxy
) -> None:
    sign_up(page, stack, via=slow_network.url)
    choose_files(page, tmp_path, {"reloaded.wav": RESUMED_WAV})
    wait_for_kept(page, stack)
    page.reload()
    row = upload_row(page, "reloaded.wav")
    expect(row).to_contain_text("choose “reloaded.wav” again to resume")
    expect(row.locator("progress")).not_to_have_js_property("value", 0)
    kept = float(row.locator("progress").evaluate("p => p.value"))
    offsets = patch_offsets(page)
    page.get_by_label("Drop WAV files here").set_input_files(tmp_path / "reloaded.wav")
    expect(row).to_contain_text("Done", timeout=SLOW_MS)
    assert offsets[0] >= kept > 0
    expect(page.locator(".upload", has_text="reloaded.wav")).to_have_count(1)
    plays_for(record_item(page, "reloaded.wav"), RESUMED_SECONDS)


def test_pause_and_resume(
    page: Page, stack: Gateway, tmp_path: Path, slow_network: CuttableProxy
) -> None:
    sign_up(page, stack, via=slow_network.url)
    offsets = patch_offsets(page)
    choose_files(page, tmp_path, {"paused.wav": RESUMED_WAV})
    row = upload_row(page, "paused.wav")
    wait_for_share(page, row, 0.6)
    row.get_by_role("button", name="Pause paused.wav").click()
    expect(row.locator(".upload-state")).to_have_text("Paused")
    held = progress_share(row)
    page.wait_for_timeout(1000)
    assert progress_share(row) == held
    row.get_by_role("button", name="Resume paused.wav").click()
    expect(row).to_contain_text("Done", timeout=SLOW_MS)
    assert len(offsets) >= 2
    assert offsets[-1] > 0
    plays_for(record_item(page, "paused.wav"), RESUMED_SECONDS)


def test_load_more_pages_through_the_records(page: Page, stack: Gateway) -> None:
    account = sign_up(page, stack)
    for name in ("older.wav", "newer.wav"):
        created = requests.post(
            f"{stack.url}/record",
            params={"user": account["id"], "name": name},
            data=pcm16(0.5, 8000, 1),
            headers={"Content-Type": "audio/wav", "Authorization": f"Bearer {account['token']}"},
            timeout=60,
        )
        assert created.status_code == 201, created.text
    # The real server, one record a page (the page asks for 50).
    page.route(
        re.compile(r"/records\?"),
        lambda route: route.continue_(url=route.request.url.replace("limit=50", "limit=1")),
    )
    page.reload()
    expect(page.locator(".record-name")).to_have_text(["newer.wav"])
    page.get_by_role("button", name="Load more").click()
    expect(page.locator(".record-name")).to_have_text(["newer.wav", "older.wav"])
    expect(page.get_by_role("button", name="Load more")).to_be_hidden()


def test_the_file_picker_is_reachable_by_keyboard(page: Page, stack: Gateway) -> None:
    sign_up(page, stack)
    page.reload()  # the keyboard starts at the top of the page
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file-input":
            break
    expect(page.get_by_label("Drop WAV files here")).to_be_focused()
    outline = page.locator("#drop-zone").evaluate("zone => getComputedStyle(zone).outlineStyle")
    assert outline == "solid"  # the focus is visible on the drop zone


def test_the_page_fits_a_phone(browser: Browser, stack: Gateway, tmp_path: Path) -> None:
    page = new_page(browser, PHONE)
    sign_up(page, stack)
    upload(page, tmp_path, "A rather long recording name from the phone.wav", 1.0)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.context.close()


def test_screenshot_with_two_records(page: Page, stack: Gateway, tmp_path: Path) -> None:
    sign_up(page, stack, "Alice Martin")
    page.get_by_role("button", name="I have saved the token").click()
    page.get_by_role("button", name="Dismiss").click()
    choose_files(
        page,
        tmp_path,
        {"Morning birds.wav": pcm16(4.0, 44100, 2), "Interview take 2.wav": pcm16(7.0, 22050, 1)},
    )
    for name in ("Morning birds.wav", "Interview take 2.wav"):
        expect(upload_row(page, name)).to_contain_text("Done", timeout=SLOW_MS)
        audio_duration(record_item(page, name).locator("audio"))
    expect(page.locator(".record")).to_have_count(2)
    expect(record_item(page, "Morning birds.wav")).to_contain_text("0:04")
    expect(record_item(page, "Interview take 2.wav")).to_contain_text("0:07")
    expect(page.locator("#who")).to_have_text("Signed in as Alice Martin")
    target = SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") else tmp_path / "screenshot.png"
    page.screenshot(path=target, full_page=True)
    width, height, pixels = png_size_and_pixels(target.read_bytes())
    assert width == DESKTOP["width"]
    assert height >= DESKTOP["height"]
    assert len(set(pixels)) > 8, "the screenshot is nearly blank"


def png_size_and_pixels(png: bytes) -> tuple[int, int, bytes]:
    """Width and height from a PNG's IHDR, and its decompressed image data."""
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    data, at = b"", 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        if png[at + 4 : at + 8] == b"IDAT":
            data += png[at + 8 : at + 8 + length]
        at += 12 + length
    return width, height, zlib.decompress(data)
