"""Every deployment file carries the defaults common/config.py declares, and nothing undeclared."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from common.config import DECLARED, DEFAULTS, MULTIPART_ENVELOPE_BYTES, Settings, declared
from devstack.gateway import (
    DERIVED,
    DERIVED_INPUTS,
    DERIVED_NAMES,
    TEMPLATE,
    derived_gateway_values,
)
from devstack.stack import ROOT

COMPOSE = (ROOT / "docker-compose.yml").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
README = (ROOT / "README.md").read_text()

INFRASTRUCTURE = {"NGINX_PORT", "NGINX_RUN_DIR", "NGINX_RESOLVER", "STATIC_ROOT"}
"""Template values that say where things are, set by compose or devstack, not by operators."""


def compose_defaults() -> dict[str, str]:
    return dict(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-([^}]*)\}", COMPOSE))


def test_compose_defaults_are_the_declared_ones() -> None:
    found = compose_defaults()
    assert found, "no ${NAME:-default} in docker-compose.yml"
    assert {name: DEFAULTS.get(name) for name in found} == found


def test_compose_reads_only_declared_settings() -> None:
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)[:}?-]", COMPOSE))
    assert names <= set(DEFAULTS), names - set(DEFAULTS)


def test_env_example_lists_every_setting_with_its_default() -> None:
    lines = dict(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE, re.MULTILINE))
    assert set(lines) == set(DEFAULTS), set(lines) ^ set(DEFAULTS)
    assert {name: DEFAULTS[name] for name in lines} == lines


def test_the_readme_documents_every_setting() -> None:
    table = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    missing = [setting.name for setting in DECLARED if f"`{setting.name}`" not in table]
    assert not missing


def test_functions_in_compose_get_every_function_and_gunicorn_setting() -> None:
    environment = yaml.safe_load(COMPOSE)["x-function-environment"]
    expected = {*declared("functions"), *declared("gunicorn")}
    assert set(environment) == expected, set(environment) ^ expected


def test_the_gateway_gets_what_its_template_and_derived_values_need() -> None:
    template = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", TEMPLATE.read_text()))
    inputs = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):\?", DERIVED.read_text()))
    assert template <= {*declared("gateway"), *DERIVED_NAMES, *INFRASTRUCTURE} | {
        name for name in template if name.endswith("_UPSTREAM")
    }
    nginx = yaml.safe_load(COMPOSE)["services"]["nginx"]["environment"]
    assert set(declared("gateway")) | inputs <= set(nginx)
    assert inputs == set(DERIVED_INPUTS)


def test_settings_defaults_come_from_the_declaration() -> None:
    settings = Settings.from_env({})
    assert settings.max_upload_bytes == int(DEFAULTS["MAX_UPLOAD_BYTES"])
    assert settings.ffmpeg_timeout_s == float(DEFAULTS["FFMPEG_TIMEOUT_S"])
    assert settings == Settings(database_url=settings.database_url)


@pytest.mark.parametrize(
    ("seconds", "upload_timeout_s", "upload_body_timeout_s"),
    [("900", "960", "910"), ("30", "90", "40"), ("30.2", "91", "41")],
)
def test_derived_gateway_values(
    seconds: str, upload_timeout_s: str, upload_body_timeout_s: str
) -> None:
    values = derived_gateway_values(
        {"FFMPEG_TIMEOUT_S": seconds, "CLIENT_TIMEOUT_S": seconds, "MAX_UPLOAD_BYTES": "1000"}
    )
    assert values == {
        "UPLOAD_TIMEOUT_S": upload_timeout_s,
        "UPLOAD_BODY_TIMEOUT_S": upload_body_timeout_s,
        "GATEWAY_BODY_BYTES": str(1000 + MULTIPART_ENVELOPE_BYTES),
    }


def test_derived_values_need_their_inputs() -> None:
    result = subprocess.run(
        ["sh", "-c", f'. "{DERIVED}"'], env={}, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "FFMPEG_TIMEOUT_S must be set" in result.stderr
