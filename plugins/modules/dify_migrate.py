#!/usr/bin/python

# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dify_migrate
short_description: Run Dify's database migration in a Kubernetes Job and fail when it fails
version_added: 0.1.0
author:
  - Dify CE Kubernetes maintainers (@dify-ce)
description:
  - Runs C(flask db upgrade) (Alembic through Flask-Migrate) with the given Dify API image in a
    one-off Kubernetes Job, follows the Job and its pod with the watch API, and fails the task
    with the reason and the last log lines whenever the migration does not succeed.
  - Dify's own C(flask upgrade-db), run at container start when C(MIGRATION_ENABLED=true), skips
    silently while a Redis lock is held and, in Dify 1.9 to 1.12, logs exceptions and exits 0.
    This module exists so that a broken migration stops the play instead of looking like success.
  - After a successful run it records the migrated image, the Job, the time and the applied
    revisions in a ConfigMap named like the Job. When that image already migrated successfully
    and O(force=false), no Job is created and the task reports RV(ignore:changed=false).
  - Only one migration runs at a time. If a migration Job for the same image and the same pod is
    still running (started by another play, or by a run that was interrupted), the module follows
    that Job instead of starting another one; if it runs for a different image, the task fails.
    A Job that cannot start (image pull or configuration errors, no node that fits) or that runs
    another pod is replaced, so that a run after fixing the cause succeeds.
  - A Job is finished as soon as its pod succeeded or failed (the Job controller records it up to
    a second later); the next run judges it the same way, so a second run right after the first
    skips and O(force=true) runs a new Job.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - dify_ce.kubernetes.lock_option
  - dify_ce.kubernetes.job_options
options:
  image:
    description:
      - The Dify API image to migrate with, the same image the api, worker and beat will run,
        for example V(langgenius/dify-api:1.11.4). Must carry a tag or a digest.
      - Required unless O(pod_template) holds the api's container, whose image is then used.
    type: str
  namespace:
    description: Namespace of the Dify installation; the Job and the record are created there.
    type: str
    required: true
  command:
    description:
      - Command of the migration container. It replaces the image's entrypoint (and the
        template's command and args).
      - Unset, a shell runs C(flask db upgrade), then prints Alembic's C(flask db current) and
        C(flask db heads) as the Job's report (a C(DIFY_REPORT) line with both); a migration
        that exits 0 with the database below the image's head then fails. A command
        of your own is judged by its exit code (and by such a report line if it prints one).
    type: list
    elements: str
  job_name:
    description:
      - Name of the Job, of its record ConfigMap and of the pods' C(job-name) label, so that
        C(kubectl logs -n NAMESPACE job/dify-db-migration) shows the migration output.
    type: str
    default: dify-db-migration
  force:
    description: Run the migration even if the record says this image already migrated.
    type: bool
    default: false
requirements:
  - kubernetes >= 24.2.0
notes:
  - Supports check mode (reports V(run), V(attach) or V(skip) in RV(decision) and creates nothing)
    and diff mode (shows the change of the migration record).
  - Needs, in O(namespace), permission to get, create, delete, list and watch Jobs, to list and
    watch pods, to get pod logs, and to get, create and update ConfigMaps.
seealso:
  - module: dify_ce.kubernetes.dify_job
  - module: kubernetes.core.k8s
  - name: Dify database migrations
    description: How Dify's API image applies its Alembic migrations.
    link: https://github.com/langgenius/dify/tree/main/api/migrations
"""

EXAMPLES = r"""
- name: Migrate with exactly the pod of the api Deployment (image, environment, volumes, security)
  dify_ce.kubernetes.dify_migrate:
    namespace: dify
    pod_template: "{{ (query('kubernetes.core.k8s', kind='Deployment', namespace='dify', resource_name='dify-api')
                       | first).spec.template }}"
    image: langgenius/dify-api:1.11.5

