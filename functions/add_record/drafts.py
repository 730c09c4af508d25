"""A WAV stream made into a record: the step POST /record and a resumable upload's last PATCH share,
so that the same WAV and file name give the same MP3, name, facts and quota accounting."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from common.audio.ffmpeg import ConversionSlots, EncoderOptions
from common.audio.transcode import least_mp3_bytes, transcode
from common.audio.wav import Readable, WavFormat
from common.config import Settings
from common.http.observability import conversion_timer
from common.names import file_stem, original_name
from common.spool import instance_directory, upload_directory
from common.storage.records import AudioFacts, QuotaExceeded, RecordStore, RecordWriter
from functions.add_record.errors import QuotaExceededError


class Drafts:
    """Where records are drafted: one per worker, sharing the instance's conversion slots."""

    def __init__(self, store: RecordStore, settings: Settings) -> None:
        self.store = store
        self.encoder = EncoderOptions.from_settings(settings)
        self.slots = ConversionSlots(
            instance_directory(settings.spool_dir), settings.max_conversions, settings.slot_wait_s
        )
        self.quota = settings.user_quota_bytes
        self._spool_dir = settings.spool_dir

    @contextmanager
    def draft(self) -> Iterator[Draft]:
        """A record in the making; whatever it has not committed when the block ends is gone
        (its temp directory, ffmpeg, its pending chunks)."""
        with upload_directory(self._spool_dir) as work:
            mp3_path = Path(work) / "out.mp3"
            mp3_path.touch()  # ffmpeg writes into this very file, read as it grows
            with mp3_path.open("rb") as mp3, self.store.writer(mp3) as writer:
                yield Draft(self, mp3_path, writer)


class Draft:
    def __init__(self, drafts: Drafts, mp3_path: Path, writer: RecordWriter) -> None:
        self._drafts = drafts
        self._mp3_path = mp3_path
        self._writer = writer
        self._user_id: uuid.UUID | None = None
        self._facts: AudioFacts | None = None

    def convert(
        self,
        wav: Readable,
        user_id: uuid.UUID,
        file_name: str | None,
        body_bytes: int | None,
        progress: Callable[[], object] = lambda: None,
    ) -> None:
        """Check the user's quota (507 when nothing more fits), then convert `wav` (a body of
        `body_bytes`, when known), storing the MP3's finished chunks as ffmpeg writes them;
        `progress` is called along with that. Before ffmpeg starts, the MP3's least size is
        reserved against the quota beside the user's other uploads in progress (507 when they
        do not all fit), so that no conversion is spent on an upload the commit would refuse."""
        drafts = self._drafts
        if (used := drafts.store.used_bytes(user_id)) >= drafts.quota:
            raise QuotaExceededError(used, None, drafts.quota)

        def reserve(header: WavFormat) -> None:
            least = least_mp3_bytes(header, body_bytes, drafts.encoder)
            try:
                self._writer.reserve(user_id, least, drafts.quota)
            except QuotaExceeded as full:
                raise QuotaExceededError(full.used, full.size, full.quota, full.reserved) from None

        def stored_so_far() -> None:
            self._writer.store_final()
            progress()

        with conversion_timer():
            converted = transcode(
                wav,
                self._mp3_path,
                drafts.encoder,
                title=file_stem(file_name),
                slots=drafts.slots,
                admit=reserve,
                progress=stored_so_far,
            )
        self._user_id = user_id
        self._facts = AudioFacts(
            name=original_name(file_name),
            channels=converted.wav.channels,
            sample_rate=converted.wav.sample_rate,
            duration_ms=converted.mp3.duration_ms,
        )

    def commit(self, also: Callable[[sa.Connection, uuid.UUID], None] | None = None) -> uuid.UUID:
        """Publish the converted record (507 when it would pass the quota); its id."""
        assert self._user_id is not None, "convert comes first"  # noqa: S101
        assert self._facts is not None, "convert comes first"  # noqa: S101
        try:
            record_id = self._writer.commit(self._user_id, self._facts, self._drafts.quota, also)
        except QuotaExceeded as full:
            raise QuotaExceededError(full.used, full.size, full.quota) from None
        return record_id
