"""Production hardening: network isolation (checked with np-guard's netpol-analyzer), Pod
Security admission (the apiserver's real PodSecurity plugin) and the HA profile."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from pathlib import Path

import yaml
from cluster_fixtures import Cluster

METADATA = ipaddress.ip_address("169.254.169.254")
INTERNET = ipaddress.ip_address("8.8.8.8")
# Components whose pods meet the restricted Pod Security Standard; the others need baseline.
RESTRICTED = {"api", "worker", "beat", "web", "nginx", "postgres", "redis", "weaviate", "agent-backend",
              "agent-local-sandbox", "api-websocket"}  # fmt: skip
BASELINE_ONLY = {"sandbox", "ssrf-proxy", "plugin-daemon", "agent-ssrf-proxy"}


def render(ansible, namespace: str, out: Path, **extra) -> list[dict]:
    run = ansible("playbooks/manifests.yml", {"dify_namespace": namespace, "dify_manifests_dir": str(out), **extra})
    assert run.rc == 0, run.stdout[-3000:]
    return [doc for f in sorted(out.glob("*.yaml")) for doc in yaml.safe_load_all(f.read_text()) if doc]


def connectivity(cluster: Cluster, manifests: Path) -> list[dict]:
    out = subprocess.run(
        [str(cluster.bin_dir / "k8snetpolicy"), "list", "--dirpath", str(manifests), "-o", "json", "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def workload(name: str, namespace: str) -> str:
    return f"{namespace}/dify-{name}"


def flows(report: list[dict], src: str, namespace: str) -> list[dict]:
    prefix = workload(src, namespace) + "["
    return [c for c in report if c["src"].startswith(prefix)]


def reaches_ip(report: list[dict], src: str, namespace: str, ip) -> list[dict]:
    """Connections from src to an IP range containing ip."""
    hits = []
    for conn in flows(report, src, namespace):
        if "/" in conn["dst"] or "[" in conn["dst"]:
            continue
        low, _dash, high = conn["dst"].partition("-")
        if ipaddress.ip_address(low) <= ip <= ipaddress.ip_address(high or low):
            hits.append(conn)
    return hits


def reaches(report: list[dict], namespace: str, src: str, dst: str, port: int) -> bool:
    """Whether src's pods may open TCP connections to dst's on port."""
    for conn in flows(report, src, namespace):
        if conn["dst"].startswith(workload(dst, namespace) + "["):
            if conn["conn"] == "All Connections":
                return True
            for part in conn["conn"].split(","):
                proto, _space, ports = part.strip().partition(" ")
                if proto == "TCP" and any(
                    p == str(port) or ("-" in p and int(p.split("-")[0]) <= port <= int(p.split("-")[1]))
                    for p in ports.split(",")
                ):
                    return True
    return False


def test_network_policies_isolate_like_compose_networks(cluster, namespace, ansible, tmp_path):
    out = tmp_path / "manifests"
    objects = render(ansible, namespace, out)
    assert any(o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "dify-default-deny" for o in objects)
    report = connectivity(cluster, out)

    def tcp(src: str, dst: str, port: int) -> bool:
        return reaches(report, namespace, src, dst, port)

    # The flows the issue names; each assertion flips if a policy changes the wrong way.
    assert reaches_ip(report, "sandbox", namespace, INTERNET) == [], "sandbox must not reach the internet"
    assert tcp("sandbox", "ssrf-proxy", 3128), "sandbox must reach the SSRF proxy"
    assert not tcp("sandbox", "postgres", 5432) and not tcp("sandbox", "api", 5001)
    assert reaches_ip(report, "ssrf-proxy", namespace, METADATA) == [], "SSRF proxy must not reach cloud metadata"
    assert reaches_ip(report, "ssrf-proxy", namespace, INTERNET), "SSRF proxy must reach the internet"
    assert reaches_ip(report, "ssrf-proxy", namespace, ipaddress.ip_address("10.96.0.1")) == [], "nor the cluster"
    assert tcp("api", "postgres", 5432), "api must reach PostgreSQL"
    assert tcp("worker", "redis", 6379) and tcp("api", "weaviate", 8080) and tcp("api", "plugin-daemon", 5002)
    assert tcp("api", "sandbox", 8194)
    assert not tcp("web", "postgres", 5432), "web must not reach PostgreSQL"
    assert tcp("nginx", "api", 5001) and tcp("nginx", "web", 3000) and tcp("nginx", "plugin-daemon", 5002)
    assert not tcp("nginx", "postgres", 5432)
    assert tcp("plugin-daemon", "api", 5001)
    # The agent (the default release, 1.17): its local sandbox reaches the internet only through its
    # own SSRF proxy, never the cluster or link-local addresses.
    assert reaches_ip(report, "agent-local-sandbox", namespace, INTERNET) == [], "agent sandbox: no direct internet"
    assert reaches_ip(report, "agent-local-sandbox", namespace, METADATA) == []
    assert tcp("agent-local-sandbox", "agent-ssrf-proxy", 3128), "agent sandbox must reach its proxy"
    assert not tcp("agent-local-sandbox", "postgres", 5432) and not tcp("agent-local-sandbox", "api", 5001)
    assert not tcp("agent-local-sandbox", "ssrf-proxy", 3128) and not tcp("agent-local-sandbox", "redis", 6379)
    assert reaches_ip(report, "agent-ssrf-proxy", namespace, INTERNET), "the agent proxy reaches the internet"
    assert reaches_ip(report, "agent-ssrf-proxy", namespace, METADATA) == []
    assert reaches_ip(report, "agent-ssrf-proxy", namespace, ipaddress.ip_address("10.96.0.1")) == []
    assert tcp("agent-ssrf-proxy", "agent-backend", 5050) and tcp("agent-ssrf-proxy", "api", 5001)
    assert tcp("api", "agent-backend", 5050) and tcp("worker", "agent-backend", 5050)
    assert tcp("agent-backend", "agent-local-sandbox", 5004) and tcp("agent-backend", "redis", 6379)
    assert not tcp("agent-backend", "postgres", 5432)
    anyone = [c for c in report if c["src"] == "0.0.0.0-255.255.255.255"]
    assert [c["dst"].split("[")[0] for c in anyone] == [workload("nginx", namespace)], (
        "only nginx is reachable from outside"
    )


def test_the_agents_local_sandbox_of_1_16_0_reaches_what_difys_compose_lets_it(cluster, namespace, ansible, tmp_path):
    """1.16.0 has no agent SSRF proxy: its compose puts the local sandbox on the default network, from
    where it calls the agent stub, the api's /files and the internet. Those, and nothing else."""
    out = tmp_path / "manifests"
    render(ansible, namespace, out, dify_image_tag="1.16.0")
    report = connectivity(cluster, out)
    assert reaches(report, namespace, "agent-local-sandbox", "agent-backend", 5050)
    assert reaches(report, namespace, "agent-local-sandbox", "api", 5001)
    assert reaches_ip(report, "agent-local-sandbox", namespace, INTERNET), "1.16.0: the internet directly"
    assert reaches_ip(report, "agent-local-sandbox", namespace, METADATA) == []
    assert reaches_ip(report, "agent-local-sandbox", namespace, ipaddress.ip_address("10.96.0.1")) == []
    for dst, port in (("postgres", 5432), ("redis", 6379), ("ssrf-proxy", 3128), ("sandbox", 8194)):
        assert not reaches(report, namespace, "agent-local-sandbox", dst, port), dst
    # The SSRF proxy has no sandbox port any more (1.15.0 dropped it).
    assert not reaches(report, namespace, "api", "ssrf-proxy", 8194)
    assert reaches(report, namespace, "api", "sandbox", 8194)


