"""Every entry point through the file users run, and the promises of one model (issue "One model
of the install"): the recovery migration, manifests that change nothing, settings removed from
the inventory leaving the cluster, the migration Job running exactly the api pod."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path

import yaml
from cluster_fixtures import Cluster

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.migration import DEFAULT_COMMAND

KINDS = "deployments,statefulsets,services,configmaps,secrets,persistentvolumeclaims,networkpolicies,jobs"


def versions(cluster: Cluster, namespace: str) -> dict[str, str]:
    """resourceVersion of every object in the namespace."""
    items = json.loads(cluster.kubectl("get", KINDS, "-n", namespace, "-o", "json").stdout)["items"]
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in items}


def test_migrate_playbook_reruns_the_migration_with_force_and_skips_without(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace}).rc == 0
    record = cluster.get("configmap", "dify-db-migration", namespace)["data"]

    plain = ansible("playbooks/migrate.yml", {"dify_namespace": namespace})
    assert plain.rc == 0, plain.stdout[-3000:]
    assert plain.result("Migrate the database schema")["decision"] == "skip"
    assert plain.changed == 0
    assert cluster.get("configmap", "dify-db-migration", namespace)["data"] == record

    forced = ansible("playbooks/migrate.yml", {"dify_namespace": namespace, "force": True})
    assert forced.rc == 0, forced.stdout[-3000:]
    migration = forced.result("Migrate the database schema")
    assert migration["decision"] == "run" and migration["msg"] == "forced re-run"
    after = cluster.get("configmap", "dify-db-migration", namespace)["data"]
    assert after["image"] == record["image"] and after["job_uid"] != record["job_uid"]
    assert after["job_uid"] == cluster.get("job", "dify-db-migration", namespace)["metadata"]["uid"]


def test_manifests_with_every_rotation_flag_change_nothing_in_the_cluster(cluster, namespace, ansible, tmp_path):
    assert ansible("site.yml", {"dify_namespace": namespace}).rc == 0
    stored = {k: base64.b64decode(v).decode()
              for k, v in cluster.get("secret", "dify-credentials", namespace)["data"].items()}  # fmt: skip
    before = versions(cluster, namespace)
    out = tmp_path / "manifests"
    run = ansible(
        "playbooks/manifests.yml",
        {
            "dify_namespace": namespace,
            "dify_manifests_dir": str(out),
            "dify_db_password": "Another-db-passw0rd",
            "dify_rotate_db_password": True,
            "dify_redis_password": "another-redis-password",
            "dify_rotate_redis_password": True,
            "dify_secret_key": "e" * 64,
            "dify_rotate_secret_key": True,
        },
    )
    assert run.rc == 0, run.stdout[-3000:]
    assert versions(cluster, namespace) == before, "tasks_from: manifests changed the cluster"
    assert cluster.get("job", "dify-db-password-rotation", namespace) is None
    assert cluster.get("secret", "dify-db-password-rotation", namespace) is None
    assert sorted(f.name for f in out.glob("*.yaml")) == [
        "10-config.yaml", "15-credentials.yaml", "20-data.yaml", "40-app.yaml", "50-expose.yaml",
    ]  # fmt: skip
    secret = next(d for d in yaml.safe_load_all((out / "15-credentials.yaml").read_text())
                  if d["metadata"]["name"] == "dify-credentials")  # fmt: skip
    written = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    # Only site.yml changes the database password (ALTER USER first): the files keep the database's.
    assert written["DB_PASSWORD"] == stored["DB_PASSWORD"]
    assert "only site.yml changes the database password" in " ".join(
        run.result("Say what the manifests do not do")["msg"]
    )


def test_settings_removed_from_the_inventory_leave_the_cluster(cluster, namespace, ansible):
    extra = {
        "dify_extra_env": {"DIFY_CE_TEST_SETTING": "1"},
        "dify_service_annotations": {"example.com/removed-later": "yes"},
        "dify_node_selector": {"type": "kwok"},
        "dify_tolerations": [{"key": "example.com/dedicated", "operator": "Exists", "effect": "NoSchedule"}],
        "dify_resources": {"api": {"limits": {"memory": "3Gi"}}},
        "dify_expose": "ingress",
        "dify_ingress_host": "dify.example.com",
    }
    assert ansible("site.yml", {"dify_namespace": namespace, **extra}).rc == 0
    api = cluster.get("deployment", "dify-api", namespace)["spec"]["template"]["spec"]
    assert api["nodeSelector"] == {"type": "kwok"} and api["tolerations"][0]["key"] == "example.com/dedicated"
    assert api["containers"][0]["resources"]["limits"]["memory"] == "3Gi"
    assert cluster.get("ingress", "dify", namespace) is not None

    removed = ansible("site.yml", {"dify_namespace": namespace})
    assert removed.rc == 0, removed.stdout[-3000:]
    env = cluster.get("configmap", "dify-shared-env", namespace)["data"]
    assert "DIFY_CE_TEST_SETTING" not in env
    service = cluster.get("service", "dify-nginx", namespace)
    assert "example.com/removed-later" not in (service["metadata"].get("annotations") or {})
    assert service["spec"]["type"] == "LoadBalancer"
    for name in ("dify-api", "dify-worker", "dify-postgres"):
        kind = "statefulset" if name == "dify-postgres" else "deployment"
        pod = cluster.get(kind, name, namespace)["spec"]["template"]["spec"]
        assert "nodeSelector" not in pod and "tolerations" not in pod, name
    api = cluster.get("deployment", "dify-api", namespace)["spec"]["template"]["spec"]
    assert api["containers"][0]["resources"]["limits"]["memory"] == "2Gi"
    assert cluster.get("ingress", "dify", namespace) is None

    again = ansible("site.yml", {"dify_namespace": namespace})
    changed = [t for t, rs in again.results.items() if any(r.get("changed") for r in rs)]
    assert again.rc == 0 and again.changed == 0, changed


def test_the_migration_job_runs_exactly_the_api_pod(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_pull_secrets": ["regcred"],
                                "dify_node_selector": {"type": "kwok"}}).rc == 0  # fmt: skip
    job = cluster.get("job", "dify-db-migration", namespace)["spec"]["template"]
    api = cluster.get("deployment", "dify-api", namespace)["spec"]["template"]
    job_spec, api_spec = copy.deepcopy(job["spec"]), copy.deepcopy(api["spec"])
    # What only the Job has, and what only a server has.
    assert job_spec.pop("restartPolicy") == "Never" and api_spec.pop("restartPolicy") == "Always"
    assert job_spec["containers"][0].pop("command") == DEFAULT_COMMAND  # flask db upgrade, then current and heads
    # Named after what it does ("api" in the Deployment).
    assert job_spec["containers"][0].pop("name") == "migrate" and api_spec["containers"][0].pop("name") == "api"
    api_spec.pop("topologySpreadConstraints")
    container = api_spec["containers"][0]
    for key in ("ports", "readinessProbe", "livenessProbe", "startupProbe"):
        container.pop(key)
    assert container["env"][0] == {"name": "MODE", "value": "api"}
    container["env"] = container["env"][1:]
    assert job_spec == api_spec
    assert job_spec["enableServiceLinks"] is False and job_spec["imagePullSecrets"] == [{"name": "regcred"}]
    labels = job["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "db-migration" and labels["app.kubernetes.io/part-of"] == "dify"


def test_status_and_uninstall_playbooks_are_the_files_users_run():
    root = Path(__file__).resolve().parents[2]
    for playbook in ("migrate", "status", "restore", "uninstall", "manifests"):
        text = (root / "playbooks" / f"{playbook}.yml").read_text()
        assert "dify_ce.kubernetes.dify" in text, playbook
    assert not (Path(__file__).parent / "playbooks" / "migrate.yml").exists(), "no copy of an entry point"
    assert not (Path(__file__).parent / "playbooks" / "manifests.yml").exists(), "no copy of an entry point"
