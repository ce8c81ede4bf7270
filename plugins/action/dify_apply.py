# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dify_apply in the controller's process when the task runs there (the module otherwise)."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.apply import apply_with
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.args import (
    APPLY_ARG_SPEC,
    APPLY_REQUIRED_TOGETHER,
    apply_problems,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.plugin_utils.action import DifyAction


class ActionModule(DifyAction):
    def execute(self, task_vars: dict[str, Any]) -> dict[str, Any]:
        if not self.in_process():
            return self.run_module("dify_ce.kubernetes.dify_apply", task_vars)
        params = self.options(APPLY_ARG_SPEC, required_together=APPLY_REQUIRED_TOGETHER)
        problems = apply_problems(params)
        if problems:
            raise InputError("invalid options: " + "; ".join(problems), problems=problems)
        return apply_with(self.kube(), params, self.check_mode)
