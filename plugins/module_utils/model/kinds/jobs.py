# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pods of the Jobs: those of the api image start from the api pod (components/api.py), the
database tools from the PostgreSQL pod (components/postgres.py). Their components (what they
reach, their resources) are declared in components/jobs.py."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job import pod_template
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import scripts
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.base import BuilderBase
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.base import merge as _merge
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.configmaps import (
    PROVIDER_SETUP_SCRIPT_FILE,
)


class Jobs(BuilderBase):
    # ------------------------------------------------------------------ Jobs
    def jobs(self) -> dict[str, dict[str, Any]]:
        """The pods of the Jobs: those of the api image start from the api pod, the database tools
        from the PostgreSQL pod; each adds only its command and what it alone needs."""
        s = self.s
        api = self.api_pod()
        tools = self.postgres_pod()
        C = names.JobContainer
        backups_volume = [{"name": "backups", "persistentVolumeClaim": {"claimName": names.BACKUPS_PVC}}]
        backups_mount = [{"name": "backups", "mountPath": "/backups"}]
        jobs = {
            # Exactly the api pod (dify_resources.migration, if set, merged over the api's resources);
            # the runner sets `flask db upgrade`.
            "migration": pod_template(
                api, container_name=C.MIGRATE,
                resources=_merge(self.resources["api"], s.resources["migration"]) if "migration" in s.resources
                else None, pod_annotations=s.migration_pod_annotations,
            ),
            "status_probe": pod_template(
                api, container_name=C.STATUS_PROBE, command=["python", "-c"], args=[scripts.STATUS_PROBE],
                resources=self.resources["tools"], pod_annotations=s.tools_pod_annotations,
            ),
            "backup": pod_template(
                tools, container_name=C.BACKUP, command=["/bin/sh", "-ec"], args=[scripts.BACKUP],
                env={"BACKUP_NAME": self.backup_name, "KEEP": str(s.backup_keep)},
                volumes=backups_volume, volume_mounts=backups_mount, pod_annotations=s.backup_pod_annotations,
            ),
            "restore": pod_template(
                tools, container_name=C.RESTORE, command=["/bin/sh", "-ec"], args=[scripts.RESTORE],
                env={"BACKUP": s.get("restore_backup", "")}, volumes=backups_volume, volume_mounts=backups_mount,
                pod_annotations=s.tools_pod_annotations,
            ),
            # The same, checking the backup's dumps only (before a restore stops anything).
            "restore_check": pod_template(
                tools, container_name=C.RESTORE_CHECK, command=["/bin/sh", "-ec"], args=[scripts.RESTORE],
                env={"BACKUP": s.get("restore_backup", ""), "CHECK_ONLY": "1"}, volumes=backups_volume,
                volume_mounts=backups_mount, pod_annotations=s.tools_pod_annotations,
            ),
            "rotation": pod_template(
                tools, container_name=C.ROTATE_PASSWORD, command=["/bin/sh", "-ec"],
                args=[scripts.ROTATE_DB_PASSWORD], secret_env={"NEW_PASSWORD": (names.ROTATION_SECRET, "NEW_PASSWORD")},
                pod_annotations=s.tools_pod_annotations,
            ),
        }  # fmt: skip
        if self.provider_setup:
            jobs["provider_setup"] = pod_template(
                api,
                container_name=C.PROVIDER_SETUP,
                command=["python", f"/setup/{PROVIDER_SETUP_SCRIPT_FILE}"],
                env={
                    "DIFY_API_URL": "http://dify-api:5001",
                    "DIFY_ADMIN_EMAIL": s.admin_email,
                    "DIFY_ADMIN_NAME": s.admin_name,
                    "DIFY_SETUP_TIMEOUT": str(s.provider_setup_timeout),
                    "PYTHONDONTWRITEBYTECODE": "1",
                },
                secret_env={
                    "OPENAI_API_KEY": (names.PROVIDER_KEYS, "OPENAI_API_KEY"),
                    "DIFY_ADMIN_PASSWORD": (names.PROVIDER_KEYS, "ADMIN_PASSWORD"),
                },
                volumes=[{"name": "script", "configMap": {"name": names.PROVIDER_SETUP_SCRIPT}}],
                volume_mounts=[{"name": "script", "mountPath": "/setup", "readOnly": True}],
                resources=self.resources["tools"],
                pod_annotations=s.provider_setup_pod_annotations,
            )
        return jobs

    def upgrade_step(self, step: dict[str, Any]) -> dict[str, Any]:
        """The pod of a release's one-off upgrade step: the migration's pod (the api's, with the new
        image), running the step's command through scripts.UPGRADE_STEP."""
        return pod_template(
            self.jobs()["migration"],
            container_name=names.JobContainer.UPGRADE_STEP,
            command=["/bin/sh", "-c", scripts.UPGRADE_STEP, names.JobContainer.UPGRADE_STEP, *step["command"]],
            args=[],
            env={"STEP": step["name"], "FAILS_ON": "|".join(step.get("fails_on") or [])},
        )

    def rotation_secret(self) -> dict[str, Any]:
        """Hands the new database password to the rotation Job (never through the Job's spec)."""
        import base64

        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": self.meta(names.ROTATION_SECRET, names.DB_TOOLS),
            "type": "Opaque",
            "data": {"NEW_PASSWORD": base64.b64encode(self.creds.values["DB_PASSWORD"].encode()).decode()},
        }
