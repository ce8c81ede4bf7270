"""The dify role through site.yml against the local control plane (issue: install, upgrade,
uninstall safely). Images are simulated: kwok runs no containers, so tags like 1.11.5 exist."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from cluster_fixtures import Cluster

OLD, NEW = "1.11.4", "1.11.5"
DIFY_APP = ["dify-api", "dify-worker", "dify-beat"]
MUST_MATCH = [
    # (component, variable) pairs that Dify needs equal
    (("dify-api", "PLUGIN_DAEMON_KEY"), ("dify-plugin-daemon", "SERVER_KEY")),
    (("dify-api", "INNER_API_KEY_FOR_PLUGIN"), ("dify-plugin-daemon", "DIFY_INNER_API_KEY")),
    (("dify-api", "PLUGIN_DIFY_INNER_API_KEY"), ("dify-plugin-daemon", "DIFY_INNER_API_KEY")),
    (("dify-api", "CODE_EXECUTION_API_KEY"), ("dify-sandbox", "API_KEY")),
    (("dify-api", "DB_PASSWORD"), ("dify-postgres", "POSTGRES_PASSWORD")),
    (("dify-api", "DB_PASSWORD"), ("dify-plugin-daemon", "DB_PASSWORD")),
    (("dify-api", "REDIS_PASSWORD"), ("dify-redis", "REDIS_PASSWORD")),
    (("dify-worker", "WEAVIATE_API_KEY"), ("dify-weaviate", "AUTHENTICATION_APIKEY_ALLOWED_KEYS")),
]


def site(ansible, namespace: str, **extra):
    """site.yml at the release of the original deploy script unless the test names another."""
    return ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": OLD, **extra})


def workload(cluster: Cluster, namespace: str, name: str) -> dict:
    for kind in ("deployment", "statefulset"):
        obj = cluster.get(kind, name, namespace)
        if obj:
            return obj
    raise AssertionError(f"no workload {name}")


def effective_env(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    """The environment the workload's first container really gets (envFrom, then env)."""
    container = workload(cluster, namespace, name)["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, str] = {}

    def source(kind: str, ref: str) -> dict[str, str]:
        obj = cluster.get(kind, ref, namespace)
        data = obj.get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()} if kind == "secret" else data

    for item in container.get("envFrom") or []:
        if "configMapRef" in item:
            env.update(source("configmap", item["configMapRef"]["name"]))
        if "secretRef" in item:
            env.update(source("secret", item["secretRef"]["name"]))
    for item in container.get("env") or []:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = source("secret", ref["name"])[ref["key"]]
    return env


def image_of(cluster: Cluster, namespace: str, name: str) -> str:
    return workload(cluster, namespace, name)["spec"]["template"]["spec"]["containers"][0]["image"]


def ready(obj: dict) -> bool:
    status = obj.get("status") or {}
    want = obj["spec"].get("replicas", 1)
    return status.get("readyReplicas", 0) == want and status.get("observedGeneration") == obj["metadata"]["generation"]


def secret_data(cluster: Cluster, namespace: str) -> dict[str, str]:
    data = cluster.get("secret", "dify-credentials", namespace)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def replica_sets_with_image(cluster: Cluster, namespace: str, image: str) -> list[dict]:
    items = cluster.get("replicasets", namespace=namespace)["items"]
    return [rs for rs in items if rs["spec"]["template"]["spec"]["containers"][0]["image"] == image]


