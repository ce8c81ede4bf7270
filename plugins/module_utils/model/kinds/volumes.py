# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PersistentVolumeClaims of Deployments (StatefulSets bring their own claim templates). Never
deleted by uninstall unless dify_purge_data is set."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import agent, plugin_daemon, weaviate
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.base import BuilderBase


class Volumes(BuilderBase):
    def volume_claims(self) -> list[dict[str, Any]]:
        s = self.s
        out = []
        if s.files_storage == "pvc":
            out.append(self.claim(names.FILES_PVC, "files", s.files_access_mode, s.files_storage_class,
                                  s.files_storage_size))  # fmt: skip
        plugin = plugin_daemon.volume_claim(self)
        out += [plugin] if plugin else []
        # The backups of the databases and the copies of Weaviate's volume.
        if s.backup_enabled or weaviate.backup_wanted(s):
            out.append(
                self.claim(names.BACKUPS_PVC, "backups", "ReadWriteOnce", s.storage_class, s.backup_storage_size)
            )
        out += agent.volume_claims(self)
        return out

    def claim(self, name: str, component: str, mode: str, storage_class: str, size: str) -> dict[str, Any]:
        spec: dict[str, Any] = {"accessModes": [mode]}
        if storage_class:
            spec["storageClassName"] = storage_class
        spec["resources"] = {"requests": {"storage": size}}
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": self.meta(name, component),
                "spec": spec}  # fmt: skip
