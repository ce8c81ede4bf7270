"""Day-2 operations: status, backup before upgrade, restore, credentials that never break a
running install. Jobs that would run psql/pg_dump/python are simulated by the local cluster
(what each prints on success: tests/cluster/simulated-output; other output from the pod_logs
fixture); their specs, order and failure handling are real."""

from __future__ import annotations

import base64
import json

from cluster_fixtures import Cluster


def secret(cluster: Cluster, namespace: str) -> dict[str, str]:
    data = cluster.get("secret", "dify-credentials", namespace)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def job(cluster: Cluster, namespace: str, name: str) -> dict | None:
    return cluster.get("job", name, namespace)


def our_apply_time(cluster: Cluster, namespace: str, kind: str, name: str) -> str:
    """When our field manager last changed the object (server-side apply records it)."""
    out = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", "--show-managed-fields")
    fields = json.loads(out.stdout)["metadata"]["managedFields"]
    return max(m["time"] for m in fields if m["manager"] == "dify_ce.kubernetes")


def test_status_reports_a_healthy_install_and_names_what_breaks(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.4"}).rc == 0

    healthy = ansible("playbooks/status.yml", {"dify_namespace": namespace})
    assert healthy.rc == 0, healthy.stdout[-3000:]
    status = healthy.result("Status of Dify in " + namespace)["dify_status"]
    assert status["problems"] == []
    assert set(status["workloads"]) == {
        "dify-api", "dify-worker", "dify-beat", "dify-web", "dify-sandbox", "dify-plugin-daemon",
        "dify-ssrf-proxy", "dify-nginx", "dify-postgres", "dify-redis", "dify-weaviate",
    }  # fmt: skip
    # What the simulated probe prints (tests/cluster/simulated-output/status-probe.log).
    assert status["probe"]["tables"] == 57 and status["probe"]["alembic_revision"] == "a45f4dfde53b"
    assert status["migration"]["migrated_image"] == "langgenius/dify-api:1.11.4"
    assert status["address"].startswith("http://")
    assert healthy.changed == 0
    probe = job(cluster, namespace, "dify-status-probe")
    assert probe["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "status-probe"

    # check mode: no probe Job
    cluster.kubectl("delete", "job", "dify-status-probe", "-n", namespace, "--wait=true")
    checked = ansible("playbooks/status.yml", {"dify_namespace": namespace}, check=True)
    assert checked.rc == 0 and job(cluster, namespace, "dify-status-probe") is None

    cluster.kubectl("scale", "deployment", "dify-worker", "-n", namespace, "--replicas=0")
    scaled = ansible("playbooks/status.yml", {"dify_namespace": namespace})
    assert scaled.rc != 0
    assert "dify-worker is scaled to 0" in scaled.result("Everything is healthy")["msg"]
    cluster.kubectl("scale", "deployment", "dify-worker", "-n", namespace, "--replicas=1")

    failed = ansible(
        "site.yml",
        {
            "dify_namespace": namespace,
            "dify_image_tag": "1.11.9",
            "dify_migration_pod_annotations": {"dify-ce.test/exit-code": "1"},
        },
    )
    assert failed.rc != 0
    after = ansible("playbooks/status.yml", {"dify_namespace": namespace})
    assert after.rc != 0
    message = after.result("Everything is healthy")["msg"]
    assert "the last migration (Job dify-db-migration, langgenius/dify-api:1.11.9) failed" in message


def test_status_reports_a_probe_that_finds_no_schema(cluster, namespace, ansible, pod_logs):
    assert ansible("site.yml", {"dify_namespace": namespace}).rc == 0
    found = pod_logs(
        'DIFY_REPORT {"tables": 0, "alembic_revision": null, "plugin_daemon": {"error": "Connection refused"}}'
    )
    run = ansible("playbooks/status.yml", {"dify_namespace": namespace, "dify_tools_pod_annotations": found})
    assert run.rc != 0
    message = run.result("Everything is healthy")["msg"]
    assert "no tables in dify" in message
    assert "the api cannot reach the plugin daemon: Connection refused" in message


def test_upgrade_backs_up_before_migrating_and_a_failed_backup_stops_everything(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.4"}).rc == 0
    assert job(cluster, namespace, "dify-db-backup") is None, "a first install has nothing to back up"
    assert cluster.get("pvc", "dify-backups", namespace)["status"]["phase"] == "Bound"

    up = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.5"})
    assert up.rc == 0, up.stdout[-3000:]
    backup, migration = job(cluster, namespace, "dify-db-backup"), job(cluster, namespace, "dify-db-migration")
    assert backup["metadata"]["creationTimestamp"] <= migration["metadata"]["creationTimestamp"]
    assert cluster.job_finished(backup) <= migration["metadata"]["creationTimestamp"]
    container = backup["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["BACKUP_NAME"].startswith("dify_1.11.4_to_1.11.5_")
    assert "pg_dump" in container["args"][0] and "-Fc" in container["args"][0]
    assert {"name": "backups", "mountPath": "/backups"} in container["volumeMounts"]
    # What is recorded is the name the Job was given (never read back from its output).
    assert up.result("Remember the backup")["ansible_facts"]["dify_last_backup"] == env["BACKUP_NAME"]
    assert set(cluster.get("configmap", "dify-backups", namespace)["data"]) == {env["BACKUP_NAME"]}

    migrated_uid = migration["metadata"]["uid"]
    record = cluster.get("configmap", "dify-db-migration", namespace)["data"]
    bad = ansible(
        "site.yml",
        {
            "dify_namespace": namespace,
            "dify_image_tag": "1.11.6",
            "dify_backup_pod_annotations": {"dify-ce.test/exit-code": "1"},
        },
    )
    assert bad.rc != 0
    assert "Job dify-db-backup failed" in bad.result("Dump the databases")["msg"]
    assert not bad.ran("Migrate the database schema")
    assert job(cluster, namespace, "dify-db-migration")["metadata"]["uid"] == migrated_uid
    assert cluster.get("configmap", "dify-db-migration", namespace)["data"] == record
    api = cluster.get("deployment", "dify-api", namespace)
    assert api["spec"]["template"]["spec"]["containers"][0]["image"] == "langgenius/dify-api:1.11.5"


def test_restore_stops_writers_restores_and_runs_the_backups_version(cluster, namespace, ansible):
    # An upgrade makes the backup and records it (ConfigMap dify-backups): from 1.11.4, to 1.11.5.
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.4"}).rc == 0
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.5"}).rc == 0
    ((backup, entry),) = cluster.get("configmap", "dify-backups", namespace)["data"].items()
    recorded = json.loads(entry)
    assert recorded["from"] == "1.11.4" and recorded["to"] == "1.11.5"

    unconfirmed = ansible("playbooks/restore.yml", {"dify_namespace": namespace, "dify_restore_backup": backup})
    assert unconfirmed.rc != 0
    assert "dify_restore_confirm" in " ".join(r.get("msg", "") for r in unconfirmed.failed_results)
    unknown = ansible(
        "playbooks/restore.yml",
        {
            "dify_namespace": namespace,
            "dify_restore_confirm": namespace,
            "dify_restore_backup": "dify_1.11.3_to_1.11.4_20261101T000000Z",
        },
    )
    assert unknown.rc != 0
    assert "is not in the backup record" in " ".join(r.get("msg", "") for r in unknown.failed_results)
    assert job(cluster, namespace, "dify-db-restore") is None

    run = ansible(
        "playbooks/restore.yml",
        {"dify_namespace": namespace, "dify_restore_confirm": namespace, "dify_restore_backup": backup},
    )
    assert run.rc == 0, run.stdout[-3000:]
    restore = job(cluster, namespace, "dify-db-restore")
    assert "pg_restore" in restore["spec"]["template"]["spec"]["containers"][0]["args"][0]
    env = {e["name"]: e.get("value") for e in restore["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["BACKUP"] == backup
    # The writers were stopped (to 0 replicas) before the restore started ...
    stopped = run.result("Stop everything that writes to the database")["results"]
    assert [r["item"] for r in stopped] == ["dify-api", "dify-beat", "dify-plugin-daemon", "dify-worker"]
    assert all(r["result"]["spec"]["replicas"] == 0 for r in stopped)
    # ... and the version of the backup (from its record, not its name) runs afterwards, migrated again.
    api = cluster.get("deployment", "dify-api", namespace)
    assert api["spec"]["template"]["spec"]["containers"][0]["image"] == "langgenius/dify-api:1.11.4"
    assert api["status"]["readyReplicas"] == 1
    assert cluster.get("configmap", "dify-db-migration", namespace)["data"]["image"] == "langgenius/dify-api:1.11.4"


def test_a_changed_database_password_is_refused_or_rotated_in_order(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace}).rc == 0
    before = secret(cluster, namespace)
    secret_obj = cluster.get("secret", "dify-credentials", namespace)

    refused = ansible("site.yml", {"dify_namespace": namespace, "dify_db_password": "NewPassw0rd-for-the-db"})
    assert refused.rc != 0
    message = refused.result("Prepare the model of the installation")["msg"]
    assert "dify_db_password differs" in message and "dify_rotate_db_password" in message
    assert (
        cluster.get("secret", "dify-credentials", namespace)["metadata"]["resourceVersion"]
        == secret_obj["metadata"]["resourceVersion"]
    )
    assert job(cluster, namespace, "dify-db-password-rotation") is None

    rotated = ansible(
        "site.yml",
        {"dify_namespace": namespace, "dify_db_password": "NewPassw0rd-for-the-db", "dify_rotate_db_password": True},
        verbosity=0,
    )
    assert rotated.rc == 0, rotated.stdout[-3000:]
    rotation = job(cluster, namespace, "dify-db-password-rotation")
    spec = rotation["spec"]["template"]["spec"]["containers"][0]
    assert "NewPassw0rd" not in json.dumps(rotation), "the new password must not be in the Job spec"
    refs = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in spec["env"]}
    assert refs["PGPASSWORD"] == {"name": "dify-credentials", "key": "DB_PASSWORD"}  # the old one
    assert refs["NEW_PASSWORD"]["name"] == "dify-db-password-rotation"
    assert cluster.get("secret", "dify-db-password-rotation", namespace) is None, "the hand-over Secret is gone"
    assert cluster.job_finished(rotation) <= our_apply_time(cluster, namespace, "secret", "dify-credentials")
    assert secret(cluster, namespace)["DB_PASSWORD"] == "NewPassw0rd-for-the-db"
    assert secret(cluster, namespace)["SECRET_KEY"] == before["SECRET_KEY"]
    # The pods that use the password restarted after the rotation (a new ReplicaSet).
    for name in ("dify-api", "dify-worker", "dify-beat", "dify-plugin-daemon"):
        sets = [
            rs for rs in cluster.get("replicasets", namespace=namespace)["items"]
            if rs["metadata"]["ownerReferences"][0]["name"] == name and rs["spec"]["replicas"] > 0
        ]  # fmt: skip
        assert sets and all(rs["metadata"]["creationTimestamp"] >= cluster.job_finished(rotation) for rs in sets), name

    # Later runs keep the new password without any flag.
    again = ansible("site.yml", {"dify_namespace": namespace})
    assert again.rc == 0 and again.changed == 0
    assert secret(cluster, namespace)["DB_PASSWORD"] == "NewPassw0rd-for-the-db"


def test_redis_password_and_secret_key_changes_need_their_flag(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace}).rc == 0
    stored = secret(cluster, namespace)
    redis = ansible("site.yml", {"dify_namespace": namespace, "dify_redis_password": "another-redis-password"})
    prepare = "Prepare the model of the installation"
    assert redis.rc != 0 and "dify_rotate_redis_password" in redis.result(prepare)["msg"]
    key = ansible("site.yml", {"dify_namespace": namespace, "dify_secret_key": "f" * 64})
    assert key.rc != 0 and "dify_rotate_secret_key" in key.result(prepare)["msg"]
    assert secret(cluster, namespace) == stored

    rotated = ansible("site.yml", {"dify_namespace": namespace, "dify_redis_password": "another-redis-password",
                                   "dify_rotate_redis_password": True})  # fmt: skip
    assert rotated.rc == 0, rotated.stdout[-3000:]
    now = secret(cluster, namespace)
    assert now["REDIS_PASSWORD"] == "another-redis-password"
    assert "another-redis-password" in now["CELERY_BROKER_URL"]
    assert now["SECRET_KEY"] == stored["SECRET_KEY"]


def test_secret_key_is_identical_across_install_upgrade_uninstall_and_reinstall(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.4"}).rc == 0
    key = secret(cluster, namespace)["SECRET_KEY"]
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.5"}).rc == 0
    assert secret(cluster, namespace)["SECRET_KEY"] == key
    assert ansible("playbooks/uninstall.yml", {"dify_namespace": namespace}).rc == 0
    assert secret(cluster, namespace)["SECRET_KEY"] == key
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.5"}).rc == 0
    assert secret(cluster, namespace)["SECRET_KEY"] == key


def test_no_password_appears_at_maximum_verbosity_during_rotation(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.4"}).rc == 0
    old = secret(cluster, namespace)["DB_PASSWORD"]
    new = "Rotated-pw-" + namespace[-5:] + "-secret"
    run = ansible(
        "site.yml",
        {"dify_namespace": namespace, "dify_db_password": new, "dify_rotate_db_password": True},
        verbosity=3,
        json_output=False,
    )
    assert run.rc == 0, run.stdout[-3000:]
    output = run.stdout + run.stderr
    for value in (old, new, base64.b64encode(new.encode()).decode(), base64.b64encode(old.encode()).decode()):
        assert value not in output


def test_credentials_from_a_secret_the_user_manages_are_read_and_never_written(cluster, namespace, ansible):
    args = {"dify_namespace": namespace, "dify_credentials_secret": "vault-dify"}
    missing = ansible("site.yml", args)
    assert (
        missing.rc != 0
        and "dify_credentials_secret vault-dify: no such Secret"
        in missing.result("Prepare the model of the installation")["msg"]
    )
    assert cluster.get("secret", "dify-credentials", namespace) is None, "nothing was changed"

    key, password = "v" * 64, "Vault-db-password-" + namespace[-5:]
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-dify", "namespace": namespace},
                   "stringData": {"SECRET_KEY": key, "DB_PASSWORD": password}})  # fmt: skip
    before = cluster.get("secret", "vault-dify", namespace)["metadata"]
    first = ansible("site.yml", args)
    assert first.rc == 0, first.stdout[-3000:]
    stored = secret(cluster, namespace)
    assert stored["SECRET_KEY"] == key and stored["DB_PASSWORD"] == password
    again = ansible("site.yml", args)
    assert again.rc == 0 and again.changed == 0, again.stdout[-3000:]
    after = cluster.get("secret", "vault-dify", namespace)["metadata"]
    assert after["resourceVersion"] == before["resourceVersion"], "the user's Secret was written"
    assert all(m["manager"] != "dify_ce.kubernetes" for m in after.get("managedFields") or [])

    # The operator syncs another SECRET_KEY: the guard holds until the rotation is asked for.
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-dify", "namespace": namespace},
                   "stringData": {"SECRET_KEY": "w" * 64, "DB_PASSWORD": password}})  # fmt: skip
    synced = ansible("site.yml", args)
    assert synced.rc != 0 and "dify_rotate_secret_key" in synced.result("Prepare the model of the installation")["msg"]
    assert secret(cluster, namespace)["SECRET_KEY"] == key
