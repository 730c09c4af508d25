"""Every deployment file carries the defaults common/config.py declares, and nothing undeclared."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from common.config import (
    DECLARED,
    DEFAULTS,
    GIB,
    KIB,
    MIB,
    MULTIPART_ENVELOPE_BYTES,
    SET_FOR_PRODUCTION,
    Settings,
    declared,
)
from common.http.app import size_text
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

INFRASTRUCTURE = {
    "NGINX_PORT",
    "NGINX_RUN_DIR",
    "RECORD_CACHE_DIR",
    "NGINX_RESOLVER",
    "STATIC_ROOT",
}
"""Template values that say where things are, set by compose or devstack, not by operators."""


COMPOSE_SETS = {"PUBLIC_BASE_URL"}
"""What docker-compose.yml gives another default than the declared one (SET_FOR_PRODUCTION: why)."""


def compose_defaults() -> dict[str, str]:
    """Each ${NAME:-default} of docker-compose.yml; in a default that holds another
    (`${A:-x${B:-y}}`), that one's default in its place."""
    innermost = re.compile(r"\$\{([A-Z][A-Z0-9_]*):-([^${}]*)\}")
    text, found = COMPOSE, {}
    while match := innermost.search(text):
        name, default = match.groups()
        assert found.setdefault(name, default) == default, f"{name} has two defaults"
        text = text[: match.start()] + default + text[match.end() :]
    return found


def test_compose_defaults_are_the_declared_ones() -> None:
    found = compose_defaults()
    assert found, "no ${NAME:-default} in docker-compose.yml"
    assert set(SET_FOR_PRODUCTION) >= COMPOSE_SETS
    same = {name: default for name, default in found.items() if name not in COMPOSE_SETS}
    assert {name: DEFAULTS.get(name) for name in same} == same
    assert {name for name in COMPOSE_SETS if found.get(name, DEFAULTS[name]) != DEFAULTS[name]} == (
        COMPOSE_SETS
    )


def test_compose_links_name_the_published_gateway_not_the_request_host() -> None:
    base = compose_defaults()["PUBLIC_BASE_URL"]
    assert base == f"http://localhost:{DEFAULTS['GATEWAY_PORT']}"
    assert Settings.from_env({"PUBLIC_BASE_URL": base}).public_base_url == base


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
    inputs = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):[?-]", DERIVED.read_text()))
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
        "UPLOAD_LIMIT_TEXT": "1000 bytes",
        "REAL_IP_DIRECTIVES": "",
    }


@pytest.mark.parametrize("size", [1000, KIB, 3 * MIB, GIB, 5 * GIB, GIB + 1, 1536 * MIB])
def test_the_gateway_says_a_limit_as_the_functions_do(size: int) -> None:
    """nginx/derived.envsh's words for MAX_UPLOAD_BYTES are common.http.app's (the 413s agree)."""
    values = derived_gateway_values(
        {"FFMPEG_TIMEOUT_S": "900", "CLIENT_TIMEOUT_S": "60", "MAX_UPLOAD_BYTES": str(size)}
    )
    assert values["UPLOAD_LIMIT_TEXT"] == size_text(size)


@pytest.mark.parametrize(
    ("trusted", "sources"),
    [
        ("", []),
        ("127.0.0.1", ["127.0.0.1"]),
        ("10.0.0.0/8, 192.168.1.7,fd00::/8  ::1", ["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1"]),
    ],
)
def test_trusted_proxies_become_realip_directives(trusted: str, sources: list[str]) -> None:
    directives = derived_gateway_values({"TRUSTED_PROXIES": trusted})["REAL_IP_DIRECTIVES"]
    statements = [part.strip() for part in directives.split(";") if part.strip()]
    expected = [f"set_real_ip_from {source}" for source in sources]
    if sources:
        expected += ["real_ip_header X-Forwarded-For", "real_ip_recursive on"]
    assert statements == expected


@pytest.mark.parametrize("trusted", ["10.0.0.0/8; allow all", "*", "$(id)", "proxy.example"])
def test_trusted_proxies_that_are_not_addresses_stop_the_gateway(trusted: str) -> None:
    result = subprocess.run(
        ["sh", "-ec", f'. "{DERIVED}"'],
        env={
            **{name: DEFAULTS[name] or "1" for name in DERIVED_INPUTS},
            "TRUSTED_PROXIES": trusted,
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "TRUSTED_PROXIES must be IP addresses or CIDR ranges" in result.stderr


def test_derived_values_need_their_inputs() -> None:
    result = subprocess.run(
        ["sh", "-c", f'. "{DERIVED}"'], env={}, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "FFMPEG_TIMEOUT_S must be set" in result.stderr
