"""The freshness get_record gives the gateway's record cache, and what a delete waits for."""

from __future__ import annotations

import pytest

from common.http.record_cache import CLOCK_MARGIN_S, fresh_until, wait_out_cached_answers


def test_an_answer_is_fresh_to_the_end_of_the_second_of_its_lookup() -> None:
    assert fresh_until(1_700_000_000.0) == "@1700000000"
    assert fresh_until(1_700_000_000.999) == "@1700000000"


@pytest.mark.parametrize("skew", [-CLOCK_MARGIN_S, 0.0, CLOCK_MARGIN_S - 0.001])
@pytest.mark.parametrize("deleted_at", [10.001, 10.5, 10.999, 11.2])
def test_no_answer_found_before_a_delete_is_fresh_after_its_204(
    skew: float, deleted_at: float
) -> None:
    """Clocks apart by less than the margin: get_record's runs `skew` ahead of add_record's, and
    nginx's as add_record's. An answer about a lookup just before the delete committed is fresh
    while nginx's second is at most its X-Accel-Expires; the 204 comes after that."""
    found_at = deleted_at - 0.001 + skew
    fresh_to_the_end_of = int(fresh_until(found_at).removeprefix("@"))
    answered: list[float] = []
    wait_out_cached_answers(
        deleted_at, clock=lambda: deleted_at, sleep=lambda s: answered.append(deleted_at + s)
    )
    assert (answered or [deleted_at])[0] >= fresh_to_the_end_of + 1


@pytest.mark.parametrize(
    ("deleted_at", "answered_at"), [(100.0, 101.25), (100.7, 101.25), (100.8, 102.25)]
)
def test_a_delete_answers_once_the_second_it_may_have_been_seen_in_is_over(
    deleted_at: float, answered_at: float
) -> None:
    slept: list[float] = []
    wait_out_cached_answers(deleted_at, clock=lambda: deleted_at, sleep=slept.append)
    assert slept == [pytest.approx(answered_at - deleted_at)]


def test_a_delete_that_took_long_enough_answers_at_once() -> None:
    slept: list[float] = []
    wait_out_cached_answers(100.5, clock=lambda: 102.0, sleep=slept.append)
    assert slept == []
