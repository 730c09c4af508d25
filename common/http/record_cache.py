"""What get_record and add_record agree on about the gateway's record cache (nginx proxy_cache on
GET/HEAD /record, nginx/nginx.conf.template).

An answer of get_record may be kept by the gateway, and used without asking again until the end
of the second in which get_record found the record: `X-Accel-Expires: @<that second>`, an absolute
time, so a slow answer or a busy gateway never stretches it. Past it, the gateway revalidates with
get_record first (a 304 from one indexed row). The record was found before any delete of it
committed, so every cached answer is stale by the end of the second the delete committed in, as
the clocks of get_record and the gateways tell it. A delete answers once that second is over
whatever their clocks say, within a margin of add_record's: after a 204, no gateway serves the
record again. Under a second of freshness costs repeat downloads about one revalidation per record
per second, instead of one per request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

CLOCK_MARGIN_S = 0.25
"""How far apart the clocks of add_record, get_record and the gateways may be (NTP keeps hosts
within milliseconds), and how late nginx's cached time may be."""


def fresh_until(found_at: float) -> str:
    """The X-Accel-Expires of an answer about a record found at `found_at` (time.time(), taken
    before the lookup): fresh in the gateway's cache until the end of that second."""
    return f"@{math.floor(found_at)}"


def wait_out_cached_answers(
    deleted_at: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once every cached answer that could still show a record deleted at `deleted_at`
    (time.time(), taken after the commit) has gone stale, in every gateway: the end of the second
    a get_record clock up to the margin ahead could have named, plus the margin for a gateway's
    clock behind. Between 0.5 and 1.5 s after the commit."""
    remaining = math.floor(deleted_at + CLOCK_MARGIN_S) + 1 + CLOCK_MARGIN_S - clock()
    if remaining > 0:
        sleep(remaining)
