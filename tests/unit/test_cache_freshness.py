"""The freshness get_record gives the gateway's record cache, and what a delete waits for."""

from __future__ import annotations

import pytest

from common.http.record_cache import CLOCK_MARGIN_S, fresh_until, wait_out_cached_answers


def test_an_answer_is_fresh_to_the_end_of_the_second_of_its_lookup() -> None:
    assert fresh_until(1_700_000_000.0) == "@1700000000"
    assert fresh_until(1_700_000_000.999) == "@1700000000"


@pytest.mark.parametrize("deleted_at", [100.0, 100.4, 100.999])
def test_a_delete_answers_once_the_second_of_its_commit_is_over(deleted_at: float) -> None:
    slept: list[float] = []
    wait_out_cached_answers(deleted_at, clock=lambda: deleted_at, sleep=slept.append)
    assert slept == [pytest.approx(101 + CLOCK_MARGIN_S - deleted_at)]


def test_a_delete_that_took_long_enough_answers_at_once() -> None:
    slept: list[float] = []
    wait_out_cached_answers(100.5, clock=lambda: 102.0, sleep=slept.append)
    assert slept == []
