"""What get_record and add_record agree on about the gateway's record cache (nginx proxy_cache on
GET/HEAD /record, nginx/nginx.conf.template).

An answer of get_record may be kept by the gateway, and used without asking again until the end
of the second in which get_record found the record (its clock set back by the margin below):
`X-Accel-Expires: @<that second>`, an absolute time, so a slow answer or a busy gateway never
stretches it. Past it, the gateway revalidates
with get_record first (a 304 from one indexed row). The record was found before any delete of it
committed, so every cached answer is stale by the end of the second the delete committed in: a
delete answers once that second, plus a margin for the clocks of the machines involved, is over.
After a 204, no gateway serves the record again. Under a second of freshness costs repeat
downloads one revalidation per record per second at most, instead of one per request.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

CLOCK_MARGIN_S = 0.25
"""How far apart the clocks of the gateways and get_record may be (NTP keeps hosts within
milliseconds), and how late nginx's cached time may be."""


def fresh_until(found_at: float) -> str:
    """The X-Accel-Expires of an answer about a record found at `found_at` (time.time(), taken
    before the lookup): fresh in the gateway's cache until the end of that second, less the
    margin (a get_record whose clock runs ahead of add_record's must not name a later second than
    the one add_record's delete waits out)."""
    return f"@{math.floor(found_at - CLOCK_MARGIN_S)}"


def wait_out_cached_answers(
    deleted_at: float,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Return once every cached answer that could still show a record deleted at `deleted_at`
    (time.time(), taken after the commit) has gone stale, in every gateway."""
    remaining = math.floor(deleted_at) + 1 + CLOCK_MARGIN_S - clock()
    if remaining > 0:
        sleep(remaining)
