# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of the collection's action plugins: they run in the controller's own process (the
kubernetes client is already imported there, and no module has to be shipped and started), talk
to the cluster through the same client layer as the modules, with kubernetes.core's connection
options (task arguments, K8S_AUTH_* variables, kubeconfig, in-cluster), and turn errors into
failed results in one place."""

from __future__ import annotations

import contextlib
import os
import traceback
from typing import Any, Iterator

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import DifyError, InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.k8s import Kube, api_message

try:
    # Imported when the strategy loads the action (in the controller's main process), so every
    # task's worker process starts with the kubernetes client already imported.
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

    IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by run()
    AUTH_ARG_SPEC, IMPORT_ERROR = {}, exc

    class CoreException(Exception):  # type: ignore[no-redef]
        pass


class DifyAction(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        if IMPORT_ERROR is not None:
            return dict(result, failed=True, msg="this needs the kubernetes.core collection (>= 6.0.0) and the "
                        f"kubernetes Python package: {IMPORT_ERROR}")  # fmt: skip
        try:
            with self._environment():
                result.update(self.execute(task_vars or {}))
        except DifyError as exc:
            result.update(exc.details)
            result.update(failed=True, msg=str(exc))
        except CoreException as exc:
            result.update(failed=True, msg=str(exc))
        except Exception as exc:  # API and connection errors: the apiserver's reason first
            result.update(failed=True, msg=f"Kubernetes API error: {api_message(exc)}",
                          exception=traceback.format_exc())  # fmt: skip
        return result

    def execute(self, task_vars: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - each action has one
        raise NotImplementedError

    # -- where the work happens -------------------------------------------------------
    def in_process(self) -> bool:
        """Whether the task runs on the controller (connection local), so the work can be done
        here instead of shipping and starting the module."""
        return getattr(self._connection, "transport", "") in ("local", "ansible.builtin.local")

    def run_module(self, name: str, task_vars: dict[str, Any]) -> dict[str, Any]:
        """The module of the same name on the target host (a connection other than local)."""
        return self._execute_module(module_name=name, module_args=self._task.args, task_vars=task_vars)

    def options(self, spec: dict[str, Any], **rules: Any) -> dict[str, Any]:
        """The task's arguments validated and typed as the module would (connection options too)."""
        full = dict(AUTH_ARG_SPEC)
        full.update(spec)
        validation = ArgumentSpecValidator(full, **rules).validate(dict(self._task.args))
        if validation.error_messages:
            raise InputError("invalid options: " + "; ".join(validation.error_messages))
        return validation.validated_parameters

    @property
    def check_mode(self) -> bool:
        return bool(self._task.check_mode)

    def kube(self) -> Kube:
        """A client from the task's connection options, else K8S_AUTH_* and the kubeconfig."""
        auth = {name: self._task.args[name] for name in AUTH_ARG_SPEC if self._task.args.get(name) is not None}
        return Kube(get_api_client(**auth).client)

    @contextlib.contextmanager
    def _environment(self) -> Iterator[None]:
        """The task's `environment:` (K8S_AUTH_KUBECONFIG, proxies), as a module would see it."""
        wanted: dict[str, str] = {}
        environments = self._task.environment or []
        for environment in environments if isinstance(environments, list) else [environments]:
            wanted.update({str(k): str(v) for k, v in (self._templar.template(environment) or {}).items()})
        saved = {name: os.environ.get(name) for name in wanted}
        os.environ.update(wanted)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
