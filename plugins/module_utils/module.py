# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one base class of the collection's modules, in the manner of community.okd: kubernetes.core's
auth options and client, the input checks before any API call, and errors turned into
``fail_json`` in one place. A module implements ``problems()`` and ``execute()``."""

from __future__ import annotations

import traceback
from typing import Any

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import DifyError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.k8s import Kube, api_message

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

    class CoreException(Exception):  # type: ignore[no-redef]
        pass


class DifyModule:
    """Parse and check the options, connect, execute, exit."""

    def __init__(self, argument_spec: dict[str, Any], **module_kwargs: Any) -> None:
        spec = dict(AUTH_ARG_SPEC)
        spec.update(argument_spec)
        module_kwargs.setdefault("supports_check_mode", True)
        if KUBERNETES_CORE_IMPORT_ERROR is not None:
            AnsibleModule(argument_spec=spec, **module_kwargs).fail_json(
                msg="this module needs the kubernetes.core collection (>= 6.0.0): "
                "ansible-galaxy collection install kubernetes.core",
                error=str(KUBERNETES_CORE_IMPORT_ERROR),
            )
        self.module = AnsibleK8SModule(argument_spec=spec, **module_kwargs)
        self.params = self.module.params
        self.check_mode = self.module.check_mode
        self._kube: Kube | None = None

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(get_api_client(module=self.module).client)
        return self._kube

    def problems(self) -> list[str]:
        """Everything wrong with the options, each naming the option."""
        return []

    def execute(self) -> dict[str, Any]:
        raise NotImplementedError  # each module implements it

    def main(self) -> None:
        found = self.problems()
        if found:
            self.module.fail_json(msg="invalid options: " + "; ".join(found), problems=found)
        try:
            result = self.execute()
        except DifyError as exc:
            self.module.fail_json(msg=str(exc), **exc.details)
        except CoreException as exc:
            self.module.fail_from_exception(exc)
        except Exception as exc:  # connection errors and the like: a readable reason first
            self.module.fail_json(
                msg=f"Kubernetes API error: {api_message(exc)}",
                body=getattr(exc, "body", None),
                exception=traceback.format_exc(),
            )
        if not self.module._diff:
            result.pop("diff", None)
        self.module.exit_json(**result)
