"""dify_migrate through ansible-playbook against the local control plane.

Pod behaviour is chosen with the local cluster's annotations (passed as the module's
pod_annotations); the migration's output is the local cluster's simulation of a first migration
(tests/cluster/simulated-output/migrate.log) unless the pod_logs fixture chooses other output.
"""

from __future__ import annotations

import subprocess
import threading
import time

import pytest
from cluster_fixtures import ROOT, VENV_BIN, Cluster, run_playbook

IMAGE = "langgenius/dify-api:1.11.4"
ALEMBIC = (
    "INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n"
    "INFO  [alembic.runtime.migration] Running upgrade 64b051264f32 -> 2a3aebbbf4bb, add foo\n"
    "INFO  [alembic.runtime.migration] Running upgrade 2a3aebbbf4bb -> 4e99a8df00ff, add bar\n"
)
TASK = "Migrate"


def migrate(ansible, namespace: str, **args):
    options = {"namespace": namespace, "image": IMAGE}
    options.update(args)
    verbosity = options.pop("_verbosity", 0)
    check = options.pop("_check", False)
    return ansible("run_dify_migrate.yml", {"migrate_args": options}, verbosity=verbosity, check=check, diff=check)


def jobs(cluster: Cluster, namespace: str) -> list[dict]:
    return cluster.get("jobs", namespace=namespace)["items"]


def test_success_records_the_image_and_the_applied_revisions(cluster, namespace, ansible, pod_logs):
    run = migrate(ansible, namespace, pod_annotations=pod_logs(ALEMBIC))
    assert run.rc == 0, run.stdout[-3000:]
    result = run.result(TASK)
    assert result["changed"] is True
    assert result["decision"] == "run"
    assert result["exit_code"] == 0
    assert [r["to"] for r in result["applied_revisions"]] == ["2a3aebbbf4bb", "4e99a8df00ff"]
    assert result["pod_name"].startswith("dify-db-migration-")
    (job,) = jobs(cluster, namespace)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][:2] == ["/bin/sh", "-ec"]
    assert "flask db upgrade" in job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    record = cluster.get("configmap", "dify-db-migration", namespace)["data"]
    assert record["image"] == IMAGE
    assert record["job_uid"] == job["metadata"]["uid"]
    logs = cluster.kubectl("logs", "-n", namespace, "job/dify-db-migration").stdout
    assert "Running upgrade 64b051264f32 -> 2a3aebbbf4bb" in logs


def test_second_run_with_the_same_image_creates_no_job(cluster, namespace, ansible):
    assert migrate(ansible, namespace).rc == 0
    first_uid = jobs(cluster, namespace)[0]["metadata"]["uid"]
    run = migrate(ansible, namespace)
    assert run.rc == 0
    result = run.result(TASK)
    assert result["changed"] is False
    assert result["decision"] == "skip"
    assert IMAGE in result["skipped_reason"]
    assert [j["metadata"]["uid"] for j in jobs(cluster, namespace)] == [first_uid]


def test_force_runs_again(cluster, namespace, ansible):
    assert migrate(ansible, namespace).rc == 0
    first_uid = jobs(cluster, namespace)[0]["metadata"]["uid"]
    run = migrate(ansible, namespace, force=True)
    assert run.rc == 0
    assert run.result(TASK)["decision"] == "run"
    (job,) = jobs(cluster, namespace)
    assert job["metadata"]["uid"] != first_uid


def test_non_zero_exit_fails_the_play_with_exit_code_and_logs(cluster, namespace, ansible, pod_logs):
    error = 'sqlalchemy.exc.ProgrammingError: (psycopg2.errors.UndefinedTable) relation "dify_setups" does not exist'
    run = migrate(ansible, namespace, pod_annotations={"dify-ce.test/exit-code": "3", **pod_logs(error)})
    assert run.rc == 2
    result = run.result(TASK)
    assert result["failed"] is True
    assert result["exit_code"] == 3
    assert result["reason"] == "JobFailed"
    assert "container exit code 3" in result["msg"]
    assert 'relation "dify_setups" does not exist' in result["msg"]
    assert cluster.get("configmap", "dify-db-migration", namespace) is None


