# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PodDisruptionBudgets and HorizontalPodAutoscalers (dify_autoscaling: the components that
declare themselves autoscalable)."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import Workload
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.base import BuilderBase


class Availability(BuilderBase):
    def budgets(self, workloads: list[Workload]) -> list[dict[str, Any]]:
        """A PodDisruptionBudget for every Deployment that runs (or may scale to) more than one pod:
        node drains keep at least half of them."""
        return [
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": self.meta(names.workload(w.name), w.name),
                "spec": {"minAvailable": "50%", "selector": {"matchLabels": names.selector(w.name)}},
            }
            for w in workloads
            if w.replicas > 1 or w.name in self.autoscaled
        ]

    def autoscalers(self, workloads: list[Workload]) -> list[dict[str, Any]]:
        s = self.s
        return [
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": self.meta(names.workload(w.name), w.name),
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": names.workload(w.name)},
                    "minReplicas": max(w.replicas, 1),
                    "maxReplicas": max(s.autoscaling_max_replicas, w.replicas),
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {"type": "Utilization", "averageUtilization": s.autoscaling_cpu_percent},
                            },
                        }
                    ],
                },
            }
            for w in workloads
            if w.name in self.autoscaled
        ]