def test_install_rerun_upgrade_and_failed_upgrade(cluster, namespace, ansible):
    # --- fresh install
    run = site(ansible, namespace, dify_migration_pod_annotations={"dify-ce.test/delay-seconds": "2"})
    assert run.rc == 0, run.stdout[-4000:]
    deployments = cluster.get("deployments", namespace=namespace)["items"]
    statefulsets = cluster.get("statefulsets", namespace=namespace)["items"]
    assert sorted(d["metadata"]["name"] for d in deployments) == sorted(
        [
            "dify-api",
            "dify-worker",
            "dify-beat",
            "dify-web",
            "dify-sandbox",
            "dify-plugin-daemon",
            "dify-ssrf-proxy",
            "dify-nginx",
        ]
    )
    assert sorted(s["metadata"]["name"] for s in statefulsets) == ["dify-postgres", "dify-redis", "dify-weaviate"]
    assert all(ready(o) for o in deployments + statefulsets)
    beat = cluster.get("deployment", "dify-beat", namespace)
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"]["type"] == "Recreate"
    job = cluster.get("job", "dify-db-migration", namespace)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"langgenius/dify-api:{OLD}"
    assert any(c["type"] == "Complete" for c in job["status"]["conditions"])
    migration = run.result("Migrate the database schema")
    assert migration["decision"] == "run" and migration["applied_revisions"][0]["to"] == "64b051264f32"
    for name in [*DIFY_APP, "dify-plugin-daemon"]:
        assert effective_env(cluster, namespace, name)["MIGRATION_ENABLED"] == "false", name
    for (a, var_a), (b, var_b) in MUST_MATCH:
        value_a, value_b = effective_env(cluster, namespace, a)[var_a], effective_env(cluster, namespace, b)[var_b]
        assert value_a == value_b and len(value_a) >= 32, f"{a}.{var_a} != {b}.{var_b}"
    assert effective_env(cluster, namespace, "dify-plugin-daemon")["DB_DATABASE"] == "dify_plugin"
    lb = cluster.get("service", "dify-nginx", namespace)
    assert lb["spec"]["type"] == "LoadBalancer" and lb["status"]["loadBalancer"]["ingress"][0]["ip"]
    report = run.result("Dify is installed")["msg"][0]
    assert "http://" + lb["status"]["loadBalancer"]["ingress"][0]["ip"] in report
    job_uid = job["metadata"]["uid"]
    credentials = secret_data(cluster, namespace)

    # --- re-run: nothing changes, no new Job
    again = site(ansible, namespace, dify_migration_pod_annotations={"dify-ce.test/delay-seconds": "2"})
    assert again.rc == 0, again.stdout[-3000:]
    assert again.changed == 0, [t for t, rs in again.results.items() if any(r.get("changed") for r in rs)]
    assert cluster.get("job", "dify-db-migration", namespace)["metadata"]["uid"] == job_uid
    assert secret_data(cluster, namespace) == credentials

    # --- upgrade: the migration Job for the new tag exists before any app pod template changes
    up = site(
        ansible, namespace, dify_image_tag=NEW, dify_migration_pod_annotations={"dify-ce.test/delay-seconds": "2"}
    )
    assert up.rc == 0, up.stdout[-3000:]
    job = cluster.get("job", "dify-db-migration", namespace)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"langgenius/dify-api:{NEW}"
    new_sets = replica_sets_with_image(cluster, namespace, f"langgenius/dify-api:{NEW}")
    assert {rs["metadata"]["ownerReferences"][0]["name"] for rs in new_sets} == set(DIFY_APP)
    for rs in new_sets:  # RFC 3339 UTC strings compare in time order
        assert job["metadata"]["creationTimestamp"] < rs["metadata"]["creationTimestamp"]
        assert cluster.job_finished(job) <= rs["metadata"]["creationTimestamp"]
    for name in DIFY_APP:
        assert image_of(cluster, namespace, name) == f"langgenius/dify-api:{NEW}"
    assert image_of(cluster, namespace, "dify-web") == f"langgenius/dify-web:{NEW}"
    assert secret_data(cluster, namespace) == credentials

    # --- failing migration: the play stops, the app keeps running the version it had
    bad = site(
        ansible, namespace, dify_image_tag="1.11.6", dify_migration_pod_annotations={"dify-ce.test/exit-code": "3"}
    )
    assert bad.rc != 0
    failed = bad.result("Migrate the database schema")
    assert failed["exit_code"] == 3
    assert "container exit code 3" in failed["msg"] and "Running upgrade" in failed["msg"]
    assert not bad.ran("Apply the application and wait for the rollout")
    for name in DIFY_APP:
        assert image_of(cluster, namespace, name) == f"langgenius/dify-api:{NEW}"
    assert image_of(cluster, namespace, "dify-web") == f"langgenius/dify-web:{NEW}"
    assert replica_sets_with_image(cluster, namespace, "langgenius/dify-api:1.11.6") == []


