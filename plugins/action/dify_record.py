# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dify_record in the controller's process when the task runs there; the module otherwise."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.args import RECORD_ARG_SPEC
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.coordination import record_with
from ansible_collections.dify_ce.kubernetes.plugins.plugin_utils.action import DifyAction


class ActionModule(DifyAction):
    def execute(self, task_vars: dict[str, Any]) -> dict[str, Any]:
        if not self.in_process():
            return self.run_module("dify_ce.kubernetes.dify_record", task_vars)
        return record_with(self.kube(), self.options(RECORD_ARG_SPEC), self.check_mode)
