"""The contract of each role: every default is documented in the argument spec with the same
value, and every option of the spec has a default (the role's variables are its API)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLES = ["dify", "metallb", "nutanix_csi"]


def load(role: str) -> tuple[dict, dict]:
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    return defaults, specs


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_in_the_argument_spec_with_the_same_value(role):
    defaults, specs = load(role)
    options = {}
    for spec in specs.values():
        options.update(spec.get("options") or {})
    missing = sorted(set(defaults) - set(options))
    assert not missing, f"defaults without an argument spec entry: {missing}"
    differing = {name: (defaults[name], options[name].get("default")) for name in defaults
                 if options[name].get("default") != defaults[name]}  # fmt: skip
    assert not differing, differing


@pytest.mark.parametrize("role", ROLES)
def test_every_option_has_a_default_and_a_description(role):
    defaults, specs = load(role)
    for entry, spec in specs.items():
        for name, option in (spec.get("options") or {}).items():
            assert name in defaults, f"{entry}: {name} has no default in defaults/main.yml"
            assert option.get("description"), f"{entry}: {name} has no description"
            assert name.startswith(role + "_") or name.startswith(role.split("_")[0] + "_"), f"{name}: not prefixed"
