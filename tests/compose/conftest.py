"""The compose stack `make compose-test` started; skipped elsewhere with the way to run it."""

from __future__ import annotations

import pytest

from devstack.compose import ComposeStack
from tests.stacks import COMPOSE_STACK


@pytest.fixture(scope="session")
def stack() -> ComposeStack:
    if COMPOSE_STACK is None:
        pytest.skip("needs the compose stack: run `make compose-test` (Docker Engine, Compose v2)")
    return COMPOSE_STACK
