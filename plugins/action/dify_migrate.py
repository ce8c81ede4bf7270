# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dify_migrate in the controller's process when the task runs there; the module otherwise (the
module is what runs on any other host, and what the documentation describes)."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job_args import (
    MIGRATE_ARG_SPEC,
    REQUIRED_ONE_OF,
    migrate_problems,
    migrate_spec,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.lock import heartbeat
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.migration import KubeMigrationApi, MigrationRunner
from ansible_collections.dify_ce.kubernetes.plugins.plugin_utils.action import DifyAction


class ActionModule(DifyAction):
    def execute(self, task_vars: dict[str, Any]) -> dict[str, Any]:
        if not self.in_process():
            return self.run_module("dify_ce.kubernetes.dify_migrate", task_vars)
        params = self.options(MIGRATE_ARG_SPEC, required_one_of=REQUIRED_ONE_OF)
        problems = migrate_problems(params)
        if problems:
            raise InputError("invalid options: " + "; ".join(problems), problems=problems)
        kube = self.kube()
        runner = MigrationRunner(
            KubeMigrationApi(kube), migrate_spec(params), heartbeat=heartbeat(kube, params, self.check_mode)
        )
        result = runner.check() if self.check_mode else runner.run()
        if not self._task.diff:
            result.pop("diff", None)
        return result
