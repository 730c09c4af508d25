"""Settings parsed from the environment: what start-up refuses, in one line each."""

from __future__ import annotations

import pytest

from common.config import CONVERSION_FOOTPRINT_BYTES, ConfigError, Settings

URL = {"DATABASE_URL": "postgresql+psycopg://app@db/audio"}


def test_conversions_follow_the_memory_budget() -> None:
    assert Settings.from_env(URL).max_conversions == 32
    budget = {**URL, "CONVERSION_MEMORY_BYTES": str(3 * CONVERSION_FOOTPRINT_BYTES + 1)}
    assert Settings.from_env(budget).max_conversions == 3


def test_a_budget_under_one_conversion_is_refused() -> None:
    with pytest.raises(ConfigError, match="CONVERSION_MEMORY_BYTES must be at least"):
        Settings.from_env({**URL, "CONVERSION_MEMORY_BYTES": "1000"})


def test_a_replaced_setting_stops_start_up_naming_its_successor() -> None:
    """An operator's MAX_CONVERSIONS from an earlier release is not silently ignored."""
    with pytest.raises(
        ConfigError, match="MAX_CONVERSIONS is no longer read: set CONVERSION_MEMORY"
    ):
        Settings.from_env({**URL, "MAX_CONVERSIONS": "8"})


def test_the_body_start_timeout_must_be_positive() -> None:
    assert Settings.from_env(URL).body_start_timeout_s == 10
    with pytest.raises(ConfigError, match="BODY_START_TIMEOUT_S must be positive"):
        Settings.from_env({**URL, "BODY_START_TIMEOUT_S": "0"})
