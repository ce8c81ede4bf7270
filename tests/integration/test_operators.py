"""What operators run (docs/operators.md) through site.yml against the local control plane, which
serves the Gateway API's standard-channel CRDs (tests/cluster/versions.env): the bundled pgvector
and an HTTPRoute, applied and validated by the real API server, idempotent, and the route removed
with the setting."""

from __future__ import annotations

import base64
import json

from cluster_fixtures import Cluster

GATEWAY = {
    "dify_expose": "gateway",
    "dify_gateway_parent_refs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
    "dify_gateway_hostnames": ["dify.example.com"],
}


def env_of(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, str]:
    """What the workload's container gets: the shared ConfigMap and the Secret (envFrom), its env."""
    container = cluster.get(kind, name, namespace)["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}
    for item in container.get("envFrom") or []:
        if "configMapRef" in item:
            env.update(cluster.get("configmap", item["configMapRef"]["name"], namespace)["data"])
        else:
            data = cluster.get("secret", item["secretRef"]["name"], namespace)["data"]
            env.update({k: base64.b64decode(v).decode() for k, v in data.items()})
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
    return env


def test_pgvector_and_a_gateway_route_install_idempotently_and_the_route_leaves_with_its_setting(
    cluster, namespace, ansible
):
    wanted = {"dify_namespace": namespace, "dify_vector_store": "pgvector", **GATEWAY}
    first = ansible("site.yml", wanted)
    assert first.rc == 0, first.stdout[-4000:]
    again = ansible("site.yml", wanted)
    assert again.rc == 0 and again.changed == 0, [r for r in again.results.items() if any(x.get("changed")
                                                                                          for x in r[1])]  # fmt: skip

    # The route, as the API server stored (and validated) it: both settings, to nginx.
    route = cluster.get("httproute", "dify", namespace)
    assert route["spec"]["parentRefs"][0]["name"] == "public"
    assert route["spec"]["parentRefs"][0]["sectionName"] == "https"
    assert route["spec"]["hostnames"] == ["dify.example.com"]
    assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == "dify-nginx"
    assert cluster.get("service", "dify-nginx", namespace)["spec"]["type"] == "ClusterIP"

    # pgvector of its own beside PostgreSQL, no Weaviate; api and worker are told where.
    statefulsets = {o["metadata"]["name"] for o in cluster.get("statefulsets", namespace=namespace)["items"]}
    assert statefulsets == {"dify-postgres", "dify-redis", "dify-pgvector"}
    for deployment in ("dify-api", "dify-worker"):
        env = env_of(cluster, namespace, "deployment", deployment)
        assert (env["VECTOR_STORE"], env["PGVECTOR_HOST"], env["PGVECTOR_PORT"]) == (
            "pgvector",
            "dify-pgvector",
            "5432",
        )
    server = env_of(cluster, namespace, "statefulset", "dify-pgvector")
    assert env["PGVECTOR_USER"] == server["POSTGRES_USER"] and env["PGVECTOR_DATABASE"] == server["POSTGRES_DB"]
    secret = cluster.get("secret", "dify-credentials", namespace)
    assert secret["metadata"]["annotations"]["dify-ce.kubernetes/vector-store"] == "pgvector"

    # status.yml knows the route: no Gateway accepted it (no controller here) is a problem; once a
    # controller says Accepted (written here as a Gateway controller would), it is the address.
    status = ansible("playbooks/status.yml", {**wanted})
    assert status.rc != 0 and "no Gateway accepted the HTTPRoute dify" in status.result("Everything is healthy")["msg"]
    condition = {
        "type": "Accepted",
        "status": "True",
        "reason": "Accepted",
        "message": "",
        "lastTransitionTime": "2026-12-01T00:00:00Z",
        "observedGeneration": route["metadata"]["generation"],
    }
    accepted = {"status": {"parents": [{"parentRef": {"name": "public", "namespace": "gateways"},
                                        "controllerName": "example.com/gateway-controller",
                                        "conditions": [condition]}]}}  # fmt: skip
    cluster.kubectl("patch", "httproute", "dify", "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps(accepted))  # fmt: skip
    status = ansible("playbooks/status.yml", {**wanted})
    assert status.rc == 0, status.stdout[-3000:]
    report = status.result("Status of Dify in " + namespace)["dify_status"]
    assert report["address"] == "https://dify.example.com" and report["vector_store"] == "pgvector"
    assert "dify-pgvector" in report["workloads"]

    # Without the route's setting the route leaves; the rest stays.
    plain = ansible("site.yml", {"dify_namespace": namespace, "dify_vector_store": "pgvector",
                                 "dify_expose": "clusterip"})  # fmt: skip
    assert plain.rc == 0, plain.stdout[-4000:]
    assert cluster.get("httproute", "dify", namespace) is None
    assert cluster.get("statefulset", "dify-pgvector", namespace)

    # Another vector store on this installation is refused before anything changes.
    switch = ansible("site.yml", {"dify_namespace": namespace, "dify_expose": "clusterip"})
    assert switch.rc != 0 and "dify_vector_store is weaviate, but this installation keeps its vectors in pgvector" in (
        switch.stdout)  # fmt: skip
    assert cluster.get("statefulset", "dify-weaviate", namespace) is None

    # Uninstall removes a route too (a ServiceMonitor kind this cluster does not serve finds nothing).
    assert ansible("site.yml", wanted).rc == 0 and cluster.get("httproute", "dify", namespace)
    assert ansible("playbooks/uninstall.yml", {"dify_namespace": namespace}).rc == 0
    assert cluster.get("httproute", "dify", namespace) is None
    assert cluster.get("pvc", "data-dify-pgvector-0", namespace), "the vectors' volume stays"


def test_the_image_list_is_what_the_manifests_pull(cluster, namespace, ansible, tmp_path):
    """playbooks/images.yml (no cluster read) lists exactly the images of the objects
    playbooks/manifests.yml writes for the same settings (the Jobs run the api and PostgreSQL
    images, which are among them), under dify_image_registry, plus the Weaviate steps of an upgrade."""
    import yaml

    settings = {"dify_namespace": namespace, "dify_image_registry": "registry.example.com/mirror"}
    out = tmp_path / "manifests"
    rendered = ansible("playbooks/manifests.yml", {**settings, "dify_manifests_dir": str(out)})
    assert rendered.rc == 0, rendered.stdout[-3000:]
    pulled = set()
    for path in out.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] in ("Deployment", "StatefulSet"):
                pulled |= {c["image"] for c in doc["spec"]["template"]["spec"]["containers"]}
    listed = tmp_path / "images.txt"
    run = ansible("playbooks/images.yml", {**settings, "dify_images_file": str(listed)})
    assert run.rc == 0, run.stdout[-3000:]
    lines = [line.split() for line in listed.read_text().splitlines()]
    assert {target for _source, target in lines} == pulled
    assert all(target == "registry.example.com/mirror/" + source for source, target in lines)
    upgrade = ansible("playbooks/images.yml", {**settings, "dify_images_file": str(listed),
                                               "dify_images_upgrade_from": "1.16.1"})  # fmt: skip
    assert upgrade.rc == 0
    steps = {target for _s, target in (line.split() for line in listed.read_text().splitlines())} - pulled
    assert steps and all("/semitechnologies/weaviate:1." in image for image in steps)
