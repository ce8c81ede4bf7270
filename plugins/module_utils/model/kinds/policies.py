# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network isolation: the NetworkPolicies made of the flows the components declare (what they
use, what their ports serve: components.FLOWS). Everything not listed is denied (one default-deny
policy for every Dify pod): a component that declares no use reaches only DNS."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import components
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import observability
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.base import BuilderBase

# Never reachable as "the internet": link-local, where the cloud metadata service answers.
LINK_LOCAL = "169.254.0.0/16"


def _peer(component: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": names.selector(component)}}


def _ports(ports: tuple[int, ...] | list[int]) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


class Policies(BuilderBase):
    def network_policies(self, running: list[str]) -> list[dict[str, Any]]:
        """The default deny, then one policy per component with pods (``running``) allowing exactly
        its flows."""
        s, flows, clients = self.s, components.flows(self.release, running), components.data_clients()
        internet = sorted(set(s.network_policy_internet_egress) | set(components.internet_always())
                          | set(components.direct_internet(running)))  # fmt: skip
        internet_except = [*s.private_cidrs, LINK_LOCAL]
        out = [
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": self.meta(names.DEFAULT_DENY_POLICY, "network-policy"),
                "spec": {
                    "podSelector": {"matchLabels": {names.LABEL_NAME: names.APP}},
                    "policyTypes": ["Ingress", "Egress"],
                },
            }
        ]
        dns_peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
                     for ns in s.network_policy_dns_namespaces]  # fmt: skip
        dns_peers += [{"ipBlock": {"cidr": cidr}} for cidr in s.network_policy_dns_cidrs]
        monitoring_namespaces = s.get("network_policy_monitoring_namespaces") or []

        def monitoring() -> list[dict[str, Any]]:
            return [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
                    for ns in monitoring_namespaces]  # fmt: skip

        for component in running:
            declared = components.named(component)
            ingress = [{"from": [_peer(src) for src in f.sources], "ports": _ports(f.ports)}
                       for f in flows if f.to == component]  # fmt: skip
            # Its replicas call each other (the plugin daemon's cluster) when there are several.
            peers = [p.number for p in declared.ports if p.serves] if (
                declared.peers and self.replicas.get(component, 1) > 1) else []  # fmt: skip
            if peers:
                ingress.append({"from": [_peer(component)], "ports": _ports(peers)})
            # Prometheus, from its namespaces, to the metrics port.
            metrics = declared.metrics_on(self) if declared.pod else None
            if metrics and monitoring_namespaces:
                ingress.append({"from": monitoring(), "ports": _ports([metrics.port.number])})
            if component in components.exposed():
                # Users, through the LoadBalancer or the Ingress controller.
                ports = components.named(component).ports_in(self.release)
                rule: dict[str, Any] = {"ports": _ports([p.number for p in ports])}
                if s.network_policy_ingress_cidrs:
                    rule["from"] = [{"ipBlock": {"cidr": cidr}} for cidr in s.network_policy_ingress_cidrs]
                ingress.append(rule)
            # DNS: the cluster's resolver only (not any server on port 53 - that would be a way out).
            egress = [{"to": dns_peers, "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]
            egress += [{"to": [_peer(f.to)], "ports": _ports(f.ports)}
                       for f in flows if component in f.sources and f.to in running]  # fmt: skip
            if peers:
                egress.append({"to": [_peer(component)], "ports": _ports(peers)})
            # OpenTelemetry exports, to the collector in the monitoring namespaces.
            if observability.otel(s) and monitoring_namespaces and declared.image in observability.TELEMETRY_IMAGES:
                egress.append({"to": monitoring(), "ports": _ports([observability.otlp_port(s)])})
            if component in clients:
                for extra in s.network_policy_extra_egress:
                    rule = {"to": [{"ipBlock": {"cidr": extra["cidr"]}}]}
                    if extra.get("ports"):
                        rule["ports"] = _ports(extra["ports"])
                    egress.append(rule)
            if component in internet:
                # The internet, but neither internal networks nor link-local (cloud metadata).
                egress.append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": internet_except}}]})
            spec: dict[str, Any] = {
                "podSelector": {"matchLabels": names.selector(component)},
                "policyTypes": ["Ingress", "Egress"],
                "egress": egress,
            }
            if ingress:
                spec["ingress"] = ingress
            out.append(
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": self.meta(names.workload(component), "network-policy"),
                    "spec": spec,
                }
            )
        return out
