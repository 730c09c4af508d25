"""One version: the package's (pyproject.toml) is the API's (openapi.yaml)."""

from __future__ import annotations

import tomllib

import yaml

from devstack.stack import ROOT


def test_the_package_and_the_api_carry_one_version() -> None:
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    api = yaml.safe_load((ROOT / "openapi.yaml").read_text())["info"]["version"]
    assert package == api
