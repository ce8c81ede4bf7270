# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs of the modules that apply and read objects, shared by the modules and their
action plugins (which run them in the controller's process)."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names

# The run's lock, renewed while a module waits (lock.Heartbeat); set by the role.
LOCK_OPTION: dict[str, dict[str, Any]] = {
    "lock": {"type": "dict", "options": {"namespace": {"type": "str"}, "holder": {"type": "str"}}},
}

READ_OPTIONS = {
    "id": {"type": "str", "required": True},
    "api_version": {"type": "str", "required": True},
    "kind": {"type": "str", "required": True},
    "name": {"type": "str"},
    "namespace": {"type": "str"},
    "label_selector": {"type": "str"},
}

LOCK_ARG_SPEC: dict[str, dict[str, Any]] = {
    "namespace": {"type": "str", "required": True},
    "state": {"type": "str", "choices": ["acquired", "released"], "default": "acquired"},
    "wait": {"type": "int", "default": 0},
    "holder": {"type": "str"},
    "details": {"type": "dict", "default": {}},
    "namespace_definition": {"type": "dict"},
    "basis_reads": {"type": "list", "elements": "dict", "default": [], "options": READ_OPTIONS},
    "basis": {"type": "str"},
}

RECORD_ARG_SPEC: dict[str, dict[str, Any]] = {
    "namespace": {"type": "str", "required": True},
    "kind": {
        "type": "str",
        "required": True,
        "choices": ["migration", "backups", "provider-setup", "adoption", "operation", "upgrade-steps"],
    },
    "data": {"type": "dict", "default": {}},
    "replace": {"type": "bool", "default": False},
    "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    **LOCK_OPTION,
}

APPLY_ARG_SPEC: dict[str, dict[str, Any]] = {
    "definitions": {"type": "list", "elements": "dict", "required": True},
    "field_manager": {"type": "str", "default": names.FIELD_MANAGER},
    "force_conflicts": {"type": "bool", "default": True},
    "wait": {"type": "bool", "default": False},
    "wait_timeout": {"type": "int", "default": 600},
    "prune_kinds": {
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {
            "api_version": {"type": "str", "required": True},
            "kind": {"type": "str", "required": True},
            "label_selector": {"type": "str"},
        },
    },
    "prune_selector": {"type": "str"},
    "prune_namespace": {"type": "str"},
    **LOCK_OPTION,
}
APPLY_REQUIRED_TOGETHER = [("prune_selector", "prune_namespace")]

READS_ARG_SPEC: dict[str, dict[str, Any]] = {
    "reads": {
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": READ_OPTIONS,
    },
}


def apply_problems(params: dict[str, Any]) -> list[str]:
    found = []
    if params["wait_timeout"] <= 0:
        found.append(f"wait_timeout must be a positive number of seconds, got {params['wait_timeout']}")
    if params["prune_kinds"] and not params["prune_selector"]:
        found.append("prune_kinds needs prune_selector and prune_namespace (never prune without a selector)")
    return found


def reads_problems(params: dict[str, Any]) -> list[str]:
    ids = [read["id"] for read in params["reads"]]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    return [f"reads: ids must be unique, {duplicated} repeat"] if duplicated else []
