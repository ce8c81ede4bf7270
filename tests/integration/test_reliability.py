"""Nothing lost, nothing stuck: two runs at once, state deleted by hand, a Job that cannot start,
an autoscaled restore. Each test reproduces a fault that lost data or got stuck before (issue
"Nothing lost, nothing stuck"); the fault tier (tests/faults) interrupts every entry point."""

from __future__ import annotations

import base64
import json
import threading

from cluster_fixtures import Cluster, run_playbook

KEPT = ("SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD")


def secret(cluster: Cluster, namespace: str) -> dict[str, str]:
    obj = cluster.get("secret", "dify-credentials", namespace)
    return {} if obj is None else {k: base64.b64decode(v).decode() for k, v in obj["data"].items()}


def messages(run) -> str:
    return " ".join(r.get("msg", "") for r in run.failed_results)


def resource_versions(cluster: Cluster, namespace: str) -> dict[str, str]:
    kinds = "deployments,statefulsets,services,configmaps,secrets,persistentvolumeclaims,networkpolicies,jobs"
    items = json.loads(cluster.kubectl("get", kinds, "-n", namespace, "-o", "json").stdout)["items"]
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"] for o in items}


def test_two_first_installs_at_once_write_one_set_of_credentials(cluster, namespace, ansible):
    runs: list = [None, None]

    def play(i: int) -> None:
        runs[i] = run_playbook(cluster, "site.yml", {"dify_namespace": namespace})

    threads = [threading.Thread(target=play, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.rc == 0 for r in runs) == [False, True], [r.stdout[-2000:] for r in runs]
    loser = next(r for r in runs if r.rc != 0)
    assert "Another run works on namespace" in messages(loser) and "ansible-playbook pid" in messages(loser)
    assert not loser.ran("Apply the credentials"), "the second run changed something"
    written = secret(cluster, namespace)
    # A third run is green and keeps what the first wrote.
    third = ansible("site.yml", {"dify_namespace": namespace})
    assert third.rc == 0 and third.changed == 0, third.stdout[-2000:]
    assert secret(cluster, namespace) == written
    lease = cluster.get("lease", "dify-lock", namespace)
    assert lease["spec"]["holderIdentity"] == ""


def test_a_second_run_asked_to_wait_goes_on_after_the_first_with_what_it_wrote(cluster, namespace):
    runs: list = [None, None]

    def play(i: int) -> None:
        runs[i] = run_playbook(cluster, "site.yml", {"dify_namespace": namespace, "dify_lock_wait": 300})

    threads = [threading.Thread(target=play, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.rc for r in runs] == [0, 0], [r.stdout[-2000:] for r in runs]
    # The one that waited prepared again under the lock: it found and kept the first run's credentials.
    waited = max(runs, key=lambda r: r.result("Take the namespace (one run at a time)").get("waited", 0))
    assert waited.result("Take the namespace (one run at a time)")["waited"] > 0
    assert waited.ran("Prepare again, under the lock (another run changed the installation meanwhile)")


def test_the_credentials_deleted_by_hand_are_refused_then_taken_back_bundled(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace}).rc == 0
    before = secret(cluster, namespace)
    cluster.kubectl("delete", "secret", "dify-credentials", "-n", namespace)
    versions = resource_versions(cluster, namespace)
    refused = ansible("site.yml", {"dify_namespace": namespace})
    assert refused.rc != 0
    message = messages(refused)
    assert "dify_secret_key" in message and "dify_db_password" in message and "dify_redis_password" in message
    assert resource_versions(cluster, namespace) == versions, "the refused run changed something"
    given = {"dify_secret_key": before["SECRET_KEY"], "dify_db_password": before["DB_PASSWORD"],
             "dify_redis_password": before["REDIS_PASSWORD"]}  # fmt: skip
    back = ansible("site.yml", {"dify_namespace": namespace, **given})
    assert back.rc == 0, back.stdout[-3000:]
    after = secret(cluster, namespace)
    assert {k: after[k] for k in KEPT} == {k: before[k] for k in KEPT}


def test_the_credentials_deleted_by_hand_are_refused_with_an_external_database(cluster, namespace, ansible):
    external = {"dify_namespace": namespace, "dify_postgres_enabled": False, "dify_db_host": "10.20.0.5",
                "dify_db_password": "external-db-password"}  # fmt: skip
    assert ansible("site.yml", external).rc == 0
    before = secret(cluster, namespace)
    cluster.kubectl("delete", "secret", "dify-credentials", "-n", namespace)
    refused = ansible("site.yml", external)
    assert refused.rc != 0 and "dify_secret_key" in messages(refused)
    back = ansible("site.yml", {**external, "dify_secret_key": before["SECRET_KEY"],
                                "dify_redis_password": before["REDIS_PASSWORD"]})  # fmt: skip
    assert back.rc == 0, back.stdout[-3000:]
    assert secret(cluster, namespace)["SECRET_KEY"] == before["SECRET_KEY"]


def test_the_migration_record_deleted_by_hand_still_refuses_a_downgrade(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.5"}).rc == 0
    cluster.kubectl("delete", "configmap", "dify-db-migration", "-n", namespace)
    older = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.4"})
    assert older.rc != 0 and "older than 1.11.5" in messages(older)
    # The same release again: the Job that migrated it is recorded again, nothing runs twice.
    again = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.5"})
    assert again.rc == 0, again.stdout[-3000:]
    assert again.result("Migrate the database schema")["decision"] in ("attach", "run")
    assert cluster.get("configmap", "dify-db-migration", namespace)["data"]["image"] == "langgenius/dify-api:1.11.5"


def test_records_survive_configuration_runs_and_a_plain_uninstall(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace}).rc == 0
    # A record of each kind the collection writes (the adoption's by its name and labels).
    record = {"namespace": namespace, "kind": "adoption", "data": {"source": "old", "state": "copied"}}
    assert run_playbook(cluster, "run_dify_record.yml", {"record_args": record}).rc == 0
    assert cluster.get("configmap", "dify-adoption", namespace) is not None
    assert ansible("site.yml", {"dify_namespace": namespace}).rc == 0
    assert ansible("playbooks/uninstall.yml", {"dify_namespace": namespace}).rc == 0
    for name in ("dify-adoption", "dify-db-migration"):
        assert cluster.get("configmap", name, namespace) is not None, f"{name} was pruned"


def test_a_migration_stuck_on_its_image_is_replaced_once_fixed_and_backed_up_once(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.4"}).rc == 0
    stuck = {"dify-ce.test/waiting-reason": "ImagePullBackOff", "dify-ce.test/waiting-message": "no pull secret"}
    failed = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.5",
                                  "dify_migration_pod_annotations": stuck})  # fmt: skip
    assert failed.rc != 0 and "ImagePullBackOff" in messages(failed)
    # The operator fixes the cause and runs again: the stuck Job is replaced, the backup not taken again.
    fixed = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.5"})
    assert fixed.rc == 0, fixed.stdout[-3000:]
    assert "cannot start (ImagePullBackOff" in fixed.result("Migrate the database schema")["msg"]
    assert not fixed.ran("Dump the databases")
    backups = cluster.get("configmap", "dify-backups", namespace)["data"]
    assert len(backups) == 1 and next(iter(backups)).startswith("dify_1.11.4_to_1.11.5_")


