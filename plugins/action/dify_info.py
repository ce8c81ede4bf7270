# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dify_info in the controller's process when the task runs there (the module otherwise)."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.apply import read_all
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.args import READS_ARG_SPEC, reads_problems
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.plugin_utils.action import DifyAction


class ActionModule(DifyAction):
    def execute(self, task_vars: dict[str, Any]) -> dict[str, Any]:
        if not self.in_process():
            return self.run_module("dify_ce.kubernetes.dify_info", task_vars)
        params = self.options(READS_ARG_SPEC)
        problems = reads_problems(params)
        if problems:
            raise InputError("invalid options: " + "; ".join(problems), problems=problems)
        return {"changed": False, "objects": read_all(self.kube(), params["reads"])}