def test_pod_security_baseline_admits_every_pod_and_rejects_a_privileged_one(cluster, namespace, ansible, tmp_path):
    run = ansible("site.yml", {"dify_namespace": namespace})
    assert run.rc == 0, run.stdout[-3000:]
    labels = cluster.get("namespace", namespace)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"
    for kind in ("deployments", "statefulsets"):
        for obj in cluster.get(kind, namespace=namespace)["items"]:
            assert obj["status"].get("readyReplicas") == obj["spec"]["replicas"], obj["metadata"]["name"]
    # Enforcement is on: a privileged container is refused by the apiserver.
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "weakened"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "securityContext": {"privileged": True}}]},
    }
    refused = cluster.kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert refused.returncode != 0 and 'violates PodSecurity "baseline' in refused.stderr


def test_components_documented_as_restricted_meet_restricted(cluster, namespace, ansible, tmp_path):
    """Dry-run each pod template in a namespace that enforces restricted: the table in the
    README ("Security model") is what the apiserver decides."""
    objects = render(ansible, namespace, tmp_path / "manifests")
    strict = namespace[:45] + "-restricted"
    cluster.kubectl("create", "namespace", strict)
    try:
        cluster.kubectl("label", "namespace", strict, "pod-security.kubernetes.io/enforce=restricted")
        verdicts = {}
        for obj in objects:
            if obj["kind"] not in ("Deployment", "StatefulSet"):
                continue
            component = obj["metadata"]["labels"]["app.kubernetes.io/component"]
            spec = dict(obj["spec"]["template"]["spec"])
            if obj["kind"] == "StatefulSet":  # its claim template becomes a volume of the pod
                spec["volumes"] = [*spec.get("volumes", []), {"name": "data", "emptyDir": {}}]
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"probe-{component}"},
                "spec": spec,
            }
            result = cluster.kubectl(
                "create", "--dry-run=server", "-n", strict, "-f", "-", input=yaml.safe_dump(pod), check=False
            )
            verdicts[component] = result.returncode == 0
            assert result.returncode == 0 or "violates PodSecurity" in result.stderr, result.stderr
        assert {c for c, ok in verdicts.items() if ok} == RESTRICTED
        assert {c for c, ok in verdicts.items() if not ok} == BASELINE_ONLY
    finally:
        cluster.kubectl("delete", "namespace", strict, "--wait=false", check=False)