def test_a_restore_with_autoscaling_runs_the_app_again(cluster, namespace, ansible):
    scaled = {"dify_namespace": namespace, "dify_autoscaling": True}
    assert ansible("site.yml", {**scaled, "dify_image_tag": "1.11.4"}).rc == 0
    assert ansible("site.yml", {**scaled, "dify_image_tag": "1.11.5"}).rc == 0
    ((backup, _entry),) = cluster.get("configmap", "dify-backups", namespace)["data"].items()
    run = ansible("playbooks/restore.yml", {**scaled, "dify_restore_backup": backup, "dify_restore_confirm": namespace})
    assert run.rc == 0, run.stdout[-3000:]
    for name in ("dify-api", "dify-worker", "dify-plugin-daemon", "dify-beat"):
        deployment = cluster.get("deployment", name, namespace)
        assert deployment["spec"]["replicas"] >= 1 and deployment["status"].get("readyReplicas", 0) >= 1, name
    assert cluster.get("configmap", "dify-operation", namespace) is None
    # What the restore stopped: everything that writes to the database.
    stopped = [r["item"] for r in run.result("Stop everything that writes to the database")["results"]]
    assert {"dify-api", "dify-worker", "dify-beat", "dify-plugin-daemon"} <= set(stopped)


def test_a_restore_of_a_backup_that_cannot_be_read_stops_nothing(cluster, namespace, ansible, pod_logs):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.4"}).rc == 0
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.11.5"}).rc == 0
    ((backup, _entry),) = cluster.get("configmap", "dify-backups", namespace)["data"].items()
    unreadable = {"dify-ce.test/exit-code": "2", **pod_logs(f"no backup {backup}.dify.dump; available:")}
    request = {"dify_namespace": namespace, "dify_restore_backup": backup, "dify_restore_confirm": namespace}
    run = ansible("playbooks/restore.yml", {**request, "dify_tools_pod_annotations": unreadable})
    assert run.rc != 0 and "no backup" in messages(run)
    assert not run.ran("Stop everything that writes to the database")
    assert cluster.get("deployment", "dify-api", namespace)["spec"]["replicas"] == 1
    assert cluster.get("configmap", "dify-db-migration", namespace) is not None
