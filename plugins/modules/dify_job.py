#!/usr/bin/python

# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dify_job
short_description: Run a one-off Kubernetes Job to completion and fail when it fails
version_added: 0.1.0
author:
  - Dify CE Kubernetes maintainers (@dify-ce)
description:
  - Creates a Job with one container, follows it with the watch API and returns its exit code
    and output; fails the task, with the reason and the last log lines, when the Job fails, its
    container cannot start, no node fits it, the timeout expires or the Job is deleted.
  - The same runner as M(dify_ce.kubernetes.dify_migrate), without the migration record - the
    Job runs every time (a finished Job of the same name is replaced; a running one is followed).
  - The collection uses it for status probes, database backups and password rotation, where
    C(kubernetes.core.k8s) with C(wait) would poll every 5 s and never see a failed Job.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - dify_ce.kubernetes.lock_option
  - dify_ce.kubernetes.job_options
options:
  name:
    description: Name of the Job (a DNS label); also the pods' C(job-name) label.
    type: str
    required: true
  command:
    description:
      - Command of the container. Unset keeps the template's; an empty list (or no template)
        keeps the image's entrypoint.
    type: list
    elements: str
  args:
    description: Arguments of the container. Unset keeps the template's.
    type: list
    elements: str
  secret_env:
    description:
      - Environment variables taken from Secret keys, as C(VAR) -> C(secret-name/key); the values
        never appear in the Job's spec nor in the task's result.
    type: dict
    default: {}
  volumes:
    description: Volumes of the pod, as in a pod spec.
    type: list
    elements: dict
    default: []
  volume_mounts:
    description: Volume mounts of the container, as in a container spec.
    type: list
    elements: dict
    default: []
  component:
    description: Value of the C(app.kubernetes.io/component) label of Job and pod (NetworkPolicies select on it).
    type: str
    default: job
  follow_existing:
    description:
      - Follow and judge a Job of this name (same image) that exists, running or finished, instead of
        replacing it - the second half of a Job started earlier with O(wait=false).
    type: bool
    default: false
requirements:
  - kubernetes >= 24.2.0
notes:
  - Supports check mode (reports what it would do, creates nothing).
seealso:
  - module: dify_ce.kubernetes.dify_migrate
"""

EXAMPLES = r"""
- name: Count the tables of the dify database
  dify_ce.kubernetes.dify_job:
    namespace: dify
    name: dify-status-probe
    image: postgres:15-alpine
    command: [sh, -c, 'psql -Atc "select count(*) from pg_tables where schemaname = $$public$$"']
    env:
      PGHOST: dify-postgres
      PGUSER: postgres
      PGDATABASE: dify
    secret_env:
      PGPASSWORD: dify-credentials/DB_PASSWORD
    component: db-tools
  register: probe

- name: Show the result
  ansible.builtin.debug:
    msg: "{{ probe.logs | last }} tables"
"""

RETURN = r"""
decision:
  description: V(run) (a new Job) or V(attach) (followed a Job of that name that was already running).
  returned: always
  type: str
job_name:
  description: Name of the Job.
  returned: always
  type: str
pod_name:
  description: Name of the pod that ran.
  returned: when the Job ran
  type: str
exit_code:
  description: Exit code of the container.
  returned: when the Job ran
  type: int
duration_seconds:
  description: Seconds from starting to follow the Job until its outcome was known.
  returned: when the Job ran
  type: float
logs:
  description: The last O(log_lines) lines of the output.
  returned: always
  type: list
  elements: str
report:
  description:
    - What the Job said it did - the JSON of the last line of its output that starts with C(DIFY_REPORT )
      (read from the whole output, not only the last lines); null without one.
  returned: when the Job ran
  type: dict
"""

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job import JobRunner, KubeJobApi  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job_args import (  # noqa: E402
    JOB_MODULE_ARG_SPEC,
    REQUIRED_ONE_OF,
    job_problems,
    job_spec,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.lock import heartbeat  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.module import DifyModule  # noqa: E402

# The options (also read by the action plugin of the same name).
ARGUMENT_SPEC = JOB_MODULE_ARG_SPEC


class DifyJob(DifyModule):
    def problems(self) -> list:
        return job_problems(self.params)

    def spec(self):  # noqa: ANN201
        return job_spec(self.params)

    def execute(self) -> dict:
        runner = JobRunner(
            KubeJobApi(self.kube), self.spec(), heartbeat=heartbeat(self.kube, self.params, self.check_mode)
        )
        return runner.check() if self.check_mode else runner.run()


def main() -> None:
    DifyJob(ARGUMENT_SPEC, required_one_of=REQUIRED_ONE_OF).main()


if __name__ == "__main__":
    main()