def test_uninstall_keeps_data_and_credentials_for_the_next_install(cluster, namespace, ansible):
    assert site(ansible, namespace).rc == 0
    claims = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.get("pvc", namespace=namespace)["items"]}
    assert {"data-dify-postgres-0", "dify-files", "dify-plugin-daemon"} <= set(claims)
    credentials = secret_data(cluster, namespace)

    gone = ansible("playbooks/uninstall.yml", {"dify_namespace": namespace})
    assert gone.rc == 0, gone.stdout[-3000:]
    assert cluster.get("deployments", namespace=namespace)["items"] == []
    assert cluster.get("statefulsets", namespace=namespace)["items"] == []
    assert cluster.get("services", namespace=namespace)["items"] == []
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.get("pvc", namespace=namespace)["items"]}
    assert after == claims
    assert cluster.get("configmap", "dify-db-migration", namespace) is not None  # the record describes the data

    back = site(ansible, namespace)
    assert back.rc == 0, back.stdout[-3000:]
    assert secret_data(cluster, namespace) == credentials
    assert {
        p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.get("pvc", namespace=namespace)["items"]
    } == claims
    # The record of the data was kept: no migration, the report says why.
    assert back.result("Migrate the database schema")["decision"] == "skip"
    assert "Migration: skip" in back.result("Dify is installed")["msg"][1]

    unconfirmed = ansible("playbooks/uninstall.yml", {"dify_namespace": namespace, "dify_purge_data": True})
    assert unconfirmed.rc != 0 and cluster.get("secret", "dify-credentials", namespace) is not None
    purge = ansible("playbooks/uninstall.yml", {"dify_namespace": namespace, "dify_purge_data": True,
                                                "dify_purge_confirm": namespace})  # fmt: skip
    assert purge.rc == 0, purge.stdout[-3000:]
    assert cluster.get("pvc", namespace=namespace)["items"] == []
    assert cluster.get("secret", "dify-credentials", namespace) is None


