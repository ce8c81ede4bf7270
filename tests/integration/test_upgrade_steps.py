"""What an upgrade must do beyond the schema: the release's one-off steps (the catalog's
upgrade_steps, run after the migration and before the rollout, once) and a migration verified at
the image's head (a Job that exits 0 below it fails the play)."""

from __future__ import annotations

from cluster_fixtures import Cluster

STEP_JOB = "dify-upgrade-legacy-model-types"


def api_image(cluster: Cluster, namespace: str) -> str:
    return cluster.get("deployment", "dify-api", namespace)["spec"]["template"]["spec"]["containers"][0]["image"]


def test_an_upgrade_from_1_14_to_1_17_runs_legacy_model_types_once_between_migration_and_rollout(
    cluster, namespace, ansible
):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.14.2"}).rc == 0
    # The step fails (its container only): the play stops, 1.14.2 keeps serving, the step stays pending.
    failing = {"dify-ce.test/exit-code": "4", "dify-ce.test/exit-code-of": "upgrade-step"}
    failed = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.17.1",
                                  "dify_migration_pod_annotations": failing})  # fmt: skip
    assert failed.rc != 0
    assert any("Job dify-upgrade-legacy-model-types failed" in r.get("msg", "") for r in failed.failed_results)
    assert api_image(cluster, namespace) == "langgenius/dify-api:1.14.2"
    assert not failed.ran("Apply the application and wait for the rollout")
    steps = cluster.get("configmap", "dify-upgrade-steps", namespace)["data"]
    assert '"pending"' in steps["legacy-model-types"]

    # Run again: the migration is done (recorded), the step pending runs, then the rollout.
    run = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.17.1"})
    assert run.rc == 0, run.stdout[-3000:]
    assert run.result("Migrate the database schema")["decision"] == "skip"
    job = cluster.get("job", STEP_JOB, namespace)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-4:] == ["flask", "data-migrate", "legacy-model-types", "--apply"]
    assert container["image"] == "langgenius/dify-api:1.17.1"
    new = "langgenius/dify-api:1.17.1"
    sets = cluster.get("replicasets", namespace=namespace)["items"]
    api_sets = [rs for rs in sets if rs["spec"]["template"]["spec"]["containers"][0]["image"] == new]
    assert api_sets and all(cluster.job_finished(job) <= rs["metadata"]["creationTimestamp"] for rs in api_sets)
    assert '"done"' in cluster.get("configmap", "dify-upgrade-steps", namespace)["data"]["legacy-model-types"]

    # Once: a further run does not run it again.
    uid = job["metadata"]["uid"]
    again = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.17.1"})
    assert again.rc == 0 and again.changed == 0, again.stdout[-2000:]
    assert cluster.get("job", STEP_JOB, namespace)["metadata"]["uid"] == uid


def test_an_upgrade_that_crosses_no_step_release_runs_none(cluster, namespace, ansible):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.15.0"}).rc == 0
    run = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.17.1"})
    assert run.rc == 0, run.stdout[-2000:]
    assert cluster.get("job", STEP_JOB, namespace) is None


def test_a_migration_that_exits_0_below_the_head_fails_the_play_naming_both_revisions(
    cluster, namespace, ansible, pod_logs
):
    assert ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.16.1"}).rc == 0
    below = pod_logs('INFO  [alembic.runtime.migration] Running upgrade a -> b, x\n'
                     'DIFY_REPORT {"current": "7a1c2d9e4b60 ", "heads": "6f5a9c2d8e1b (head) "}')  # fmt: skip
    run = ansible("site.yml", {"dify_namespace": namespace, "dify_image_tag": "1.17.1",
                               "dify_migration_pod_annotations": below})  # fmt: skip
    assert run.rc != 0
    message = run.result("Migrate the database schema")["msg"]
    assert "database is at revision 7a1c2d9e4b60 while the image's migrations end at 6f5a9c2d8e1b" in message
    assert api_image(cluster, namespace) == "langgenius/dify-api:1.16.1"
    record = cluster.get("configmap", "dify-db-migration", namespace)["data"]
    assert record["image"] == "langgenius/dify-api:1.16.1", "nothing recorded as migrated"
