"""Settings of the service, parsed once from the environment into a typed object.

Every setting is documented in README.md and listed in .env.example.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

DEFAULT_SQLITE_PATH = Path("var") / "audio.sqlite3"

_BITRATE = re.compile(r"^(32|40|48|56|64|80|96|112|128|160|192|224|256|320)k$")


class ConfigError(ValueError):
    """A setting is present but unusable; raised at start-up, never per request."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    max_upload_bytes: int = GIB
    mp3_bitrate: str = "192k"
    ffmpeg_path: str = "ffmpeg"
    ffmpeg_timeout_s: float = 900.0
    max_duration_s: float = 4 * 3600.0
    ffmpeg_memory_bytes: int = GIB
    public_base_url: str | None = None
    chunk_bytes: int = MIB
    spool_dir: str = tempfile.gettempdir()
    db_pool_size: int = 8

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        settings = cls(
            database_url=env.get("DATABASE_URL") or f"sqlite:///{DEFAULT_SQLITE_PATH.resolve()}",
            max_upload_bytes=_int(env, "MAX_UPLOAD_BYTES", GIB),
            mp3_bitrate=env.get("MP3_BITRATE", "192k"),
            ffmpeg_path=env.get("FFMPEG_PATH", "ffmpeg"),
            ffmpeg_timeout_s=_float(env, "FFMPEG_TIMEOUT_S", 900.0),
            max_duration_s=_float(env, "MAX_DURATION_S", 4 * 3600.0),
            ffmpeg_memory_bytes=_int(env, "FFMPEG_MEMORY_BYTES", GIB),
            public_base_url=env.get("PUBLIC_BASE_URL") or None,
            chunk_bytes=_int(env, "CHUNK_BYTES", MIB),
            spool_dir=env.get("SPOOL_DIR") or tempfile.gettempdir(),
            db_pool_size=_int(env, "DB_POOL_SIZE", 8),
        )
        settings.validate()
        return settings

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
        if self.public_base_url is not None:
            parts = urlsplit(self.public_base_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError("PUBLIC_BASE_URL must be an absolute http(s) URL")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
