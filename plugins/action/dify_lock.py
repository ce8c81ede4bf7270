# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dify_lock in the controller's process when the task runs there; the module otherwise. The holder
is always named here, in the controller: the run, not the host a module happens to run on."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.args import LOCK_ARG_SPEC
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.coordination import lock_with
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.lock import identity
from ansible_collections.dify_ce.kubernetes.plugins.plugin_utils.action import DifyAction


class ActionModule(DifyAction):
    def execute(self, task_vars: dict[str, Any]) -> dict[str, Any]:
        if not self._task.args.get("holder"):
            self._task.args["holder"] = identity(task_vars)
        if not self.in_process():
            return self.run_module("dify_ce.kubernetes.dify_lock", task_vars)
        return lock_with(self.kube(), self.options(LOCK_ARG_SPEC), self.check_mode)
