"""Schemathesis against the running stack: requests made up from openapi.yaml, bounded in time.

No answer may be a 5xx, and every answer must match the schema (status, content type, body).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import ROOT
from tests.stacks import UNLIMITED, Gateway, gateway_under_test, needs_nginx

pytestmark = needs_nginx

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    with gateway_under_test(request, **UNLIMITED) as stack:
        yield stack


def test_fuzzed_requests_get_no_5xx_and_match_the_schema(stack: Gateway, tmp_path: Path) -> None:
    schemathesis = Path(sys.executable).with_name("st")
    command = [str(schemathesis), "run", str(ROOT / "openapi.yaml"), "--url", stack.url]
    command += ["--checks", CHECKS, "--phases", "examples,coverage,fuzzing"]
    command += ["--max-examples", "15", "--max-time", "45", "--request-timeout", "30"]
    command += ["--seed", "20261127", "--workers", "1", "--generation-database", "none"]
    hooks = {"SCHEMATHESIS_HOOKS": "tests.fuzz.hooks", "PYTHONPATH": str(ROOT)}
    report = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **hooks},
        check=False,
        timeout=300,
    )
    found = [report.stdout.find(section) for section in ("ERRORS", "FAILURES")]
    failures = report.stdout[min([at for at in found if at >= 0], default=0) :]
    assert report.returncode == 0, failures[:8000] + report.stderr[-2000:]
