# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument spec and input checks shared by dify_migrate and dify_job (doc fragment job_options)."""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.migration import JobSpec, image_problem

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

RESTRICTED_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}

JOB_ARG_SPEC: dict[str, dict[str, Any]] = {
    "namespace": {"type": "str", "required": True},
    "image": {"type": "str", "required": True},
    "allow_latest": {"type": "bool", "default": False},
    "env": {"type": "dict", "default": {}},
    "env_from_secrets": {"type": "list", "elements": "str", "default": [], "no_log": False},
    "env_from_config_maps": {"type": "list", "elements": "str", "default": []},
    "ttl_seconds_after_finished": {"type": "int", "default": 86400},
    "backoff_limit": {"type": "int", "default": 0},
    "timeout": {"type": "int", "default": 600},
    "unschedulable_timeout": {"type": "int", "default": 60},
    "service_account_name": {"type": "str"},
    "image_pull_secrets": {"type": "list", "elements": "str", "default": [], "no_log": False},
    "image_pull_policy": {"type": "str", "choices": ["Always", "IfNotPresent", "Never"]},
    "node_selector": {"type": "dict", "default": {}},
    "tolerations": {"type": "list", "elements": "dict", "default": []},
    "resources": {"type": "dict", "default": {}},
    "pod_labels": {"type": "dict", "default": {}},
    "pod_annotations": {"type": "dict", "default": {}},
    "security_context": {"type": "dict", "default": RESTRICTED_SECURITY_CONTEXT},
    "pod_security_context": {"type": "dict"},
    "wait": {"type": "bool", "default": True},
    "delete_on_timeout": {"type": "bool", "default": False},
    "log_lines": {"type": "int", "default": 50},
}


def input_problems(params: dict[str, Any], name_option: str) -> list[str]:
    """Everything wrong with the options, each naming the option (checked before any API call)."""
    problems = []
    if not DNS_LABEL.match(params["namespace"]) or len(params["namespace"]) > 63:
        problems.append(f"namespace {params['namespace']!r} is not a valid namespace name (DNS label)")
    name = params[name_option]
    if not DNS_LABEL.match(name) or len(name) > 63:
        problems.append(f"{name_option} {name!r} must be a DNS label of at most 63 characters")
    why = image_problem(params["image"], params["allow_latest"])
    if why:
        problems.append(f"image {params['image']!r} {why}")
    for option in ("timeout", "unschedulable_timeout"):
        if params[option] <= 0:
            problems.append(f"{option} must be a positive number of seconds, got {params[option]}")
    for option in ("backoff_limit", "log_lines"):
        if params[option] < 0:
            problems.append(f"{option} must not be negative, got {params[option]}")
    if params["ttl_seconds_after_finished"] < -1:
        problems.append("ttl_seconds_after_finished must be -1 (keep the Job) or a number of seconds")
    for option in ("pod_labels", "pod_annotations", "node_selector"):
        for key, value in params[option].items():
            if not isinstance(value, str):
                problems.append(f"{option}.{key} must be a string (quote it), got {value!r}")
    return problems


def spec_from_params(params: dict[str, Any], **specific: Any) -> JobSpec:
    """A JobSpec from the shared options plus the module's own ones (``specific``)."""
    ttl = params["ttl_seconds_after_finished"]
    return JobSpec(
        namespace=params["namespace"],
        image=params["image"],
        env={k: str(v) for k, v in params["env"].items()},
        env_from_secrets=params["env_from_secrets"],
        env_from_config_maps=params["env_from_config_maps"],
        ttl_seconds_after_finished=None if ttl == -1 else ttl,
        backoff_limit=params["backoff_limit"],
        timeout=params["timeout"],
        unschedulable_timeout=params["unschedulable_timeout"],
        service_account_name=params["service_account_name"],
        image_pull_secrets=params["image_pull_secrets"],
        image_pull_policy=params["image_pull_policy"],
        node_selector=params["node_selector"],
        tolerations=params["tolerations"],
        resources=params["resources"],
        pod_labels=params["pod_labels"],
        pod_annotations=params["pod_annotations"],
        security_context=params["security_context"],
        pod_security_context=params["pod_security_context"],
        wait=params["wait"],
        delete_on_timeout=params["delete_on_timeout"],
        log_lines=params["log_lines"],
        **specific,
    )
