# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network isolation: every allowed connection between Dify's pods, and the NetworkPolicies made
of it. Everything not listed is denied (one default-deny policy for every Dify pod)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import Settings


@dataclass(frozen=True)
class Flow:
    to: str
    ports: tuple[int, ...]
    sources: tuple[str, ...]


# Container ports. db-migration: the migration Job (dify_migrate); db-tools: backup, restore and
# password rotation Jobs; status-probe: the status playbook's probe (api image: database and
# plugin daemon checks); provider-setup: the Job that stores the OpenAI key through the console API.
FLOWS = (
    Flow("api", (5001,), ("nginx", "web", "plugin-daemon", names.STATUS_PROBE, names.PROVIDER_SETUP)),
    Flow("web", (3000,), ("nginx",)),
    Flow("plugin-daemon", (5002,), ("nginx", "api", "worker", names.STATUS_PROBE)),
    Flow("sandbox", (8194,), ("api", "worker", "ssrf-proxy")),
    Flow("ssrf-proxy", (3128,), ("api", "worker", "sandbox", "plugin-daemon")),
    Flow("ssrf-proxy", (8194,), ("api", "worker")),
    Flow(
        "postgres",
        (5432,),
        ("api", "worker", "beat", "plugin-daemon", names.MIGRATION, names.DB_TOOLS, names.STATUS_PROBE),
    ),
    Flow("redis", (6379,), ("api", "worker", "beat", "plugin-daemon", names.MIGRATION)),
    Flow("weaviate", (8080, 50051), ("api", "worker")),
    # The websocket process (workflow collaboration): users through nginx; its data like the api's.
    Flow("api-websocket", (5001,), ("nginx",)),
    Flow("postgres", (5432,), ("api-websocket",)),
    Flow("redis", (6379,), ("api-websocket",)),
    # The agent (1.16+): api and worker call the agent backend; it keeps runs in Redis, calls the
    # plugin daemon, the api's inner API and drives its local sandbox. The local sandbox reaches
    # nothing but its own SSRF proxy, which allows the agent stub and the api's /files and the
    # internet (never the cluster's ranges nor link-local addresses).
    Flow("agent-backend", (5050,), ("api", "worker", "agent-ssrf-proxy")),
    Flow("redis", (6379,), ("agent-backend",)),
    Flow("plugin-daemon", (5002,), ("agent-backend",)),
    Flow("api", (5001,), ("agent-backend", "agent-ssrf-proxy")),
    Flow("agent-local-sandbox", (5004,), ("agent-backend",)),
    Flow("agent-ssrf-proxy", (3128,), ("agent-local-sandbox",)),
)
# Components that talk to external data services (dify_network_policy_extra_egress).
DATA_CLIENTS = ("api", "worker", "beat", "plugin-daemon", names.MIGRATION, names.DB_TOOLS, names.STATUS_PROBE)
JOB_COMPONENTS = (names.MIGRATION, names.DB_TOOLS, names.STATUS_PROBE, names.PROVIDER_SETUP)
# Never reachable as "the internet": link-local, where the cloud metadata service answers.
LINK_LOCAL = "169.254.0.0/16"


def _peer(component: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": names.selector(component)}}


def _ports(ports: tuple[int, ...] | list[int]) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def policies(s: Settings, components: list[str], metadata: Any) -> list[dict[str, Any]]:
    """The default deny, then one policy per component with pods allowing exactly its flows.

    ``metadata(name, component)`` gives an object's metadata (names, namespace, labels)."""
    internet = sorted(set(s.network_policy_internet_egress) | {"ssrf-proxy", "agent-ssrf-proxy"})
    internet_except = [*s.private_cidrs, LINK_LOCAL]
    out = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": metadata(names.DEFAULT_DENY_POLICY, "network-policy"),
            "spec": {
                "podSelector": {"matchLabels": {names.LABEL_NAME: names.APP}},
                "policyTypes": ["Ingress", "Egress"],
            },
        }
    ]
    dns_peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
                 for ns in s.network_policy_dns_namespaces]  # fmt: skip
    dns_peers += [{"ipBlock": {"cidr": cidr}} for cidr in s.network_policy_dns_cidrs]
    for component in components:
        ingress = [{"from": [_peer(src) for src in f.sources], "ports": _ports(f.ports)}
                   for f in FLOWS if f.to == component]  # fmt: skip
        if component == "nginx":
            # Users, through the LoadBalancer or the Ingress controller.
            rule: dict[str, Any] = {"ports": _ports([8080])}
            if s.network_policy_ingress_cidrs:
                rule["from"] = [{"ipBlock": {"cidr": cidr}} for cidr in s.network_policy_ingress_cidrs]
            ingress.append(rule)
        # DNS: the cluster's resolver only (not any server on port 53 - that would be a way out).
        egress = [{"to": dns_peers, "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]
        egress += [{"to": [_peer(f.to)], "ports": _ports(f.ports)}
                   for f in FLOWS if component in f.sources and f.to in components]  # fmt: skip
        if component in DATA_CLIENTS:
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
                "metadata": metadata(names.workload(component), "network-policy"),
                "spec": spec,
            }
        )
    return out