def test_ha_profile_spreads_pods_and_protects_them_with_budgets(cluster, namespace, ansible):
    ha = {"dify_namespace": namespace, "dify_ha": True, "dify_autoscaling": True}
    run = ansible("site.yml", ha)
    assert run.rc == 0, run.stdout[-3000:]
    budgets = {p["metadata"]["name"]: p["spec"] for p in cluster.get("pdb", namespace=namespace)["items"]}
    assert set(budgets) == {f"dify-{c}" for c in ("api", "worker", "web", "sandbox", "nginx", "ssrf-proxy")}
    assert all(spec["minAvailable"] == "50%" for spec in budgets.values())
    assert cluster.get("deployment", "dify-beat", namespace)["spec"]["replicas"] == 1
    for component in ("api", "web"):
        # The autoscaler owns their replica count: the real HPA controller raises it to minReplicas.
        deadline = time.monotonic() + 90
        while True:
            pods = cluster.get("pods", namespace=namespace, label=f"app.kubernetes.io/component={component}")["items"]
            running = [p for p in pods if p["status"].get("phase") == "Running"]
            if len(running) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert len(running) >= 2, f"{component}: {len(running)} running pods"
        assert len({p["spec"]["nodeName"] for p in pods}) >= 2, f"{component} pods share a node"
    autoscalers = {h["metadata"]["name"]: h["spec"] for h in cluster.get("hpa", namespace=namespace)["items"]}
    assert set(autoscalers) == {"dify-api", "dify-worker", "dify-web", "dify-sandbox"}
    assert autoscalers["dify-api"]["minReplicas"] == 2 and autoscalers["dify-api"]["maxReplicas"] == 5
    again = ansible("site.yml", ha)
    assert again.rc == 0 and again.changed == 0, [
        t for t, rs in again.results.items() if any(r.get("changed") for r in rs)
    ]

    # Back to one replica: the budgets and autoscalers go, or they would block node drains.
    single = ansible("site.yml", {"dify_namespace": namespace})
    assert single.rc == 0, single.stdout[-3000:]
    assert cluster.get("pdb", namespace=namespace)["items"] == []
    assert cluster.get("hpa", namespace=namespace)["items"] == []
    assert cluster.get("deployment", "dify-api", namespace)["spec"]["replicas"] == 1
    assert cluster.get("deployment", "dify-worker", namespace)["spec"]["replicas"] == 1
