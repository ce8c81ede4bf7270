# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wiring of the Job modules: kubernetes.core's auth options and client, the runner, errors."""

from __future__ import annotations

import traceback
from typing import Any, Callable

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.migration import JobRunner, JobSpec, MigrationError

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
            "kubeconfig", "context", "host", "api_key", "username", "password", "validate_certs",
            "verify_ssl", "ca_cert", "ssl_ca_cert", "client_cert", "cert_file", "client_key",
            "key_file", "proxy", "no_proxy", "proxy_headers", "persist_config", "impersonate_user",
            "impersonate_groups",
        )
    }  # fmt: skip


def run_job_module(
    argument_spec: dict[str, Any],
    problems: Callable[[dict[str, Any]], list[str]],
    build_spec: Callable[[dict[str, Any]], JobSpec],
) -> None:
    """Parse, validate (before any API call), run or check, and exit."""
    spec = dict(AUTH_ARG_SPEC)
    spec.update(argument_spec)
    if KUBERNETES_CORE_IMPORT_ERROR is not None:
        module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
        module.fail_json(
            msg="this module needs the kubernetes.core collection (>= 6.0.0): "
            "ansible-galaxy collection install kubernetes.core",
            error=str(KUBERNETES_CORE_IMPORT_ERROR),
        )
    module = AnsibleK8SModule(argument_spec=spec, supports_check_mode=True)
    found = problems(module.params)
    if found:
        module.fail_json(msg="invalid options: " + "; ".join(found), problems=found)

    try:
        from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job_client import JobClient

        k8s_client = get_api_client(module=module)
        runner = JobRunner(JobClient(k8s_client.client), build_spec(module.params))
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