def test_a_new_image_after_a_failure_replaces_the_failed_job(cluster, namespace, ansible):
    assert migrate(ansible, namespace, pod_annotations={"dify-ce.test/exit-code": "1"}).rc == 2
    failed_uid = jobs(cluster, namespace)[0]["metadata"]["uid"]
    run = migrate(ansible, namespace)
    assert run.rc == 0, run.stdout[-2000:]
    (job,) = jobs(cluster, namespace)
    assert job["metadata"]["uid"] != failed_uid


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("ImagePullBackOff", 'Back-off pulling image "langgenius/dify-api:1.11.4"'),
        ("CreateContainerConfigError", 'secret "dify-credentials" not found'),
    ],
)
def test_containers_that_cannot_start_fail_within_30_seconds(cluster, namespace, ansible, reason, message):
    started = time.monotonic()
    run = migrate(
        ansible,
        namespace,
        env_from_secrets=["dify-credentials"],  # really missing, as the message says
        pod_annotations={"dify-ce.test/waiting-reason": reason, "dify-ce.test/waiting-message": message},
        timeout=300,
    )
    elapsed = time.monotonic() - started
    assert run.rc == 2
    result = run.result(TASK)
    assert result["reason"] == reason
    assert message in result["msg"]
    assert "Job " + namespace + "/dify-db-migration" in result["msg"]
    assert elapsed < 30


def test_unschedulable_fails_with_the_schedulers_reason(cluster, namespace, ansible):
    run = migrate(ansible, namespace, node_selector={"disktype": "unobtainium"}, unschedulable_timeout=3)
    assert run.rc == 2
    result = run.result(TASK)
    assert result["reason"] == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in result["msg"]


def test_timeout_reports_what_it_waited_for_and_keeps_the_job(cluster, namespace, ansible):
    run = migrate(ansible, namespace, timeout=3, pod_annotations={"dify-ce.test/delay-seconds": "60"})
    assert run.rc == 2
    result = run.result(TASK)
    assert result["reason"] == "Timeout"
    assert "timed out after 3s waiting for pod" in result["msg"]
    assert len(jobs(cluster, namespace)) == 1


def test_timeout_can_delete_the_job(cluster, namespace, ansible):
    run = migrate(
        ansible, namespace, timeout=2, delete_on_timeout=True, pod_annotations={"dify-ce.test/delay-seconds": "60"}
    )
    assert run.rc == 2
    assert "deleted the Job" in run.result(TASK)["msg"]
    assert jobs(cluster, namespace) == []


