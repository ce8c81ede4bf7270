# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What Prometheus scrapes (dify_metrics_enabled): a ServiceMonitor for each workload that serves
metrics (components.base.Metrics) where the cluster serves monitoring.coreos.com/v1, else the
prometheus.io/* annotations on its pods (what annotation-based scrape configs read)."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import Workload
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.base import BuilderBase

MONITORING_API = "monitoring.coreos.com/v1"
SERVICE_MONITOR = {"api_version": MONITORING_API, "kind": "ServiceMonitor"}


class Monitoring(BuilderBase):
    @property
    def service_monitors_served(self) -> bool:
        return self.serves(MONITORING_API)

    def scrape_annotations(self, w: Workload) -> dict[str, str]:
        """The pod annotations of a workload whose metrics are scraped without a ServiceMonitor."""
        if not w.metrics or self.service_monitors_served:
            return {}
        return {"prometheus.io/scrape": "true", "prometheus.io/port": str(w.metrics.port.number),
                "prometheus.io/path": w.metrics.path}  # fmt: skip

    def service_monitors(self, workloads: list[Workload]) -> list[dict[str, Any]]:
        if not self.service_monitors_served:
            return []
        out = []
        for w in workloads:
            if not w.metrics:
                continue
            meta = self.meta(names.workload(w.name), w.name)
            meta["labels"] = dict(meta["labels"], **self.s.metrics_service_monitor_labels)
            out.append({
                "apiVersion": MONITORING_API,
                "kind": "ServiceMonitor",
                "metadata": meta,
                "spec": {
                    "selector": {"matchLabels": names.selector(w.name)},
                    "endpoints": [{"port": w.metrics.port.name, "path": w.metrics.path, "interval": "30s"}],
                },
            })  # fmt: skip
        return out
