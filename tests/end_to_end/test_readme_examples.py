"""The README's Python example runs as a person would copy it, against a running stack (only the
port changed), and the Russian README shows the same code."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.stack import ROOT
from tests.helpers import pcm16
from tests.stacks import Gateway, gateway_under_test, needs_nginx

pytestmark = needs_nginx


def python_block(readme: str, heading: str) -> str:
    section = (ROOT / readme).read_text().split(f"### {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, f"no python block under ### {heading} in {readme}"
    return match.group(1)


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    with gateway_under_test(request) as stack:
        yield stack


def test_the_python_example_runs(stack: Gateway, tmp_path: Path) -> None:
    example = python_block("README.md", "From Python")
    assert python_block("README.ru.md", "Из Python") == example
    (tmp_path / "tone.wav").write_bytes(pcm16(5.0))
    name = f"Ann {tmp_path.name}"  # names are unique: one per run
    code = example.replace("http://127.0.0.1:8080", stack.url).replace('"Ann"', repr(name))
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    size, names = result.stdout.split(" ", 1)
    assert int(size) > 100_000
    assert names.strip() == "['tone.wav', 'tone.wav']"