def test_two_concurrent_plays_start_exactly_one_job(cluster, namespace):
    args = {
        "migrate_args": {"namespace": namespace, "image": IMAGE, "pod_annotations": {"dify-ce.test/delay-seconds": "4"}}
    }
    runs: list = [None, None]

    def play(i: int) -> None:
        runs[i] = run_playbook(cluster, "run_dify_migrate.yml", args)

    threads = [threading.Thread(target=play, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.rc == 0 for r in runs), [r.stdout[-1500:] for r in runs]
    actions = sorted(r.result(TASK)["decision"] for r in runs)
    assert actions in (["attach", "run"], ["run", "skip"])
    assert len({r.result(TASK)["record"]["job_uid"] for r in runs}) == 1
    assert len(jobs(cluster, namespace)) == 1


def test_a_play_started_while_a_job_runs_attaches_to_it(cluster, namespace, ansible, pod_logs):
    pod = {"dify-ce.test/delay-seconds": "5", **pod_logs(ALEMBIC)}
    started = migrate(ansible, namespace, wait=False, pod_annotations=pod)
    assert started.rc == 0 and started.result(TASK)["decision"] == "run"
    uid = jobs(cluster, namespace)[0]["metadata"]["uid"]
    run = migrate(ansible, namespace, pod_annotations=pod)
    assert run.rc == 0
    result = run.result(TASK)
    assert result["decision"] == "attach"
    assert result["record"]["job_uid"] == uid
    assert [r["to"] for r in result["applied_revisions"]] == ["2a3aebbbf4bb", "4e99a8df00ff"]


def test_a_job_started_with_another_pod_is_replaced_not_attached_to(cluster, namespace, ansible):
    started = migrate(ansible, namespace, wait=False, pod_annotations={"dify-ce.test/delay-seconds": "30"})
    assert started.rc == 0
    uid = jobs(cluster, namespace)[0]["metadata"]["uid"]
    run = migrate(ansible, namespace)
    assert run.rc == 0, run.stdout[-2000:]
    result = run.result(TASK)
    assert result["decision"] == "run" and "runs another pod than this run wants" in result["msg"]
    (job,) = jobs(cluster, namespace)
    assert job["metadata"]["uid"] != uid and result["record"]["job_uid"] == job["metadata"]["uid"]


def test_a_job_that_cannot_start_is_replaced_once_the_cause_is_fixed(cluster, namespace, ansible):
    stuck = {"dify-ce.test/waiting-reason": "ImagePullBackOff", "dify-ce.test/waiting-message": "no pull secret"}
    failed = migrate(ansible, namespace, pod_annotations=stuck)
    assert failed.rc == 2 and failed.result(TASK)["reason"] == "ImagePullBackOff"
    uid = jobs(cluster, namespace)[0]["metadata"]["uid"]
    # The operator fixes the cause (here: the pod can start now) and runs the same play again.
    fixed = migrate(ansible, namespace)
    assert fixed.rc == 0, fixed.stdout[-2000:]
    result = fixed.result(TASK)
    assert result["decision"] == "run" and "cannot start (ImagePullBackOff: no pull secret)" in result["msg"]
    assert jobs(cluster, namespace)[0]["metadata"]["uid"] != uid


def test_attaching_refuses_a_job_running_for_another_image(cluster, namespace, ansible):
    assert migrate(ansible, namespace, wait=False, pod_annotations={"dify-ce.test/delay-seconds": "30"}).rc == 0
    run = migrate(ansible, namespace, image="langgenius/dify-api:1.11.5")
    assert run.rc == 2
    assert "still running for image " + IMAGE in run.result(TASK)["msg"]


def test_job_deleted_mid_run_fails_clearly(cluster, namespace, ansible):
    def delete_soon():
        for _attempt in range(100):
            if jobs(cluster, namespace):
                time.sleep(1)
                cluster.kubectl("delete", "job", "dify-db-migration", "-n", namespace, "--wait=false")
                return
            time.sleep(0.2)

    deleter = threading.Thread(target=delete_soon)
    deleter.start()
    run = migrate(ansible, namespace, pod_annotations={"dify-ce.test/delay-seconds": "60"}, timeout=120)
    deleter.join()
    assert run.rc == 2
    result = run.result(TASK)
    assert result["reason"] == "JobDeleted"
    assert "deleted while it was running" in result["msg"]


def test_check_mode_creates_nothing_and_says_what_it_would_do(cluster, namespace, ansible):
    run = migrate(ansible, namespace, _check=True)
    assert run.rc == 0
    result = run.result(TASK)
    assert result["decision"] == "run" and result["changed"] is True
    assert "image: " + IMAGE in result["diff"]["after"]
    assert jobs(cluster, namespace) == []
    assert cluster.get("configmap", "dify-db-migration", namespace) is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ({"image": "langgenius/dify-api"}, "image 'langgenius/dify-api' has no tag"),
        ({"image": "langgenius/dify-api:latest"}, "latest"),
        ({"timeout": -5}, "timeout must be a positive number of seconds, got -5"),
        ({"job_name": "Dify_Migration"}, "job_name 'Dify_Migration' must be a DNS label"),
        ({"backoff_limit": -1}, "backoff_limit must not be negative"),
        ({"image_pull_policy": "Sometimes"}, "image_pull_policy"),
    ],
)
def test_bad_input_fails_before_anything_is_created(cluster, namespace, ansible, args, words):
    run = migrate(ansible, namespace, **args)
    assert run.rc == 2
    assert words in run.result(TASK)["msg"]
    assert jobs(cluster, namespace) == []


def test_no_secret_reaches_the_result_or_verbose_output(cluster, namespace, ansible):
    secret_value = "s3cr3t-" + namespace[-5:] + "-do-not-print"
    cluster.kubectl(
        "create", "secret", "generic", "dify-credentials", "-n", namespace, f"--from-literal=SECRET_KEY={secret_value}"
    )
    # Act as AWX does: a ServiceAccount token given through K8S_AUTH_* variables.
    cluster.kubectl("create", "serviceaccount", "deployer", "-n", namespace)
    cluster.kubectl(
        "create",
        "rolebinding",
        "deployer-admin",
        "--clusterrole=admin",
        f"--serviceaccount={namespace}:deployer",
        "-n",
        namespace,
    )
    token = cluster.kubectl("create", "token", "deployer", "-n", namespace, "--duration=10m").stdout.strip()
    server = cluster.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    run = run_playbook(
        cluster,
        "run_dify_migrate.yml",
        {"migrate_args": {"namespace": namespace, "image": IMAGE, "env_from_secrets": ["dify-credentials"]}},
        verbosity=3,
        json_output=False,
        env={
            "K8S_AUTH_KUBECONFIG": "",
            "K8S_AUTH_HOST": server,
            "K8S_AUTH_API_KEY": token,
            "K8S_AUTH_VERIFY_SSL": "no",
        },
    )
    assert run.rc == 0, run.stdout[-3000:]
    assert "changed: [localhost]" in run.stdout
    assert secret_value not in run.stdout + run.stderr
    assert token not in run.stdout + run.stderr


def test_module_documentation_renders():
    out = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "dify_ce.kubernetes.dify_migrate"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PATH": str(VENV_BIN)},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "flask db upgrade" in out.stdout
    assert "kubeconfig" in out.stdout  # auth options from kubernetes.core's doc fragment