- name: Migrate the database to the image the app is about to run
  dify_ce.kubernetes.dify_migrate:
    namespace: dify
    image: langgenius/dify-api:1.11.4
    env_from_config_maps: [dify-shared-env]
    env_from_secrets: [dify-credentials]
    pod_annotations:
      sidecar.istio.io/inject: "false"
  register: migration

- name: Show what was applied
  ansible.builtin.debug:
    msg: "{{ migration.applied_revisions | map(attribute='to') | list }}"

- name: Re-run a migration for an image that already migrated (after a manual fix)
  dify_ce.kubernetes.dify_migrate:
    namespace: dify
    image: registry.example.com/langgenius/dify-api:1.11.4
    image_pull_secrets: [registry-credentials]
    env_from_config_maps: [dify-shared-env]
    env_from_secrets: [dify-credentials]
    force: true
    timeout: 1800
"""

RETURN = r"""
decision:
  description: What the module did, V(run) (new Job), V(attach) (followed an existing Job) or V(skip).
  returned: always
  type: str
  sample: run
msg:
  description: Why it did so.
  returned: always
  type: str
  sample: image langgenius/dify-api:1.11.4 has not been migrated yet (last migrated langgenius/dify-api:1.11.2)
job_name:
  description: Name of the migration Job.
  returned: always
  type: str
  sample: dify-db-migration
pod_name:
  description: Name of the pod that ran the migration.
  returned: when the Job ran or was followed
  type: str
  sample: dify-db-migration-x7k2p
image:
  description: The image the migration ran (or would run) with.
  returned: always
  type: str
  sample: langgenius/dify-api:1.11.4
exit_code:
  description: Exit code of the migration container.
  returned: when the Job ran or was followed
  type: int
  sample: 0
duration_seconds:
  description: Seconds from starting to follow the Job until its outcome was known.
  returned: when the Job ran or was followed
  type: float
  sample: 12.5
applied_revisions:
  description: Alembic revisions applied by this run, in order (empty when already at head).
  returned: always
  type: list
  elements: dict
  contains:
    from:
      description: Revision before (null for the first revision of an empty database).
      type: str
    to:
      description: Revision applied.
      type: str
    message:
      description: The revision's message.
      type: str
  sample: [{from: 64b051264f32, to: 2a3aebbbf4bb, message: add foo}]
logs:
  description: The last O(log_lines) lines of the migration output.
  returned: always
  type: list
  elements: str
skipped_reason:
  description: Why no Job was needed.
  returned: when RV(decision=skip)
  type: str
record:
  description:
    - The migration record after the task.
    - Keys image, job, job_uid, completed_at, duration_seconds, applied_revisions.
  returned: when the Job ran, was followed or skipped
  type: dict
report:
  description:
    - What the Job said it did - the JSON of the last line of its output that starts with C(DIFY_REPORT )
      (read from the whole output, not only the last lines); null without one.
  returned: when the Job ran
  type: dict
"""

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job_args import (  # noqa: E402
    MIGRATE_ARG_SPEC,
    REQUIRED_ONE_OF,
    migrate_problems,
    migrate_spec,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.lock import heartbeat  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.migration import (  # noqa: E402
    KubeMigrationApi,
    MigrationRunner,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.module import DifyModule  # noqa: E402

# The options (also read by the action plugin of the same name, which runs this in the
# controller's process when the task runs there).
ARGUMENT_SPEC = MIGRATE_ARG_SPEC


class DifyMigrate(DifyModule):
    def problems(self) -> list:
        return migrate_problems(self.params)

    def spec(self):  # noqa: ANN201
        return migrate_spec(self.params)

    def execute(self) -> dict:
        runner = MigrationRunner(
            KubeMigrationApi(self.kube), self.spec(), heartbeat=heartbeat(self.kube, self.params, self.check_mode)
        )
        return runner.check() if self.check_mode else runner.run()


def main() -> None:
    DifyMigrate(ARGUMENT_SPEC, required_one_of=REQUIRED_ONE_OF).main()


if __name__ == "__main__":
    main()
