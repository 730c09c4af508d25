"""Every setting of the service, declared once, and the typed object the functions read.

`DECLARED` is the one list of settings: the functions' (`Settings`), gunicorn's
(deploy/gunicorn_conf.py), the gateway's (nginx/nginx.conf.template) and compose's own, each with
its default written once. .env.example, docker-compose.yml and the README's settings table repeat
these defaults for people; tests/unit/test_settings_declared.py fails when one of them drifts.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

DEFAULT_SQLITE_PATH = Path("var") / "audio.sqlite3"
MULTIPART_ENVELOPE_BYTES = 64 * KIB
"""What a multipart upload may carry besides its WAV (boundaries, part headers, fields): the
gateway lets MAX_UPLOAD_BYTES plus this through (nginx/derived.envsh, checked by a test)."""
CONVERSION_FOOTPRINT_BYTES = 16 * MIB
"""What one conversion in progress holds, waiting for its client or not: ffmpeg's private memory
(about 10 MiB; its libraries' pages are shared by every ffmpeg), its input pipe (1 MiB) and the
worker's pieces of WAV and MP3 in hand. CONVERSION_MEMORY_BYTES is spent in these; a test
(tests/components/test_ffmpeg.py) measures a conversion against it."""
REPLACED = {"MAX_CONVERSIONS": "CONVERSION_MEMORY_BYTES"}
"""Settings of earlier releases that are gone, and what took their place: set, they stop start-up
rather than be silently ignored."""

PSYCOPG2 = ": to SQLAlchemy that means psycopg2, which the service does not install"
_BITRATE = re.compile(r"^(32|40|48|56|64|80|96|112|128|160|192|224|256|320)k$")

T = TypeVar("T")
Reader = Literal["functions", "migrate", "gunicorn", "gateway", "compose"]


@dataclass(frozen=True)
class Declared:
    """One environment variable: who reads it, its default as written in .env ("" = none)."""

    name: str
    default: str
    reader: Reader
    also: tuple[Reader, ...] = ()


DECLARED: tuple[Declared, ...] = (
    Declared("DATABASE_URL", "", "functions"),
    Declared("DATABASE_READ_URL", "", "functions"),
    Declared("MAX_UPLOAD_BYTES", str(GIB), "functions"),
    Declared("MP3_BITRATE", "192k", "functions"),
    Declared("FFMPEG_PATH", "ffmpeg", "functions"),
    Declared("FFMPEG_TIMEOUT_S", "900", "functions"),
    Declared("FFMPEG_MEMORY_BYTES", str(GIB), "functions"),
    Declared("MAX_DURATION_S", "14400", "functions"),
    Declared("PUBLIC_BASE_URL", "", "functions"),
    Declared("CHUNK_BYTES", str(MIB), "functions"),
    Declared("SPOOL_DIR", "", "functions"),
    Declared("DB_POOL_SIZE", "8", "functions"),
    Declared("USER_QUOTA_BYTES", str(5 * GIB), "functions"),
    Declared("CONVERSION_MEMORY_BYTES", str(512 * MIB), "functions"),
    Declared("SLOT_WAIT_S", "20", "functions"),
    Declared("MIN_UPLOAD_BYTES_PER_S", str(64 * KIB), "functions"),
    Declared("BODY_START_TIMEOUT_S", "10", "functions"),
    Declared("UPLOAD_EXPIRY_S", "86400", "functions"),
    Declared("MAX_OPEN_UPLOADS", "4", "functions"),
    Declared("DATABASE_APP_ROLE", "", "migrate"),
    Declared("DATABASE_APP_PASSWORD", "", "migrate"),
    Declared("GUNICORN_WORKERS", "", "gunicorn"),
    Declared("GUNICORN_THREADS", "", "gunicorn"),
    Declared("GUNICORN_TIMEOUT", "60", "gunicorn"),
    Declared("GUNICORN_KEEPALIVE", "75", "gunicorn"),
    Declared("LOG_LEVEL", "info", "gunicorn"),
    Declared("CLIENT_TIMEOUT_S", "60", "gateway", also=("functions",)),
    Declared("USER_RATE_LIMIT", "10r/s", "gateway"),
    Declared("USER_RATE_BURST", "20", "gateway"),
    Declared("UPLOAD_RATE_LIMIT", "5r/s", "gateway"),
    Declared("UPLOAD_RATE_BURST", "20", "gateway"),
    Declared("READ_CONN_LIMIT", "32", "gateway"),
    Declared("UPLOAD_CONN_LIMIT", "8", "gateway"),
    Declared("TRUSTED_PROXIES", "", "gateway"),
    Declared("RECORD_CACHE_BYTES", str(GIB), "gateway"),
    Declared("POSTGRES_PASSWORD", "", "compose"),
    Declared("POSTGRES_APP_PASSWORD", "", "compose"),
    Declared("POSTGRES_PORT", "5432", "compose"),
    Declared("GATEWAY_PORT", "8080", "compose"),
    Declared("DATABASE_HOST", "postgres:5432", "compose"),
    Declared("IMAGE_TAG", "latest", "compose"),
)
"""Every setting. The gateway also gets MAX_UPLOAD_BYTES and FFMPEG_TIMEOUT_S: nginx/derived.envsh
turns them into its body limit and upload timeout."""

SET_FOR_PRODUCTION: Mapping[str, str] = {
    "PUBLIC_BASE_URL": "empty, record and upload URLs take their host from the request's Host"
    " header, so a cache or proxy that forwards any Host would hand out links to another host",
    "TRUSTED_PROXIES": "behind an Ingress or load balancer the gateway sees the proxy's address;"
    " the client's is in X-Forwarded-For, which only a proxy in these ranges may set",
}
"""Settings whose declared default suits a first run (`make run`, the tests) but which the
production examples (docker-compose.yml, deploy/kubernetes) may set otherwise, and why. The drift
tests hold every other setting to its declared default there."""

DEFAULTS: Mapping[str, str] = {setting.name: setting.default for setting in DECLARED}


def declared(reader: Reader) -> dict[str, str]:
    """The settings one component reads, with their defaults."""
    return {s.name: s.default for s in DECLARED if reader == s.reader or reader in s.also}


class ConfigError(ValueError):
    """A setting is present but unusable; raised at start-up, never per request."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    database_read_url: str | None = DEFAULTS["DATABASE_READ_URL"] or None
    """A streaming replica of DATABASE_URL's server, for get_record's reads (None: the primary)."""
    max_upload_bytes: int = int(DEFAULTS["MAX_UPLOAD_BYTES"])
    mp3_bitrate: str = DEFAULTS["MP3_BITRATE"]
    ffmpeg_path: str = DEFAULTS["FFMPEG_PATH"]
    ffmpeg_timeout_s: float = float(DEFAULTS["FFMPEG_TIMEOUT_S"])
    max_duration_s: float = float(DEFAULTS["MAX_DURATION_S"])
    ffmpeg_memory_bytes: int = int(DEFAULTS["FFMPEG_MEMORY_BYTES"])
    public_base_url: str | None = DEFAULTS["PUBLIC_BASE_URL"] or None
    chunk_bytes: int = int(DEFAULTS["CHUNK_BYTES"])
    spool_dir: str = DEFAULTS["SPOOL_DIR"] or tempfile.gettempdir()
    db_pool_size: int = int(DEFAULTS["DB_POOL_SIZE"])
    user_quota_bytes: int = int(DEFAULTS["USER_QUOTA_BYTES"])
    conversion_memory_bytes: int = int(DEFAULTS["CONVERSION_MEMORY_BYTES"])
    """What the conversions of one add_record instance may hold at once, in
    CONVERSION_FOOTPRINT_BYTES each: a slow upload costs memory, not CPU."""
    slot_wait_s: float = float(DEFAULTS["SLOT_WAIT_S"])
    """How long an upload waits for a conversion slot before its 503."""
    min_upload_bytes_per_s: int = int(DEFAULTS["MIN_UPLOAD_BYTES_PER_S"])
    body_start_timeout_s: float = float(DEFAULTS["BODY_START_TIMEOUT_S"])
    """How long an upload's first body bytes (the first KiB, as gunicorn delivers them) may take
    after its headers (408 past it)."""
    client_timeout_s: float = float(DEFAULTS["CLIENT_TIMEOUT_S"])
    upload_expiry_s: float = float(DEFAULTS["UPLOAD_EXPIRY_S"])
    """How long an unfinished resumable upload lives after its last PATCH."""
    max_open_uploads: int = int(DEFAULTS["MAX_OPEN_UPLOADS"])
    """Unfinished resumable uploads a user may have at once."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        for old, new in REPLACED.items():
            if env.get(old):
                raise ConfigError(f"{old} is no longer read: set {new} instead (README, settings)")
        settings = cls(
            database_url=env.get("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH.resolve()}",
            database_read_url=_text(env, "DATABASE_READ_URL") or None,
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES"),
            mp3_bitrate=_text(env, "MP3_BITRATE"),
            ffmpeg_path=_text(env, "FFMPEG_PATH"),
            ffmpeg_timeout_s=_float(env, "FFMPEG_TIMEOUT_S"),
            max_duration_s=_float(env, "MAX_DURATION_S"),
            ffmpeg_memory_bytes=_int(env, "FFMPEG_MEMORY_BYTES"),
            public_base_url=_text(env, "PUBLIC_BASE_URL") or None,
            chunk_bytes=_int(env, "CHUNK_BYTES"),
            spool_dir=_text(env, "SPOOL_DIR") or tempfile.gettempdir(),
            db_pool_size=_int(env, "DB_POOL_SIZE"),
            user_quota_bytes=_int(env, "USER_QUOTA_BYTES"),
            conversion_memory_bytes=_int(env, "CONVERSION_MEMORY_BYTES"),
            slot_wait_s=_float(env, "SLOT_WAIT_S"),
            min_upload_bytes_per_s=_int(env, "MIN_UPLOAD_BYTES_PER_S"),
            body_start_timeout_s=_float(env, "BODY_START_TIMEOUT_S"),
            client_timeout_s=_float(env, "CLIENT_TIMEOUT_S"),
            upload_expiry_s=_float(env, "UPLOAD_EXPIRY_S"),
            max_open_uploads=_int(env, "MAX_OPEN_UPLOADS"),
        )
        settings.validate()
        return settings

    @property
    def max_conversions(self) -> int:
        """Conversions one add_record instance runs at once: as many as its memory allows."""
        return self.conversion_memory_bytes // CONVERSION_FOOTPRINT_BYTES

    def validate(self) -> None:
        if self.max_upload_bytes < 1:
            raise ConfigError("MAX_UPLOAD_BYTES must be positive")
        if not _BITRATE.match(self.mp3_bitrate):
            raise ConfigError(
                f"MP3_BITRATE must be an MP3 bitrate such as 192k, not {self.mp3_bitrate!r}"
            )
        if self.ffmpeg_timeout_s <= 0:
            raise ConfigError("FFMPEG_TIMEOUT_S must be positive")
        if self.max_duration_s <= 0:
            raise ConfigError("MAX_DURATION_S must be positive")
        if self.ffmpeg_memory_bytes < 64 * MIB:
            raise ConfigError("FFMPEG_MEMORY_BYTES must be at least 67108864")
        if not 256 * KIB <= self.chunk_bytes <= MIB:
            raise ConfigError("CHUNK_BYTES must lie between 262144 and 1048576")
        if self.db_pool_size < 1:
            raise ConfigError("DB_POOL_SIZE must be at least 1")
        if self.user_quota_bytes < 1:
            raise ConfigError("USER_QUOTA_BYTES must be positive")
        if self.conversion_memory_bytes < CONVERSION_FOOTPRINT_BYTES:
            raise ConfigError(
                f"CONVERSION_MEMORY_BYTES must be at least {CONVERSION_FOOTPRINT_BYTES}"
                " (one conversion)"
            )
        if self.slot_wait_s < 0:
            raise ConfigError("SLOT_WAIT_S must be 0 (refuse at once) or more")
        if self.min_upload_bytes_per_s < 0:
            raise ConfigError("MIN_UPLOAD_BYTES_PER_S must be 0 (no minimum) or more")
        if self.client_timeout_s <= 0:
            raise ConfigError("CLIENT_TIMEOUT_S must be positive")
        if self.body_start_timeout_s <= 0:
            raise ConfigError("BODY_START_TIMEOUT_S must be positive")
        if self.upload_expiry_s <= 0:
            raise ConfigError("UPLOAD_EXPIRY_S must be positive")
        if self.max_open_uploads < 1:
            raise ConfigError("MAX_OPEN_UPLOADS must be at least 1")
        scheme = urlsplit(self.database_url).scheme
        if scheme != "postgresql+psycopg" and scheme.split("+")[0] != "sqlite":
            raise ConfigError(
                f"DATABASE_URL must start postgresql+psycopg:// (the psycopg 3 driver) or sqlite://,"
                f" not {scheme}://" + (PSYCOPG2 if scheme in ("postgresql", "postgres") else "")
            )
        read_url = self.database_read_url
        if read_url is not None and urlsplit(read_url).scheme != "postgresql+psycopg":
            raise ConfigError(
                "DATABASE_READ_URL must be a PostgreSQL URL (postgresql+psycopg://...): a streaming"
                " replica of DATABASE_URL's server"
            )
        if self.public_base_url is not None:
            parts = urlsplit(self.public_base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError("PUBLIC_BASE_URL must be an absolute http(s) URL")


@dataclass(frozen=True)
class AppRole:
    """The login role the migrate job makes the functions' (common.storage.db.grant_app_role)."""

    name: str
    password: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppRole | None:
        """DATABASE_APP_ROLE and DATABASE_APP_PASSWORD, or None when no role is asked for."""
        env = os.environ if environ is None else environ
        name = _text(env, "DATABASE_APP_ROLE")
        if not name:
            return None
        password = _text(env, "DATABASE_APP_PASSWORD")
        if not password:
            raise ConfigError("DATABASE_APP_ROLE needs DATABASE_APP_PASSWORD")
        return cls(name, password)


def _text(env: Mapping[str, str], name: str) -> str:
    """The variable, or its declared default when unset or empty."""
    return env.get(name) or DEFAULTS[name]


def _int(env: Mapping[str, str], name: str) -> int:
    return _parsed(env, name, int, "an integer")


def _float(env: Mapping[str, str], name: str) -> float:
    return _parsed(env, name, float, "a number")


def _parsed(env: Mapping[str, str], name: str, parse: Callable[[str], T], what: str) -> T:
    raw = _text(env, name)
    try:
        return parse(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, not {raw!r}") from None