def test_every_rendered_object_passes_strict_server_side_validation(cluster, namespace, ansible, tmp_path: Path):
    out = tmp_path / "manifests"
    run = ansible(
        "playbooks/manifests.yml",
        {
            "dify_namespace": namespace,
            "dify_manifests_dir": str(out),
            "dify_expose": "ingress",
            "dify_ingress_host": "dify.example.com",
            "dify_ha": True,
            "dify_autoscaling": True,
        },
    )
    assert run.rc == 0, run.stdout[-3000:]
    files = sorted(out.glob("*.yaml"))
    assert [f.name for f in files] == [
        "10-config.yaml",
        "15-credentials.yaml",
        "20-data.yaml",
        "40-app.yaml",
        "50-expose.yaml",
    ]
    kinds = {doc["kind"] for f in files for doc in yaml.safe_load_all(f.read_text()) if doc}
    assert kinds == {
        "Namespace",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Secret",
        "Service",
        "StatefulSet",
        "Deployment",
        "Ingress",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    assert (out / "15-credentials.yaml").stat().st_mode & 0o077 == 0
    # The namespace first (dry-run objects in a missing namespace are refused), then the rest.
    cluster.kubectl("apply", "--server-side", "-f", str(out / "10-config.yaml"), "--dry-run=server")
    cluster.kubectl("create", "namespace", namespace, check=False)
    for f in files:
        result = cluster.kubectl("create", "--dry-run=server", "--validate=strict", "-f", str(f), check=False)
        assert result.returncode == 0 or "already exists" in result.stderr, f"{f.name}: {result.stderr}"
        assert "unknown field" not in result.stderr and "duplicate field" not in result.stderr, result.stderr


BAD_INPUTS = [
    ({"dify_image_tag": "latest"}, "dify_image_tag"),
    ({"dify_image_tag": "1.11.4 beta"}, "dify_image_tag"),
    ({"dify_api_replicas": -1}, "dify_api_replicas=-1"),
    ({"dify_worker_replicas": "two"}, "dify_worker_replicas"),
    ({"dify_files_access_mode": "ReadWriteOnce", "dify_api_replicas": 2}, "dify_files_access_mode"),
    ({"dify_files_storage": "nfs"}, "dify_files_storage"),
    ({"dify_files_storage": "s3"}, "dify_s3_bucket"),
    ({"dify_postgres_enabled": False}, "dify_db_host"),
    ({"dify_redis_enabled": False}, "dify_redis_host"),
    ({"dify_expose": "ingress"}, "dify_ingress_host"),
    ({"dify_expose": "nodeport"}, "dify_expose"),
    ({"dify_loadbalancer_ip": "300.1.1.1"}, "dify_loadbalancer_ip"),
    ({"dify_storage_class": "no-such-class"}, "dify_storage_class 'no-such-class' is not a StorageClass"),
    ({"dify_public_url": "ftp://dify.example.com"}, "dify_public_url"),
    ({"dify_ssrf_proxy_denied_cidrs": ["not-a-network"]}, "dify_ssrf_proxy_denied_cidrs"),
    ({"dify_resources": {"apii": {"limits": {"cpu": "1"}}}}, "dify_resources has unknown components"),
    ({"dify_postgres_storage_size": "twenty gigs"}, "dify_postgres_storage_size=twenty gigs"),
    ({"dify_namespace_override": "Bad_Name"}, "dify_namespace"),
    ({"dify_pod_security_level": "restricted"}, "dify_pod_security_level"),
    ({"dify_network_policy_internet_egress": ["sandbox"]}, "dify_network_policy_internet_egress"),
    ({"dify_admin_email": "ops.example.com"}, "dify_admin_email"),
    ({"dify_admin_password": "password"}, "dify_admin_password is too weak"),
]


@pytest.mark.parametrize(("extra", "words"), BAD_INPUTS, ids=[case[1].split()[0] for case in BAD_INPUTS])
def test_bad_input_fails_before_anything_changes_naming_the_variable(cluster, namespace, ansible, extra, words):
    extra = dict(extra)
    target = extra.pop("dify_namespace_override", namespace)
    run = ansible("site.yml", {"dify_namespace": target, **extra})
    assert run.rc != 0
    messages = " ".join(str(r.get("msg", "")) for r in run.failed_results)
    assert words in messages, messages
    # Nothing was created: the test namespace is still empty of our objects.
    for kind in ("configmaps", "secrets", "statefulsets", "deployments"):
        items = cluster.get(kind, namespace=namespace, label="app.kubernetes.io/managed-by=dify_ce.kubernetes")["items"]
        assert items == [], kind


def test_no_secret_value_appears_at_maximum_verbosity(cluster, namespace, ansible):
    given = {
        "dify_secret_key": "sk-given-secret-key-" + namespace[-5:] * 4,
        "dify_db_password": "db-given-password-" + namespace[-5:],
        "dify_openai_api_key": "sk-openai-test-" + namespace[-5:] * 3,
        "dify_admin_password": "Admin-given-" + namespace[-5:] + "7",
    }
    # dify_admin_email: the provider setup Job runs too (its password and the key pass through it).
    run = ansible(
        "site.yml",
        {"dify_namespace": namespace, "dify_admin_email": "ops@example.com", **given},
        verbosity=3,
        json_output=False,
    )
    assert run.rc == 0, run.stdout[-3000:]
    stored = secret_data(cluster, namespace)
    provider = cluster.get("secret", "dify-provider-keys", namespace)["data"]
    assert base64.b64decode(provider["OPENAI_API_KEY"]).decode() == given["dify_openai_api_key"]
    assert stored["SECRET_KEY"] == given["dify_secret_key"]
    output = run.stdout + run.stderr
    for value in [*given.values(), *stored.values()]:
        assert value not in output, "a secret value was printed"
        assert base64.b64encode(value.encode()).decode() not in output, "a secret value was printed (base64)"
    assert json.dumps(stored)  # the generated ones were checked above too


def test_openai_key_is_stored_through_the_console_after_the_rollout(cluster, namespace, ansible):
    # The script's output is simulated by the local cluster (tests/cluster/simulated-output); the
    # Job spec, order, record, idempotence and failure handling are real; the script is tested
    # against a fake console API in tests/unit/roles/test_configure_providers.py.
    given = {"dify_openai_api_key": "sk-openai-" + namespace[-5:] * 3, "dify_admin_email": "ops@example.com"}
    run = site(ansible, namespace, **given)
    assert run.rc == 0, run.stdout[-4000:]

    job = cluster.get("job", "dify-provider-setup", namespace)
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == f"langgenius/dify-api:{OLD}"
    assert container["command"] == ["python", "/setup/configure_providers.py"]
    env = {e["name"]: e for e in container["env"]}
    assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "dify-provider-keys", "key": "OPENAI_API_KEY"}
    assert env["DIFY_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "ADMIN_PASSWORD"
    assert env["DIFY_ADMIN_EMAIL"]["value"] == "ops@example.com"
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "provider-setup"
    script = cluster.get("configmap", "dify-provider-setup-script", namespace)["data"]["configure_providers.py"]
    assert script.strip() == (Path(__file__).parents[2] / "roles/dify/files/configure_providers.py").read_text().strip()
    # After the rollout: the api it talks to runs the new pods already.
    api_sets = replica_sets_with_image(cluster, namespace, f"langgenius/dify-api:{OLD}")
    assert api_sets and all(
        rs["metadata"]["creationTimestamp"] <= job["metadata"]["creationTimestamp"] for rs in api_sets
    )
    # Only the api is reachable from the setup pod (NetworkPolicy from the flow model).
    policy = cluster.get("networkpolicy", "dify-provider-setup", namespace)["spec"]
    targets = [rule["to"][0].get("podSelector", {}).get("matchLabels", {}) for rule in policy["egress"][1:]]
    assert [t.get("app.kubernetes.io/component") for t in targets] == ["api"]
    keys = cluster.get("secret", "dify-provider-keys", namespace)["data"]
    admin_password = base64.b64decode(keys["ADMIN_PASSWORD"]).decode()
    assert len(admin_password) >= 8 and any(c.isdigit() for c in admin_password)
    record = cluster.get("configmap", "dify-provider-setup", namespace)["data"]
    assert record["admin_email"] == "ops@example.com" and json.loads(record["result"])["credential"] == "created"
    assert "OpenAI key stored in Dify" in " ".join(run.result("Dify is installed")["msg"])

    # Re-run: nothing changes, the Job does not run again, the generated admin password stays.
    again = site(ansible, namespace, **given)
    assert again.rc == 0 and again.changed == 0, again.stdout[-3000:]
    assert cluster.get("job", "dify-provider-setup", namespace)["metadata"]["uid"] == job["metadata"]["uid"]

    # A new key: the Job runs again. When it fails, the play fails and the record keeps the old state.
    failing = site(
        ansible,
        namespace,
        **{**given, "dify_openai_api_key": "sk-openai-new-" + namespace[-5:] * 3},
        dify_provider_setup_pod_annotations={"dify-ce.test/exit-code": "1"},
    )
    assert failing.rc != 0
    assert "container exit code 1" in failing.result("Store the OpenAI key through Dify's console API")["msg"]
    assert cluster.get("configmap", "dify-provider-setup", namespace)["data"]["fingerprint"] == record["fingerprint"]
    fixed = site(ansible, namespace, **{**given, "dify_openai_api_key": "sk-openai-new-" + namespace[-5:] * 3})
    assert fixed.rc == 0, fixed.stdout[-3000:]
    assert cluster.get("job", "dify-provider-setup", namespace)["metadata"]["uid"] != job["metadata"]["uid"]
    assert cluster.get("configmap", "dify-provider-setup", namespace)["data"]["fingerprint"] != record["fingerprint"]
    keys_after = cluster.get("secret", "dify-provider-keys", namespace)["data"]
    assert base64.b64decode(keys_after["ADMIN_PASSWORD"]).decode() == admin_password


def test_check_mode_before_the_first_install_reports_and_creates_nothing(cluster, namespace, ansible):
    target = namespace + "-new"  # does not exist: the dry run cannot use the server for its objects
    run = ansible(
        "site.yml",
        {"dify_namespace": target, "dify_openai_api_key": "sk-check-1234", "dify_admin_email": "ops@example.com"},
        check=True,
    )
    assert run.rc == 0, run.stdout[-3000:]
    assert run.changed > 0
    assert run.result("Migrate the database schema")["decision"] == "run"
    assert cluster.get("namespace", target) is None
