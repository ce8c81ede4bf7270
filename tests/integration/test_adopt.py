"""Adopting a running Dify through playbooks/adopt.yml (issue "Take over a running Dify"): an
original NKP chart-like install and a community chart-like one, each copied into a new namespace;
the source untouched, check mode changing nothing, a second run copying nothing, the unsafe
refused. kwok runs no containers: the copy Jobs' specs, order and outcome handling are real here,
what they print is the local cluster's simulation (tests/cluster/simulated-output; no test sets it
up), their commands run for real in the programs tier."""

from __future__ import annotations

import base64
import json

import pytest
from cluster_fixtures import Cluster, install_adoption_source

# The nkp fixture's PostgreSQL is 16: the new one must be too (a dump does not go back a major).
PG16 = {"dify_postgres_image": "postgres:16-alpine"}
SOURCE_KINDS = "deployments,statefulsets,services,configmaps,secrets,persistentvolumeclaims"


def versions(cluster: Cluster, namespace: str) -> dict[str, str]:
    items = json.loads(cluster.kubectl("get", SOURCE_KINDS, "-n", namespace, "-o", "json").stdout)["items"]
    # What a user wrote, not what controllers report: status and its resourceVersion bumps excluded.
    kept = ("uid", "labels", "annotations", "generation")
    return {
        f"{o['kind']}/{o['metadata']['name']}": json.dumps(
            [[o["metadata"].get(k) for k in kept], o.get("spec"), o.get("data")], sort_keys=True
        )
        for o in items
    }


def secret(cluster: Cluster, namespace: str, name: str = "dify-credentials") -> dict[str, str] | None:
    obj = cluster.get("secret", name, namespace)
    return None if obj is None else {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}


@pytest.fixture
def target(cluster: Cluster, namespace: str):
    name = namespace[:50] + "-new"
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize("chart", ["nkp", "community"])
def test_a_running_dify_is_adopted_into_a_new_namespace(cluster, namespace, target, ansible, chart):
    install_adoption_source(cluster, namespace, chart)
    source_key = next(v["SECRET_KEY"] for v in (secret(cluster, namespace, n) for n in ("dify", "dify-api")) if v)
    before = versions(cluster, namespace)
    args = {"dify_adopt_namespace": namespace, "dify_namespace": target, **(PG16 if chart == "nkp" else {})}

    checked = ansible("playbooks/adopt.yml", args, check=True)
    assert checked.rc == 0, checked.stdout[-4000:]
    assert cluster.get("namespace", target) is None, "check mode created the target"
    assert versions(cluster, namespace) == before

    run = ansible("playbooks/adopt.yml", args)
    assert run.rc == 0, run.stdout[-5000:]
    assert secret(cluster, target)["SECRET_KEY"] == source_key, "SECRET_KEY carried over"
    assert secret(cluster, target)["DB_PASSWORD"] != secret(cluster, namespace, "dify-postgresql").get("password")
    for kind in ("deployments", "statefulsets"):
        for obj in cluster.get(kind, namespace=target)["items"]:
            assert obj["status"].get("readyReplicas") == obj["spec"]["replicas"], obj["metadata"]["name"]
    db = cluster.get("job", "dify-adopt-db", target)
    container = db["spec"]["template"]["spec"]["containers"][0]
    assert "pg_dump" in container["args"][0] and "pg_restore" in container["args"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SOURCE_HOST"].endswith(f".{namespace}.svc")
    assert "password" not in json.dumps(db).lower() or "SOURCE_PASSWORD" in json.dumps(db)
    for what in ("files", "plugins", "weaviate"):
        receiver = cluster.get("job", f"dify-adopt-receive-{what}", target)
        sender = cluster.get("job", f"dify-adopt-send-{what}", namespace)
        assert receiver and sender, what
        assert sender["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["readOnly"] is True
        assert receiver["metadata"]["creationTimestamp"] <= sender["metadata"]["creationTimestamp"]
    record = cluster.get("configmap", "dify-adoption", target)["data"]
    assert record["source"] == namespace and record["copied"] == "database,files,plugins,weaviate"
    assert versions(cluster, namespace) == before, "the source was changed"
    assert run.result("Everything is healthy")["msg"].endswith("is healthy.")
    status = ansible("playbooks/status.yml", {"dify_namespace": target})
    assert status.rc == 0, status.stdout[-3000:]

    again = ansible("playbooks/adopt.yml", args)
    assert again.rc == 0, again.stdout[-3000:]
    assert cluster.get("job", "dify-adopt-db", target)["metadata"]["uid"] == db["metadata"]["uid"]
    assert "nothing is copied again" in json.dumps(again.result("What the adoption found and will do")["msg"])


def test_a_hand_made_dify_is_adopted_and_reported_healthy(cluster, namespace, target, ansible):
    install_adoption_source(cluster, namespace, "handmade")
    run = ansible("playbooks/adopt.yml", {"dify_adopt_namespace": namespace, "dify_namespace": target})
    assert run.rc == 0, run.stdout[-4000:]
    assert secret(cluster, target)["SECRET_KEY"] == "handmade-secret-key"
    status = ansible("playbooks/status.yml", {"dify_namespace": target})
    assert status.rc == 0, status.stdout[-3000:]


def test_unsafe_adoptions_are_refused_before_anything_changes(cluster, namespace, target, ansible):
    install_adoption_source(cluster, namespace, "nkp")
    before = versions(cluster, namespace)
    same = ansible("playbooks/adopt.yml", {"dify_adopt_namespace": namespace, "dify_namespace": namespace})
    assert same.rc != 0 and "is dify_adopt_namespace" in " ".join(r.get("msg", "") for r in same.failed_results)
    nothing = ansible("playbooks/adopt.yml", {"dify_adopt_namespace": target, "dify_namespace": namespace + "-x"})
    assert nothing.rc != 0 and "no Deployment or StatefulSet" in " ".join(
        r.get("msg", "") for r in nothing.failed_results
    )
    older = ansible("playbooks/adopt.yml", {"dify_adopt_namespace": namespace, "dify_namespace": target})
    assert older.rc != 0 and "Set dify_postgres_image to a PostgreSQL 16 image" in " ".join(
        r.get("msg", "") for r in older.failed_results
    )
    assert cluster.get("namespace", target) is None
    # A target that already holds another Dify.
    assert ansible("site.yml", {"dify_namespace": target}).rc == 0
    target_before = versions(cluster, target)
    other = ansible("playbooks/adopt.yml", {"dify_adopt_namespace": namespace, "dify_namespace": target, **PG16})
    assert other.rc != 0 and "already holds another Dify" in " ".join(r.get("msg", "") for r in other.failed_results)
    assert versions(cluster, target) == target_before and versions(cluster, namespace) == before


def test_no_secret_of_the_source_appears_at_maximum_verbosity(cluster, namespace, target, ansible):
    install_adoption_source(cluster, namespace, "nkp")
    values = [v for name in ("dify", "dify-postgresql") for v in (secret(cluster, namespace, name) or {}).values()]
    run = ansible("playbooks/adopt.yml", {"dify_adopt_namespace": namespace, "dify_namespace": target, **PG16},
                  verbosity=3, json_output=False)  # fmt: skip
    assert run.rc == 0, run.stdout[-3000:]
    output = run.stdout + run.stderr
    for value in values:
        if len(value) >= 8:
            assert value not in output, "a secret of the source was printed"
