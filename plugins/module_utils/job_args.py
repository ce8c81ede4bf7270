# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument spec and input checks shared by dify_migrate and dify_job (doc fragment job_options)."""

from __future__ import annotations

import copy
import re
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.args import LOCK_OPTION
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job import JobSpec, image_problem, pod_template
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.migration import CONTAINER_NAME, DEFAULT_COMMAND

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

RESTRICTED_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}

# Options that change the pod default to None: with pod_template, None keeps the template's.
JOB_ARG_SPEC: dict[str, dict[str, Any]] = {
    "namespace": {"type": "str", "required": True},
    "image": {"type": "str"},
    "pod_template": {"type": "dict"},
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
    "resources": {"type": "dict"},
    "pod_labels": {"type": "dict", "default": {}},
    "pod_annotations": {"type": "dict", "default": {}},
    "security_context": {"type": "dict"},
    "pod_security_context": {"type": "dict"},
    "wait": {"type": "bool", "default": True},
    "delete_on_timeout": {"type": "bool", "default": False},
    "log_lines": {"type": "int", "default": 50},
    **LOCK_OPTION,
}
REQUIRED_ONE_OF = [("image", "pod_template")]


def template_problems(template: Any) -> list[str]:
    if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
        return ["pod_template must be a pod template: {metadata: ..., spec: {containers: [...]}}"]
    containers = template["spec"].get("containers")
    if not isinstance(containers, list) or len(containers) != 1 or not isinstance(containers[0], dict):
        return ["pod_template.spec.containers must hold exactly one container"]
    if not containers[0].get("name"):
        return ["pod_template.spec.containers[0] has no name"]
    return []


def input_problems(params: dict[str, Any], name_option: str) -> list[str]:
    """Everything wrong with the options, each naming the option (checked before any API call)."""
    problems = []
    if not DNS_LABEL.match(params["namespace"]) or len(params["namespace"]) > 63:
        problems.append(f"namespace {params['namespace']!r} is not a valid namespace name (DNS label)")
    name = params[name_option]
    if not DNS_LABEL.match(name) or len(name) > 63:
        problems.append(f"{name_option} {name!r} must be a DNS label of at most 63 characters")
    template = params.get("pod_template")
    found = template_problems(template) if template is not None else []
    problems += found
    if not found:
        image = params["image"] or (template["spec"]["containers"][0].get("image", "") if template else "")
        why = image_problem(image, params["allow_latest"])
        if why:
            problems.append(f"image {image!r} {why}")
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


def spec_from_params(
    params: dict[str, Any],
    job_name: str,
    component: str,
    container_name: str,
    command: list[str] | None,
    args: list[str] | None = None,
    secret_env: dict[str, tuple[str, str]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    volume_mounts: list[dict[str, Any]] | None = None,
    force: bool = False,
    follow_existing: bool = False,
) -> JobSpec:
    """A JobSpec from the shared options plus the module's own ones."""
    base = params.get("pod_template")
    security_context = params["security_context"]
    if security_context is None and base is None:
        security_context = RESTRICTED_SECURITY_CONTEXT
    template = pod_template(
        base=base,
        # A template's container keeps its name (the role names each Job's after what it does).
        container_name=None if base else container_name,
        image=params["image"],
        command=command,
        args=args,
        env={k: str(v) for k, v in params["env"].items()},
        secret_env=secret_env,
        env_from_config_maps=params["env_from_config_maps"],
        env_from_secrets=params["env_from_secrets"],
        volumes=volumes,
        volume_mounts=volume_mounts,
        resources=params["resources"] or None,
        security_context=security_context,
        pod_security_context=params["pod_security_context"],
        image_pull_policy=params["image_pull_policy"],
        image_pull_secrets=params["image_pull_secrets"],
        node_selector=params["node_selector"],
        tolerations=params["tolerations"],
        service_account_name=params["service_account_name"],
        pod_labels=params["pod_labels"],
        pod_annotations=params["pod_annotations"],
    )
    ttl = params["ttl_seconds_after_finished"]
    return JobSpec(
        namespace=params["namespace"],
        template=template,
        job_name=job_name,
        component=component,
        ttl_seconds_after_finished=None if ttl == -1 else ttl,
        backoff_limit=params["backoff_limit"],
        timeout=params["timeout"],
        unschedulable_timeout=params["unschedulable_timeout"],
        force=force,
        wait=params["wait"],
        delete_on_timeout=params["delete_on_timeout"],
        log_lines=params["log_lines"],
        follow_existing=follow_existing,
    )


# -- the two modules' own options ---------------------------------------------------------

MIGRATE_ARG_SPEC: dict[str, dict[str, Any]] = dict(
    JOB_ARG_SPEC,
    # Unset: migration.DEFAULT_COMMAND (flask db upgrade, then Alembic's current and heads).
    command={"type": "list", "elements": "str"},
    job_name={"type": "str", "default": names.MIGRATION_JOB},
    force={"type": "bool", "default": False},
)

JOB_MODULE_ARG_SPEC: dict[str, dict[str, Any]] = dict(
    JOB_ARG_SPEC,
    name={"type": "str", "required": True},
    command={"type": "list", "elements": "str"},
    args={"type": "list", "elements": "str"},
    secret_env={"type": "dict", "default": {}, "no_log": False},
    volumes={"type": "list", "elements": "dict", "default": []},
    volume_mounts={"type": "list", "elements": "dict", "default": []},
    component={"type": "str", "default": "job"},
    follow_existing={"type": "bool", "default": False},
)


def migrate_problems(params: dict[str, Any]) -> list[str]:
    found = input_problems(params, "job_name")
    if params["command"] is not None and not params["command"]:
        found.append("command must not be empty")
    return found


def migrate_spec(params: dict[str, Any]) -> JobSpec:
    """dify_migrate: the pod's command is the migration, with no args of the template's."""
    return spec_from_params(
        params,
        job_name=params["job_name"],
        component=names.MIGRATION,
        container_name=CONTAINER_NAME,
        command=params["command"] or list(DEFAULT_COMMAND),
        args=[],
        force=params["force"],
    )


def migrate_spec_of(namespace: str, pod_template: dict[str, Any], force: bool = False) -> JobSpec:
    """The JobSpec dify_migrate makes of these options, the others at their defaults (what the
    role passes): the Job prepare plans with is the Job the module will want."""
    params = {name: copy.deepcopy(option.get("default")) for name, option in MIGRATE_ARG_SPEC.items()}
    params.update(namespace=namespace, pod_template=pod_template, force=force)
    return migrate_spec(params)


def job_problems(params: dict[str, Any]) -> list[str]:
    found = input_problems(params, "name")
    for var, ref in params["secret_env"].items():
        if not isinstance(ref, str) or ref.count("/") != 1 or not all(ref.split("/")):
            found.append(f"secret_env.{var} must be 'secret-name/key', got {ref!r}")
    return found


def job_spec(params: dict[str, Any]) -> JobSpec:
    return spec_from_params(
        params,
        job_name=params["name"],
        component=params["component"],
        container_name="job",
        command=params["command"],
        args=params["args"],
        secret_env={var: tuple(ref.split("/")) for var, ref in params["secret_env"].items()},
        volumes=params["volumes"],
        volume_mounts=params["volume_mounts"],
        follow_existing=params["follow_existing"],
    )
