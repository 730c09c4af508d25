"""What can go wrong with the audio or the converter, as the statuses the contract gives it."""

from __future__ import annotations

import falcon

from common.audio.ffmpeg import ConversionError, ConverterBusy, ConverterFault
from common.audio.transcode import TooLong
from common.audio.wav import BadWav, EmptyWav, NotWav
from common.http.app import FunctionApp, answer_as
from common.storage.records import LeaseLost

CONVERTER_RETRY_AFTER_S = 30
"""Retry-After of a conversion that failed through no fault of the upload (a 503)."""
BUSY_RETRY_AFTER_S = 5
"""Retry-After when every conversion slot of the worker is taken: one frees up within seconds."""


def add_conversion_errors(app: FunctionApp) -> None:
    """422 when the WAV is at fault, 503 with Retry-After when the converter or the storage is."""
    app.add_error_handler(EmptyWav, answer_as(falcon.HTTPBadRequest, "Missing file"))
    app.add_error_handler(NotWav, answer_as(falcon.HTTPUnsupportedMediaType, "Not a WAV file"))
    app.add_error_handler(BadWav, answer_as(falcon.HTTPUnprocessableEntity, "Undecodable WAV"))
    app.add_error_handler(
        ConversionError, answer_as(falcon.HTTPUnprocessableEntity, "Undecodable WAV")
    )
    app.add_error_handler(TooLong, answer_as(falcon.HTTPUnprocessableEntity, "Audio too long"))
    app.add_error_handler(
        ConverterFault,
        answer_as(
            falcon.HTTPServiceUnavailable,
            "Converter unavailable",
            retry_after=CONVERTER_RETRY_AFTER_S,
        ),
    )
    app.add_error_handler(
        LeaseLost,
        answer_as(
            falcon.HTTPServiceUnavailable,
            "Storage interrupted",
            retry_after=CONVERTER_RETRY_AFTER_S,
        ),
    )
    app.add_error_handler(
        ConverterBusy,
        answer_as(falcon.HTTPServiceUnavailable, "Converter busy", retry_after=BUSY_RETRY_AFTER_S),
    )


class QuotaExceededError(falcon.HTTPError):
    """507: the user's stored MP3s would pass USER_QUOTA_BYTES; nothing is stored.

    `size` is the new MP3's, or None when the user has no room left before any conversion;
    with `reserved` (what the user's other uploads in progress will take), `size` is the least
    this upload's MP3 will take, known before its conversion.
    """

    def __init__(
        self, used: int, size: int | None, quota: int, reserved: int | None = None
    ) -> None:
        if size is None:
            this = "nothing more fits"
        elif reserved is None:
            this = f"this MP3 ({size} bytes) does not fit"
        else:
            others = f", their other uploads in progress at least {reserved}" if reserved else ""
            this = f"this upload will take at least {size} bytes{others}: it does not fit"
        super().__init__(
            falcon.HTTP_507,
            title="Quota exceeded",
            description=f"this user has stored {used} of {quota} bytes; {this}",
        )
