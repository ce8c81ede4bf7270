# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Namespace (with dify_cluster_scoped_access), with its Pod Security labels."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.base import BuilderBase


class Namespace(BuilderBase):
    def namespace_object(self) -> dict[str, Any]:
        # Pod Security admission: enforce the documented level, record what "restricted" would refuse.
        labels = dict(
            names.common_labels(),
            **{
                "pod-security.kubernetes.io/enforce": self.s.pod_security_level,
                "pod-security.kubernetes.io/enforce-version": "latest",
                "pod-security.kubernetes.io/audit": "restricted",
                "pod-security.kubernetes.io/audit-version": "latest",
            },
        )
        labels.update(self.s.namespace_labels)
        return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace, "labels": labels}}
