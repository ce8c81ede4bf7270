# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fault tier's interruption: kills the whole play (ansible-playbook and its workers, the
process group it was started in) as a controller that dies would, at the start of task N
(DIFY_FAULT_KILL_AT=N) or DIFY_FAULT_KILL_AFTER seconds into it. DIFY_FAULT_RECORD=<file> writes
the task boundaries, one JSON line per task started: its number, name, action and whether it ran
(or was skipped). Test-only: enabled by tests/faults."""

from __future__ import annotations

DOCUMENTATION = r"""
name: dify_fault
type: aggregate
short_description: Kill the play at a task boundary (the fault tier of tests/faults)
description:
  - Test-only. Kills the process group of ansible-playbook at the start of task DIFY_FAULT_KILL_AT, or
    DIFY_FAULT_KILL_AFTER seconds into it, and writes every task started to DIFY_FAULT_RECORD.
requirements:
  - enabled in ANSIBLE_CALLBACKS_ENABLED
"""

import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dify_fault"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = 0
        self.kill_at = int(os.environ.get("DIFY_FAULT_KILL_AT") or 0)
        self.after = float(os.environ.get("DIFY_FAULT_KILL_AFTER") or 0)
        self.record = os.environ.get("DIFY_FAULT_RECORD") or ""
        self.tasks = {}  # number -> {"name", "action", "ran"}
        self.numbers = {}  # task uuid -> number

    @staticmethod
    def _kill():
        os.killpg(os.getpgid(0), signal.SIGKILL)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started += 1
        self.numbers[task._uuid] = self.started
        self.tasks[self.started] = {"n": self.started, "name": task.get_name(), "action": task.action, "ran": False}
        if self.started == self.kill_at:
            if self.after:
                threading.Timer(self.after, self._kill).start()
            else:
                self._kill()

    def _ran(self, result):
        number = self.numbers.get(result._task._uuid)
        if number:
            self.tasks[number]["ran"] = True

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_item_on_ok = v2_runner_item_on_failed = _ran

    def v2_playbook_on_stats(self, stats):
        if self.record:
            with open(self.record, "w", encoding="utf-8") as out:
                out.writelines(json.dumps(task) + "\n" for task in self.tasks.values())
