"""Settings as the role sees them: the role's defaults, an inventory on top, validated and typed by
the role's argument spec (what the prepare action does with the task's variables)."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROOT = Path(__file__).resolve().parents[5]
ROLE = ROOT / "roles" / "dify"


@lru_cache
def defaults() -> dict[str, Any]:
    return yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())


@lru_cache
def argument_specs() -> dict[str, Any]:
    return yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def params(entry_point: str = "main", **inventory: Any) -> dict[str, Any]:
    values = copy.deepcopy(defaults())
    values.update(copy.deepcopy(inventory))
    # The defaults that are templates.
    if isinstance(values.get("dify_backup_enabled"), str):
        values["dify_backup_enabled"] = values["dify_postgres_enabled"]
    if isinstance(values.get("dify_backup_weaviate"), str):
        values["dify_backup_weaviate"] = values["dify_backup_enabled"]
    values["dify_manifests_dir"] = "/tmp/dify-manifests"
    spec = argument_specs()[entry_point]["options"]
    result = ArgumentSpecValidator(spec).validate({k: v for k, v in values.items() if k in spec},
                                                  validate_role_argument_spec=True)  # fmt: skip
    assert not result.error_messages, result.error_messages
    return result.validated_parameters
