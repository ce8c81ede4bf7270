"""Every current Dify release through the real playbooks (issue "Every current Dify release"): the
upgrade chain 1.11.4 -> 1.13.3 -> 1.17.1 in one namespace, refusals before any change, the
objects of every catalogued release accepted by the apiserver, the agent's keys kept."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from cluster_fixtures import Cluster

ROOT = Path(__file__).resolve().parents[2]
CATALOG = yaml.safe_load((ROOT / "roles/dify/files/releases.yml").read_text())
SUPPORTED = ["1.11.4", "1.12.1", "1.13.3", "1.14.2", "1.15.0", "1.16.1", "1.17.1"]
KINDS = "deployments,statefulsets,services,configmaps,secrets,persistentvolumeclaims,networkpolicies,jobs"


def images(cluster: Cluster, namespace: str) -> dict[str, str]:
    found = {}
    for kind in ("deployments", "statefulsets"):
        for obj in cluster.get(kind, namespace=namespace)["items"]:
            found[obj["metadata"]["name"]] = obj["spec"]["template"]["spec"]["containers"][0]["image"]
    return found


def _v(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def expected(version: str) -> dict[str, str]:
    line = CATALOG["lines"][".".join(version.split(".")[:2])]
    line_images = dict(line["images"])
    for patch, changed in (line.get("patch_images") or {}).items():  # images a patch changed, from it on
        if _v(version) >= _v(patch):
            line_images.update(changed)
    want = {"dify-api": f"langgenius/dify-api:{version}", "dify-worker": f"langgenius/dify-api:{version}",
            "dify-beat": f"langgenius/dify-api:{version}", "dify-web": f"langgenius/dify-web:{version}",
            "dify-sandbox": line_images["sandbox"], "dify-plugin-daemon": line_images["plugin_daemon"],
            "dify-weaviate": line_images["weaviate"], "dify-postgres": CATALOG["common"]["images"]["postgres"],
            "dify-redis": CATALOG["common"]["images"]["redis"], "dify-nginx": CATALOG["common"]["images"]["nginx"],
            "dify-ssrf-proxy": CATALOG["common"]["images"]["ssrf_proxy"]}  # fmt: skip
    since = (line.get("since") or {}).get("api-websocket", "0")
    if "api-websocket" in line["components"] and _v(version) >= _v(since):
        want["dify-api-websocket"] = f"langgenius/dify-api:{version}"
    if "agent-backend" in line["components"]:
        want["dify-agent-backend"] = line_images["agent_backend"].replace("{version}", version)
        want["dify-agent-local-sandbox"] = line_images["agent_local_sandbox"].replace("{version}", version)
        want["dify-agent-ssrf-proxy"] = CATALOG["common"]["images"]["ssrf_proxy"]
    return want


def versions(cluster: Cluster, namespace: str) -> dict[str, str]:
    items = json.loads(cluster.kubectl("get", KINDS, "-n", namespace, "-o", "json").stdout)["items"]
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in items}


def secret(cluster: Cluster, namespace: str) -> dict[str, str]:
    data = cluster.get("secret", "dify-credentials", namespace)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def backups(cluster: Cluster, namespace: str) -> dict[str, dict]:
    """The backup record: name -> from, to, time, job, the copy of Weaviate taken with it."""
    data = (cluster.get("configmap", "dify-backups", namespace) or {}).get("data") or {}
    return {name: json.loads(entry) for name, entry in data.items()}


def test_the_upgrade_chain_from_1_11_to_1_17_and_the_refusals_after_it(cluster, namespace, ansible):
    previous = None
    for version in ("1.11.4", "1.13.3", "1.17.1"):
        run = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": version})
        assert run.rc == 0, run.stdout[-4000:]
        assert images(cluster, namespace) == expected(version), version
        job = cluster.get("job", "dify-db-migration", namespace)
        assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"langgenius/dify-api:{version}"
        api_sets = [
            rs
            for rs in cluster.get("replicasets", namespace=namespace)["items"]
            if rs["spec"]["template"]["spec"]["containers"][0]["image"] == f"langgenius/dify-api:{version}"
        ]
        done = cluster.job_finished(job)
        assert api_sets and all(done <= rs["metadata"]["creationTimestamp"] for rs in api_sets), "migration first"
        if previous:
            backup = cluster.get("job", "dify-db-backup", namespace)
            env = {e["name"]: e.get("value") for e in backup["spec"]["template"]["spec"]["containers"][0]["env"]}
            assert env["BACKUP_NAME"].startswith(f"dify_{previous}_to_{version}_")
            assert backups(cluster, namespace)[env["BACKUP_NAME"]]["from"] == previous
            assert cluster.job_finished(backup) <= job["metadata"]["creationTimestamp"]
        again = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": version})
        assert again.rc == 0 and again.changed == 0, version
        previous = version

    # 1.17.1: Weaviate went from 1.27 to 1.39 one minor at a time; the agent runs with its keys.
    step_task = "Step Weaviate through " + ", ".join(
        ["1.28.16", "1.29.11", "1.30.23", "1.31.22", "1.32.27", "1.33.18", "1.34.20", "1.35.23", "1.36.23", "1.37.14",
         "1.38.9"])  # fmt: skip
    steps = run.result(step_task)
    assert [r["item"]["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1]
            for r in steps["results"]][:2] == ["1.28.16", "1.29.11"]  # fmt: skip
    # ... after its volume was copied at rest (Weaviate stopped), and the copy is recorded with the
    # database backup of the same upgrade.
    order = [name.split(" : ")[-1] for name in run.results]
    assert order.index("Stop Weaviate for the copy") < order.index("Copy Weaviate's volume to dify-backups")
    assert order.index("Copy Weaviate's volume to dify-backups") < order.index(step_task)
    stopped = run.result("Stop Weaviate for the copy")["objects"]
    assert stopped == [{"kind": "StatefulSet", "name": "dify-weaviate", "namespace": namespace, "action": "configured"}]
    copy_job = cluster.get("job", "dify-weaviate-backup", namespace)["spec"]["template"]["spec"]
    copy_name = {e["name"]: e.get("value") for e in copy_job["containers"][0]["env"]}["NAME"]
    assert copy_name.startswith("weaviate_1.27.0_")
    assert [b["weaviate"] for b in backups(cluster, namespace).values() if b["to"] == "1.17.1"] == [copy_name]
    assert copy_name in " ".join(run.result("Dify is installed")["msg"])
    keys = secret(cluster, namespace)
    assert {"AGENT_BACKEND_API_TOKEN", "AGENT_SANDBOX_AUTH_TOKEN", "AGENT_SERVER_SECRET_KEY"} <= set(keys)
    agent = cluster.get("deployment", "dify-agent-backend", namespace)["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in agent["env"] if "valueFrom" in e}
    assert refs["DIFY_AGENT_API_TOKEN"] == "AGENT_BACKEND_API_TOKEN"
    for name in ("dify-agent-backend", "dify-agent-local-sandbox", "dify-agent-ssrf-proxy"):
        assert cluster.get("networkpolicy", name, namespace) is not None, name

    # Refused before any change: a downgrade below the migrated release, a line nobody catalogued.
    before = versions(cluster, namespace)
    job_uid = cluster.get("job", "dify-db-migration", namespace)["metadata"]["uid"]
    for version, words in (("1.13.3", "dify_image_tag 1.13.3 is older than 1.17.1"),
                           ("1.99.0", "dify_image_tag 1.99.0 is of release line 1.99")):  # fmt: skip
        refused = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": version})
        assert refused.rc != 0
        message = " ".join(r.get("msg", "") for r in refused.failed_results)
        assert words in message, message
        assert versions(cluster, namespace) == before, f"{version} changed the cluster"
        assert cluster.get("job", "dify-db-migration", namespace)["metadata"]["uid"] == job_uid


def test_a_failed_copy_of_weaviate_upgrades_nothing_and_weaviate_runs_as_before(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.16.1"}).rc == 0
    job_uid = cluster.get("job", "dify-db-migration", namespace)["metadata"]["uid"]
    failing = {"dify_namespace": namespace, "dify_image_tag": "1.17.1",
               "dify_backup_pod_annotations": {"dify-ce.test/exit-code": "1"}}  # fmt: skip
    run = ansible("site.yml", failing)
    assert run.rc != 0
    message = " ".join(r.get("msg", "") for r in run.failed_results)
    assert "The copy of Weaviate's volume failed, so nothing was upgraded: Weaviate runs 1.27.0 again" in message
    assert "dify_backup_weaviate" in message
    assert images(cluster, namespace) == expected("1.16.1")
    weaviate = cluster.get("statefulset", "dify-weaviate", namespace)
    assert weaviate["spec"]["replicas"] == 1 and weaviate["status"].get("readyReplicas") == 1
    assert cluster.get("job", "dify-db-migration", namespace)["metadata"]["uid"] == job_uid, "no migration ran"
    assert not any(name.split(" : ")[-1].startswith("Step Weaviate through 1.") for name in run.results)
    # What a user does next: the same upgrade, once the copy can succeed.
    again = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.17.1"})
    assert again.rc == 0, again.stdout[-3000:]
    assert images(cluster, namespace) == expected("1.17.1")


def test_after_an_uninstall_weaviate_still_steps_from_the_version_its_volume_holds(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.16.1"}).rc == 0
    assert ansible("playbooks/uninstall.yml", {"dify_namespace": namespace}).rc == 0
    assert cluster.get("statefulset", "dify-weaviate", namespace) is None
    run = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.17.1"})
    assert run.rc == 0, run.stdout[-3000:]
    assert "holds the data of Weaviate 1.27.0" in " ".join(run.result("Dify is installed")["msg"])
    assert run.ran("Copy Weaviate's volume to dify-backups")
    steps = [name for name in run.results if name.split(" : ")[-1].startswith("Step Weaviate through 1.28.16")]
    assert steps and len(run.results[steps[0]][-1]["results"]) == 11
    assert images(cluster, namespace) == expected("1.17.1")


def test_a_restore_whose_weaviate_cannot_open_the_data_is_refused_before_anything_is_stopped(
    cluster, namespace, ansible
):
    for version in ("1.16.1", "1.17.1"):
        assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": version}).rc == 0
    ((backup, taken),) = backups(cluster, namespace).items()
    assert backup.startswith("dify_1.16.1_to_1.17.1_") and taken["weaviate"].startswith("weaviate_1.27.0_")
    request = {"dify_namespace": namespace, "dify_restore_backup": backup, "dify_restore_confirm": namespace}
    before = versions(cluster, namespace)
    refused = ansible("playbooks/restore.yml", request)
    assert refused.rc != 0
    message = " ".join(r.get("msg", "") for r in refused.failed_results)
    assert "Nothing was changed. Weaviate runs 1.39.2; Dify 1.16.1" in message, message
    assert "dify_restore_image_tag" in message and taken["weaviate"] in message
    assert versions(cluster, namespace) == before
    assert cluster.get("job", "dify-db-restore", namespace) is None
    # What the message suggests: the databases back, and 1.17.1 migrating them again.
    restored = ansible("playbooks/restore.yml", {**request, "dify_restore_image_tag": "1.17.1"})
    assert restored.rc == 0, restored.stdout[-3000:]
    assert images(cluster, namespace) == expected("1.17.1")


@pytest.mark.parametrize("version", SUPPORTED)
def test_the_objects_of_every_catalogued_release_pass_strict_validation(cluster, namespace, ansible, tmp_path, version):
    out = tmp_path / "manifests"
    run = ansible("playbooks/manifests.yml", {"dify_namespace": namespace, "dify_manifests_dir": str(out),
                                              "dify_image_tag": version})  # fmt: skip
    assert run.rc == 0, run.stdout[-3000:]
    for f in sorted(out.glob("*.yaml")):
        result = cluster.kubectl("create", "--dry-run=server", "--validate=strict", "-f", str(f), check=False)
        assert result.returncode == 0 or "already exists" in result.stderr, f"{version} {f.name}: {result.stderr}"
        assert "unknown field" not in result.stderr, result.stderr


def test_uninstall_and_reinstall_of_1_17_keeps_the_data_and_every_key(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace}).rc == 0
    keys = secret(cluster, namespace)
    claims = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.get("pvc", namespace=namespace)["items"]}
    assert {"dify-agent-local-sandbox-home", "dify-agent-local-sandbox-workspace"} <= set(claims)
    assert ansible("playbooks/uninstall.yml", {"dify_namespace": namespace}).rc == 0
    assert cluster.get("deployment", "dify-agent-backend", namespace) is None
    back = ansible("site.yml", {"dify_namespace": namespace})
    assert back.rc == 0, back.stdout[-3000:]
    assert secret(cluster, namespace) == keys
    assert {
        p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.get("pvc", namespace=namespace)["items"]
    } == claims
