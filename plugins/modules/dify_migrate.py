#!/usr/bin/python

# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dify_migrate
short_description: Run Dify's database migration in a Kubernetes Job and fail when it fails
version_added: 0.1.0
author:
  - Dify CE Kubernetes maintainers (@dify-ce)
description:
  - Runs C(flask db upgrade) (Alembic through Flask-Migrate) with the given Dify API image in a
    one-off Kubernetes Job, follows the Job and its pod with the watch API, and fails the task
    with the reason and the last log lines whenever the migration does not succeed.
  - Dify's own C(flask upgrade-db), run at container start when C(MIGRATION_ENABLED=true), skips
    silently while a Redis lock is held and, in Dify 1.9 to 1.12, logs exceptions and exits 0.
    This module exists so that a broken migration stops the play instead of looking like success.
  - After a successful run it records the migrated image, the Job, the time and the applied
    revisions in a ConfigMap named like the Job. When that image already migrated successfully
    and O(force=false), no Job is created and the task reports RV(ignore:changed=false).
  - Only one migration runs at a time. If a migration Job for the same image is still running
    (started by another play, or by a run that was interrupted), the module follows that Job
    instead of starting another one; if it runs for a different image, the task fails.
  - Fails fast, without waiting for the timeout, when the Job fails, when a container cannot
    start (V(ErrImagePull), V(ImagePullBackOff), V(InvalidImageName),
    V(CreateContainerConfigError), V(CreateContainerError)), when no node fits the pod for
    O(unschedulable_timeout) seconds, or when the Job is deleted while it runs.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  namespace:
    description: Namespace of the Dify installation; the Job and the record are created there.
    type: str
    required: true
  image:
    description:
      - The Dify API image to migrate with, the same image the api, worker and beat will run,
        for example V(langgenius/dify-api:1.11.4).
      - Must carry a tag or a digest. The V(latest) tag is refused unless O(allow_latest=true).
    type: str
    required: true
  allow_latest:
    description: Accept an image tagged V(latest) (the record then cannot tell versions apart).
    type: bool
    default: false
  command:
    description: Command of the migration container. It replaces the image's entrypoint.
    type: list
    elements: str
    default: [flask, db, upgrade]
  env:
    description:
      - Extra environment variables of the migration container (values are converted to strings).
      - They are visible in the Job's spec; put secrets in a Secret and use O(env_from_secrets).
    type: dict
    default: {}
  env_from_secrets:
    description: Secrets whose keys become environment variables (the same ones the api uses).
    type: list
    elements: str
    default: []
  env_from_config_maps:
    description: ConfigMaps whose keys become environment variables (the same ones the api uses).
    type: list
    elements: str
    default: []
  job_name:
    description:
      - Name of the Job, of its record ConfigMap and of the pods' C(job-name) label, so that
        C(kubectl logs -n NAMESPACE job/dify-db-migration) shows the migration output.
    type: str
    default: dify-db-migration
  ttl_seconds_after_finished:
    description: Seconds after which Kubernetes deletes the finished Job. V(-1) keeps it.
    type: int
    default: 86400
  backoff_limit:
    description: Retries of a failed migration pod. V(0) means a failed migration is never retried blindly.
    type: int
    default: 0
  timeout:
    description: Seconds to wait for the Job to finish before failing the task.
    type: int
    default: 600
  unschedulable_timeout:
    description: Seconds a pod may stay unschedulable (no node fits it) before the task fails.
    type: int
    default: 60
  service_account_name:
    description: ServiceAccount of the migration pod (the namespace's default when omitted).
    type: str
  image_pull_secrets:
    description: Names of Secrets used to pull the image from a private registry.
    type: list
    elements: str
    default: []
  image_pull_policy:
    description: Image pull policy of the migration container.
    type: str
    choices: [Always, IfNotPresent, Never]
  node_selector:
    description: Node labels the migration pod must run on.
    type: dict
    default: {}
  tolerations:
    description: Tolerations of the migration pod, as in a pod spec.
    type: list
    elements: dict
    default: []
  resources:
    description: Resource requests and limits of the migration container, as in a pod spec.
    type: dict
    default: {}
  pod_labels:
    description: Extra labels of the migration pod.
    type: dict
    default: {}
  pod_annotations:
    description:
      - Annotations of the migration pod, for example V(sidecar.istio.io/inject=false) so that a
        service-mesh sidecar does not keep the Job running forever.
    type: dict
    default: {}
  security_context:
    description:
      - Security context of the migration container. The default meets the C(restricted) Pod
        Security Standard; the Dify API image runs as the non-root user 1001.
    type: dict
    default:
      allowPrivilegeEscalation: false
      capabilities:
        drop: [ALL]
      runAsNonRoot: true
      seccompProfile:
        type: RuntimeDefault
  pod_security_context:
    description: Security context of the migration pod.
    type: dict
  force:
    description: Run the migration even if the record says this image already migrated.
    type: bool
    default: false
  wait:
    description:
      - Wait for the migration to finish and judge it. With V(false) the task returns once the
        Job exists (and no record is written).
    type: bool
    default: true
  delete_on_timeout:
    description: Delete the Job when O(timeout) expires. By default it is left for inspection.
    type: bool
    default: false
  log_lines:
    description: How many of the last log lines to return and to show in failure messages.
    type: int
    default: 50
requirements:
  - kubernetes >= 24.2.0
notes:
  - Supports check mode (reports V(run), V(attach) or V(skip) in RV(decision) and creates nothing)
    and diff mode (shows the change of the migration record).
  - Needs, in O(namespace), permission to get, create, delete, list and watch Jobs, to list and
    watch pods, to get pod logs, and to get, create and update ConfigMaps.
seealso:
  - module: kubernetes.core.k8s
  - name: Dify database migrations
    description: How Dify's API image applies its Alembic migrations.
    link: https://github.com/langgenius/dify/tree/main/api/migrations
"""

EXAMPLES = r"""
- name: Migrate the database to the image the app is about to run
  dify_ce.kubernetes.dify_migrate:
    namespace: dify
    image: langgenius/dify-api:1.11.4
    env_from_config_maps: [dify-shared-env]
    env_from_secrets: [dify-credentials]
    pod_annotations:
      sidecar.istio.io/inject: "false"
  register: migration

- name: Show what was applied
  ansible.builtin.debug:
    msg: "{{ migration.applied_revisions | map(attribute='to') | list }}"

- name: Re-run a migration for an image that already migrated (after a manual fix)
  dify_ce.kubernetes.dify_migrate:
    namespace: dify
    image: registry.example.com/langgenius/dify-api:1.11.4
    image_pull_secrets: [registry-credentials]
    env_from_config_maps: [dify-shared-env]
    env_from_secrets: [dify-credentials]
    force: true
    timeout: 1800
"""

RETURN = r"""
decision:
  description: What the module did, V(run) (new Job), V(attach) (followed an existing Job) or V(skip).
  returned: always
  type: str
  sample: run
msg:
  description: Why it did so.
  returned: always
  type: str
  sample: image langgenius/dify-api:1.11.4 has not been migrated yet (last migrated langgenius/dify-api:1.11.2)
job_name:
  description: Name of the migration Job.
  returned: always
  type: str
  sample: dify-db-migration
pod_name:
  description: Name of the pod that ran the migration.
  returned: when the Job ran or was followed
  type: str
  sample: dify-db-migration-x7k2p
image:
  description: The image the migration ran (or would run) with.
  returned: always
  type: str
  sample: langgenius/dify-api:1.11.4
exit_code:
  description: Exit code of the migration container.
  returned: when the Job ran or was followed
  type: int
  sample: 0
duration_seconds:
  description: Seconds from starting to follow the Job until its outcome was known.
  returned: when the Job ran or was followed
  type: float
  sample: 12.5
applied_revisions:
  description: Alembic revisions applied by this run, in order (empty when already at head).
  returned: always
  type: list
  elements: dict
  contains:
    from:
      description: Revision before (null for the first revision of an empty database).
      type: str
    to:
      description: Revision applied.
      type: str
    message:
      description: The revision's message.
      type: str
  sample: [{from: 64b051264f32, to: 2a3aebbbf4bb, message: add foo}]
logs:
  description: The last O(log_lines) lines of the migration output.
  returned: always
  type: list
  elements: str
skipped_reason:
  description: Why no Job was needed.
  returned: when RV(decision=skip)
  type: str
record:
  description:
    - The migration record after the task.
    - Keys image, job, job_uid, completed_at, duration_seconds, applied_revisions.
  returned: when the Job ran, was followed or skipped
  type: dict
"""

import re  # noqa: E402
import traceback  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

    KUBERNETES_CORE_IMPORT_ERROR = None
except ImportError as exc:
    KUBERNETES_CORE_IMPORT_ERROR = exc
    # Just enough to parse a task that passes connection options, to say what is missing.
    AUTH_ARG_SPEC = {
        name: {"type": "raw", "no_log": True}
        for name in (
            "kubeconfig",
            "context",
            "host",
            "api_key",
            "username",
            "password",
            "validate_certs",
            "verify_ssl",
            "ca_cert",
            "ssl_ca_cert",
            "client_cert",
            "cert_file",
            "client_key",
            "key_file",
            "proxy",
            "no_proxy",
            "proxy_headers",
            "persist_config",
            "impersonate_user",
            "impersonate_groups",
        )
    }

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.migration import (  # noqa: E402
    DEFAULT_COMMAND,
    MigrationError,
    MigrationRunner,
    MigrationSpec,
    image_problem,
)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

DEFAULT_SECURITY_CONTEXT = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def argument_spec() -> dict:
    spec = dict(AUTH_ARG_SPEC)
    spec.update(
        namespace=dict(type="str", required=True),
        image=dict(type="str", required=True),
        allow_latest=dict(type="bool", default=False),
        command=dict(type="list", elements="str", default=list(DEFAULT_COMMAND)),
        env=dict(type="dict", default={}),
        env_from_secrets=dict(type="list", elements="str", default=[], no_log=False),
        env_from_config_maps=dict(type="list", elements="str", default=[]),
        job_name=dict(type="str", default="dify-db-migration"),
        ttl_seconds_after_finished=dict(type="int", default=86400),
        backoff_limit=dict(type="int", default=0),
        timeout=dict(type="int", default=600),
        unschedulable_timeout=dict(type="int", default=60),
        service_account_name=dict(type="str"),
        image_pull_secrets=dict(type="list", elements="str", default=[], no_log=False),
        image_pull_policy=dict(type="str", choices=["Always", "IfNotPresent", "Never"]),
        node_selector=dict(type="dict", default={}),
        tolerations=dict(type="list", elements="dict", default=[]),
        resources=dict(type="dict", default={}),
        pod_labels=dict(type="dict", default={}),
        pod_annotations=dict(type="dict", default={}),
        security_context=dict(type="dict", default=DEFAULT_SECURITY_CONTEXT),
        pod_security_context=dict(type="dict"),
        force=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        delete_on_timeout=dict(type="bool", default=False),
        log_lines=dict(type="int", default=50),
    )
    return spec


def input_problems(params: dict) -> list:
    """Everything wrong with the options, each naming the option (checked before any API call)."""
    problems = []
    if not DNS_LABEL.match(params["namespace"]) or len(params["namespace"]) > 63:
        problems.append(f"namespace {params['namespace']!r} is not a valid namespace name (DNS label)")
    if not DNS_LABEL.match(params["job_name"]) or len(params["job_name"]) > 63:
        problems.append(f"job_name {params['job_name']!r} must be a DNS label of at most 63 characters")
    why = image_problem(params["image"], params["allow_latest"])
    if why:
        problems.append(f"image {params['image']!r} {why}")
    if not params["command"]:
        problems.append("command must not be empty")
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


def spec_from_params(params: dict) -> MigrationSpec:
    ttl = params["ttl_seconds_after_finished"]
    return MigrationSpec(
        namespace=params["namespace"],
        image=params["image"],
        job_name=params["job_name"],
        command=params["command"],
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
        force=params["force"],
        wait=params["wait"],
        delete_on_timeout=params["delete_on_timeout"],
        log_lines=params["log_lines"],
    )


def main() -> None:
    if KUBERNETES_CORE_IMPORT_ERROR is not None:
        module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
        module.fail_json(
            msg="dify_ce.kubernetes.dify_migrate needs the kubernetes.core collection (>= 6.0.0): "
            "ansible-galaxy collection install kubernetes.core",
            error=str(KUBERNETES_CORE_IMPORT_ERROR),
        )

    module = AnsibleK8SModule(argument_spec=argument_spec(), supports_check_mode=True)
    problems = input_problems(module.params)
    if problems:
        module.fail_json(msg="invalid options: " + "; ".join(problems), problems=problems)

    try:
        from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job_client import JobClient

        k8s_client = get_api_client(module=module)
        runner = MigrationRunner(JobClient(k8s_client.client.client), spec_from_params(module.params))
        result = runner.check() if module.check_mode else runner.run()
    except MigrationError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except CoreException as exc:
        module.fail_from_exception(exc)
    except Exception as exc:  # API errors (ApiException, connection errors): a readable reason first
        from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job_client import api_message

        module.fail_json(
            msg=f"Kubernetes API error: {api_message(exc)}",
            body=getattr(exc, "body", None),
            exception=traceback.format_exc(),
        )

    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
