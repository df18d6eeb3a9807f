"""The role's documented interface: defaults, argument_specs and README table agree."""

from __future__ import annotations

import re

import yaml
from aws_cache_support import ROLE

DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
SPEC = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
README = (ROLE / "README.md").read_text()


def test_every_default_is_specified_with_the_same_default() -> None:
    assert set(DEFAULTS) == set(SPEC)
    for name, value in DEFAULTS.items():
        assert SPEC[name].get("default") == value, name


def test_every_input_is_prefixed_and_in_the_readme_table() -> None:
    table = set(re.findall(r"^\| `(aws_cache_\w+)` \|", README, flags=re.MULTILINE))
    assert table == set(SPEC)


def test_secrets_are_no_log() -> None:
    assert {name for name, option in SPEC.items() if option.get("no_log")} == {
        "aws_cache_auth_token",
        "aws_cache_external_url",
    }
