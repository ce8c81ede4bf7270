"""Every role variable is documented in defaults/main.yml and declared in meta/argument_specs.yml,
with the same default, so `ansible-doc -t role` and the defaults never disagree."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
ROLE_DIRS = sorted(p for p in ROLES.iterdir() if (p / "meta" / "argument_specs.yml").exists())


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_defaults_and_argument_specs_agree(role: Path):
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    declared: dict[str, dict] = {}
    for entry_point in specs.values():
        for name, option in entry_point["options"].items():
            declared.setdefault(name, option)
            assert option.get("description"), f"{name} has no description"
    assert sorted(set(defaults) - set(declared)) == [], "defaults without an argument spec"
    assert sorted(set(declared) - set(defaults)) == [], "argument specs without a default"
    for name, value in defaults.items():
        assert declared[name].get("default") == value, f"{name}: default differs between defaults and spec"
    prefix = role.name + "_"
    assert all(name.startswith(prefix) for name in defaults), "every variable is prefixed with the role name"


@pytest.mark.parametrize("role", ROLE_DIRS, ids=lambda p: p.name)
def test_every_default_is_documented_in_defaults(role: Path):
    """A comment precedes each variable or its group."""
    lines = (role / "defaults" / "main.yml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith((" ", "#", "-")) and ":" in line:
            above = [ln for ln in lines[max(0, i - 12) : i] if ln.strip()]
            assert any(ln.startswith("#") for ln in above), f"{line.split(':')[0]} has no comment above it"
