# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Services (the ports each component declares) and what exposes Dify to its users (nginx's
Service and Ingress, components/nginx.py)."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import nginx
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.base import BuilderBase


class Services(BuilderBase):
    def service(self, name: str, ports: list[dict[str, Any]], type_: str = "ClusterIP",
                annotations: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        meta = self.meta(names.workload(name), name)
        if annotations:
            meta["annotations"] = dict(annotations)
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "type": type_,
                "selector": names.selector(name),
                "ports": [dict(p, protocol="TCP") for p in ports],
            },
        }

    def nginx_service(self) -> dict[str, Any]:
        return nginx.service(self)

    def ingress(self) -> dict[str, Any]:
        return nginx.ingress(self)

    def http_route(self) -> dict[str, Any]:
        return nginx.http_route(self)
