"""Unit tests of the migration runner: pure logic over API objects, no cluster."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import migration as m

FIXTURES = Path(__file__).parent / "fixtures"
IMAGE = "langgenius/dify-api:1.11.4"


def fixture(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / name).read_text())


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def spec(**overrides: Any) -> m.JobSpec:
    values: dict[str, Any] = {"namespace": "dify", "image": IMAGE}
    values.update(overrides)
    return m.JobSpec(**values)


# --------------------------------------------------------------------------- parsing


def test_parse_applied_revisions_in_order():
    revisions = m.parse_applied_revisions(text("migration_output.log"))
    assert revisions == [
        {"from": "64b051264f32", "to": "2a3aebbbf4bb", "message": "add tracing app config"},
        {"from": "2a3aebbbf4bb", "to": "4e99a8df00ff", "message": "add load balancing"},
    ]


def test_parse_first_revision_of_empty_database_has_no_from():
    assert m.parse_applied_revisions(text("migration_initial.log")) == [
        {"from": None, "to": "64b051264f32", "message": "init"}
    ]


def test_parse_nothing_applied_when_already_at_head():
    assert m.parse_applied_revisions("INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n") == []


def test_tail_returns_last_lines_only():
    assert m.tail("a\nb\nc\n", 2) == ["b", "c"]
    assert m.tail("a\nb", 0) == []


# --------------------------------------------------------------------------- input


@pytest.mark.parametrize(
    "image",
    [
        "langgenius/dify-api:1.11.4",
        "registry.local:5000/langgenius/dify-api:1.11.4",
        "dify-api@sha256:" + "a" * 64,
        "langgenius/dify-api:latest@sha256:" + "b" * 64,
    ],
)
def test_image_with_tag_or_digest_is_accepted(image):
    assert m.image_problem(image, allow_latest=False) is None


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("langgenius/dify-api", "no tag"),
        ("registry.local:5000/langgenius/dify-api", "no tag"),
        ("langgenius/dify-api:latest", "latest"),
        ("", "image reference"),
        ("dify api:1", "image reference"),
    ],
)
def test_image_problems_are_explained(image, words):
    problem = m.image_problem(image, allow_latest=False)
    assert problem is not None and words in problem


def test_latest_accepted_when_explicitly_allowed():
    assert m.image_problem("langgenius/dify-api:latest", allow_latest=True) is None


# --------------------------------------------------------------------------- the Job


def test_build_job_runs_flask_db_upgrade_with_the_apps_config():
    job = m.build_job(
        spec(
            env={"LOG_LEVEL": "INFO"},
            env_from_config_maps=["dify-shared-env"],
            env_from_secrets=["dify-credentials"],
            image_pull_secrets=["regcred"],
            pod_annotations={"sidecar.istio.io/inject": "false"},
            security_context={"runAsNonRoot": True},
        )
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["flask", "db", "upgrade"]
    assert container["image"] == IMAGE
    assert container["envFrom"] == [
        {"configMapRef": {"name": "dify-shared-env"}},
        {"secretRef": {"name": "dify-credentials"}},
    ]
    assert container["env"] == [{"name": "LOG_LEVEL", "value": "INFO"}]
    assert container["securityContext"] == {"runAsNonRoot": True}
    pod = job["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job["metadata"]["annotations"][m.IMAGE_ANNOTATION] == IMAGE
    assert job["metadata"]["name"] == "dify-db-migration"


def test_build_job_without_ttl_keeps_the_job():
    assert "ttlSecondsAfterFinished" not in m.build_job(spec(ttl_seconds_after_finished=None))["spec"]


def test_pod_labels_cannot_override_the_labels_the_module_relies_on():
    job = m.build_job(spec(pod_labels={"app.kubernetes.io/component": "other", "team": "ai"}))
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == m.COMPONENT
    assert labels["team"] == "ai"


# --------------------------------------------------------------------------- states


def test_job_outcome():
    assert m.job_outcome(fixture("job_running.yaml")) is None
    assert m.job_outcome(fixture("job_complete.yaml")) == "succeeded"
    assert m.job_outcome(fixture("job_failed.yaml")) == "failed"
    assert "BackoffLimitExceeded" in m.job_failure_reason(fixture("job_failed.yaml"))


def test_failure_target_alone_is_already_a_failure():
    job = fixture("job_failed.yaml")
    job["status"]["conditions"] = [c for c in job["status"]["conditions"] if c["type"] == "FailureTarget"]
    assert m.job_outcome(job) == "failed"


@pytest.mark.parametrize(
    ("name", "reason"),
    [("pod_image_pull_backoff.yaml", "ImagePullBackOff"), ("pod_config_error.yaml", "CreateContainerConfigError")],
)
def test_pod_problem_for_containers_that_cannot_start(name, reason):
    problem = m.pod_problem(fixture(name))
    assert problem is not None and problem.reason == reason


@pytest.mark.parametrize("name", ["pod_creating.yaml", "pod_running.yaml", "pod_unschedulable.yaml"])
def test_no_problem_while_a_pod_is_on_its_way(name):
    assert m.pod_problem(fixture(name)) is None


def test_unschedulable_reports_the_schedulers_message():
    assert "didn't match Pod's node affinity/selector" in m.pod_unschedulable(fixture("pod_unschedulable.yaml"))
    assert m.pod_unschedulable(fixture("pod_running.yaml")) is None


def test_exit_codes():
    assert m.pod_exit_code(fixture("pod_failed.yaml")) == 3
    assert m.pod_exit_code(fixture("pod_succeeded.yaml")) == 0
    assert m.pod_exit_code(fixture("pod_running.yaml")) is None
    assert m.pod_exit_code(None) is None


# --------------------------------------------------------------------------- decide

RECORD = {"image": IMAGE, "job": "dify-db-migration", "job_uid": "11111111-aaaa-4bbb-8ccc-000000000001"}


def test_decide_runs_when_nothing_migrated_yet():
    decision = m.decide(spec(), None, None)
    assert decision.action == "run" and decision.replace_uid is None


def test_decide_skips_an_image_that_already_migrated():
    assert m.decide(spec(), RECORD, fixture("job_complete.yaml")).action == "skip"
    assert m.decide(spec(), RECORD, None).action == "skip"  # the Job was cleaned up by its TTL


def test_decide_force_replaces_the_finished_job():
    decision = m.decide(spec(force=True), RECORD, fixture("job_complete.yaml"))
    assert decision.action == "run"
    assert decision.replace_uid == "11111111-aaaa-4bbb-8ccc-000000000001"


def test_decide_new_image_replaces_a_failed_job():
    decision = m.decide(spec(image="langgenius/dify-api:1.11.5"), RECORD, fixture("job_failed.yaml"))
    assert decision.action == "run" and decision.replace_uid
    assert "last migrated: " + IMAGE in decision.reason


def test_decide_attaches_to_a_running_job_for_the_same_image():
    assert m.decide(spec(), None, fixture("job_running.yaml")).action == "attach"


def test_decide_refuses_a_second_migration_while_another_image_migrates():
    with pytest.raises(m.MigrationError, match="still running for image " + IMAGE):
        m.decide(spec(image="langgenius/dify-api:1.11.5"), None, fixture("job_running.yaml"))


def test_decide_adopts_a_succeeded_job_whose_record_was_never_written():
    assert m.decide(spec(), None, fixture("job_complete.yaml")).action == "attach"


# --------------------------------------------------------------------------- runner


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeStream:
    """Scripted events; an empty script means a silent cluster (time passes)."""

    def __init__(self, clock: FakeClock, events: list) -> None:
        self.clock = clock
        self.events = list(events)
        self.closed = False

    def get(self, timeout: float):
        if self.events:
            item = self.events.pop(0)
            if isinstance(item, (int, float)):  # a pause in the script
                self.clock.now += item
                return None
            return item
        self.clock.now += timeout
        return None

    def close(self) -> None:
        self.closed = True


class FakeApi:
    def __init__(self, clock: FakeClock, job=None, record=None, script=None, logs="", pods=None):
        self.clock = clock
        self.job = job
        self.record = record
        self.script = script or []
        self.logs = logs
        self.pods = pods or []
        self.created: list[dict] = []
        self.deleted: list[tuple] = []
        self.records_written: list[dict] = []
        self.streams: list[FakeStream] = []
        self.create_conflicts = 0

    def read_job(self, namespace, name):
        return copy.deepcopy(self.job)

    def create_job(self, namespace, body):
        if self.create_conflicts:
            self.create_conflicts -= 1
            self.job = fixture("job_running.yaml")
            raise m.AlreadyExists(body["metadata"]["name"])
        self.created.append(body)
        job = copy.deepcopy(body)
        job["metadata"]["uid"] = "22222222-aaaa-4bbb-8ccc-000000000002"
        job["spec"]["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": job["metadata"]["uid"]}}
        self.job = job
        return copy.deepcopy(job)

    def delete_job(self, namespace, name, uid):
        self.deleted.append((name, uid))
        self.job = None

    def wait_job_gone(self, namespace, name, uid, timeout):
        return True

    def read_record(self, namespace, name):
        return copy.deepcopy(self.record)

    def write_record(self, namespace, name, data, labels):
        self.records_written.append(data)
        self.record = data

    def follow(self, namespace, job):
        stream = FakeStream(self.clock, self.script)
        self.streams.append(stream)
        return stream

    def list_pods(self, namespace, job):
        return copy.deepcopy(self.pods)

    def read_log(self, namespace, pod, container):
        return self.logs


def job_event(name: str, uid: str = "22222222-aaaa-4bbb-8ccc-000000000002", event: str = "MODIFIED"):
    job = fixture(name)
    job["metadata"]["uid"] = uid
    return ("job", event, job)


def pod_event(name: str, event: str = "MODIFIED"):
    return ("pod", event, fixture(name))


def runner(api: FakeApi, clock: FakeClock, **overrides: Any) -> m.JobRunner:
    return m.JobRunner(api, spec(**overrides), clock=clock, monotonic=clock)


def test_successful_run_records_image_and_revisions():
    clock = FakeClock()
    api = FakeApi(
        clock,
        script=[pod_event("pod_running.yaml"), pod_event("pod_succeeded.yaml"), job_event("job_complete.yaml")],
        logs=text("migration_output.log"),
    )
    result = runner(api, clock).run()
    assert result["decision"] == "run"
    assert result["changed"] is True
    assert result["exit_code"] == 0
    assert result["pod_name"] == "dify-db-migration-x7k2p"
    assert [r["to"] for r in result["applied_revisions"]] == ["2a3aebbbf4bb", "4e99a8df00ff"]
    assert len(api.created) == 1
    written = api.records_written[-1]
    assert written["image"] == IMAGE
    assert written["completed_at"] == "2026-11-25T10:00:12Z"
    assert json.loads(written["applied_revisions"])[0]["from"] == "64b051264f32"
    assert api.streams[0].closed


def test_second_run_with_same_image_creates_no_job():
    clock = FakeClock()
    api = FakeApi(clock, record=dict(RECORD, completed_at="2026-11-25T10:00:12Z"), job=fixture("job_complete.yaml"))
    result = runner(api, clock).run()
    assert result["changed"] is False
    assert result["decision"] == "skip"
    assert "already migrated" in result["skipped_reason"]
    assert api.created == [] and api.deleted == []


def test_failed_job_raises_with_exit_code_and_logs():
    clock = FakeClock()
    api = FakeApi(
        clock,
        script=[pod_event("pod_running.yaml"), pod_event("pod_failed.yaml"), job_event("job_failed.yaml")],
        logs='sqlalchemy.exc.ProgrammingError: relation "dify_setups" does not exist\n',
    )
    with pytest.raises(m.MigrationError) as err:
        runner(api, clock).run()
    assert err.value.details["exit_code"] == 3
    assert err.value.details["reason"] == "JobFailed"
    assert "dify_setups" in str(err.value)
    assert "container exit code 3" in str(err.value)
    assert "dify-db-migration-x7k2p" in str(err.value)
    assert api.records_written == []


def test_failed_job_event_before_pod_event_still_reports_exit_code():
    clock = FakeClock()
    api = FakeApi(clock, script=[job_event("job_failed.yaml")], pods=[fixture("pod_failed.yaml")])
    with pytest.raises(m.MigrationError) as err:
        runner(api, clock).run()
    assert err.value.details["exit_code"] == 3


@pytest.mark.parametrize(
    ("pod", "reason", "words"),
    [
        ("pod_image_pull_backoff.yaml", "ImagePullBackOff", "Back-off pulling image"),
        ("pod_config_error.yaml", "CreateContainerConfigError", 'secret "dify-credentials" not found'),
    ],
)
def test_containers_that_cannot_start_fail_without_waiting_for_the_timeout(pod, reason, words):
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event(pod)])
    with pytest.raises(m.MigrationError) as err:
        runner(api, clock, timeout=600).run()
    assert err.value.details["reason"] == reason
    assert words in str(err.value)
    assert clock.now - 1000.0 < 1


def test_unschedulable_pod_fails_after_its_grace_period_with_the_schedulers_reason():
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event("pod_unschedulable.yaml")])
    with pytest.raises(m.MigrationError) as err:
        runner(api, clock, unschedulable_timeout=30, timeout=600).run()
    assert err.value.details["reason"] == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in str(err.value)
    assert 30 <= clock.now - 1000.0 < 31


def test_pod_that_gets_scheduled_in_time_is_fine():
    clock = FakeClock()
    api = FakeApi(
        clock,
        script=[
            pod_event("pod_unschedulable.yaml"),
            10,
            pod_event("pod_running.yaml"),
            40,
            pod_event("pod_succeeded.yaml"),
            job_event("job_complete.yaml"),
        ],
    )
    assert runner(api, clock, unschedulable_timeout=30).run()["exit_code"] == 0


def test_timeout_names_what_it_waited_for_and_leaves_the_job():
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event("pod_running.yaml")])
    with pytest.raises(m.MigrationError) as err:
        runner(api, clock, timeout=20).run()
    assert err.value.details["reason"] == "Timeout"
    assert "timed out after 20s waiting for pod dify-db-migration-x7k2p to finish (phase Running)" in str(err.value)
    assert "left in place" in str(err.value)
    assert api.deleted == []


def test_timeout_can_delete_the_job():
    clock = FakeClock()
    api = FakeApi(clock, script=[])
    with pytest.raises(m.MigrationError, match="waiting for a pod to be created"):
        runner(api, clock, timeout=5, delete_on_timeout=True).run()
    assert api.deleted == [("dify-db-migration", "22222222-aaaa-4bbb-8ccc-000000000002")]


def test_job_deleted_while_running_fails_clearly():
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event("pod_running.yaml"), job_event("job_running.yaml", event="DELETED")])
    with pytest.raises(m.MigrationError, match="deleted while it was running") as err:
        runner(api, clock).run()
    assert err.value.details["reason"] == "JobDeleted"


def test_attaches_to_a_running_job_instead_of_starting_another():
    clock = FakeClock()
    running = fixture("job_running.yaml")
    api = FakeApi(
        clock,
        job=running,
        script=[job_event("job_complete.yaml", uid=running["metadata"]["uid"])],
        pods=[fixture("pod_succeeded.yaml")],
    )
    result = runner(api, clock).run()
    assert result["decision"] == "attach"
    assert api.created == []
    assert api.records_written[-1]["job_uid"] == running["metadata"]["uid"]


def test_losing_the_create_race_attaches_to_the_winner():
    clock = FakeClock()
    api = FakeApi(
        clock,
        script=[job_event("job_complete.yaml", uid="11111111-aaaa-4bbb-8ccc-000000000001")],
        pods=[fixture("pod_succeeded.yaml")],
    )
    api.create_conflicts = 1
    result = runner(api, clock).run()
    assert result["decision"] == "attach"
    assert api.created == []


def test_force_deletes_exactly_the_finished_job_it_looked_at():
    clock = FakeClock()
    api = FakeApi(
        clock,
        record=RECORD,
        job=fixture("job_complete.yaml"),
        script=[pod_event("pod_succeeded.yaml"), job_event("job_complete.yaml")],
    )
    result = runner(api, clock, force=True).run()
    assert api.deleted == [("dify-db-migration", "11111111-aaaa-4bbb-8ccc-000000000001")]
    assert len(api.created) == 1
    assert result["changed"] is True  # a new Job ran, so the record changed


def test_check_mode_reports_and_creates_nothing():
    clock = FakeClock()
    api = FakeApi(clock, record=RECORD, job=fixture("job_complete.yaml"))
    result = runner(api, clock, image="langgenius/dify-api:1.11.5").check()
    assert result["decision"] == "run" and result["changed"] is True
    assert "image: langgenius/dify-api:1.11.5" in result["diff"]["after"]
    assert "image: " + IMAGE in result["diff"]["before"]
    assert api.created == [] and api.deleted == [] and api.records_written == []


def test_check_mode_skip_is_unchanged():
    clock = FakeClock()
    api = FakeApi(clock, record=RECORD)
    result = runner(api, clock).check()
    assert result["decision"] == "skip" and result["changed"] is False
    assert result["diff"]["before"] == result["diff"]["after"]


def test_no_wait_returns_once_the_job_exists():
    clock = FakeClock()
    api = FakeApi(clock)
    result = runner(api, clock, wait=False).run()
    assert result["changed"] is True and len(api.created) == 1 and api.records_written == []


def test_log_read_failure_does_not_hide_the_real_failure():
    clock = FakeClock()

    class NoLogs(FakeApi):
        def read_log(self, namespace, pod, container):
            raise RuntimeError("kubelet unreachable")

    api = NoLogs(clock, script=[pod_event("pod_failed.yaml"), job_event("job_failed.yaml")])
    with pytest.raises(m.MigrationError) as err:
        runner(api, clock).run()
    assert err.value.details["exit_code"] == 3
    assert "logs unavailable: kubelet unreachable" in str(err.value)


# --------------------------------------------------------------------------- Jobs without a record


def test_a_job_without_record_runs_every_time_and_writes_nothing():
    clock = FakeClock()
    api = FakeApi(
        clock,
        record=RECORD,  # ignored: dify_job keeps no record
        job=fixture("job_complete.yaml"),
        script=[pod_event("pod_succeeded.yaml"), job_event("job_complete.yaml")],
        logs="57\n4e99a8df00ff\n",
    )
    result = runner(api, clock, record=False, component="db-tools", container_name="job").run()
    assert result["decision"] == "run" and result["changed"] is True
    assert result["logs"] == ["57", "4e99a8df00ff"]
    assert api.records_written == []
    assert api.deleted == [("dify-db-migration", "11111111-aaaa-4bbb-8ccc-000000000001")]
    labels = api.created[0]["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "db-tools"
    assert api.created[0]["spec"]["template"]["spec"]["containers"][0]["name"] == "job"


def test_a_failing_job_without_record_names_the_job_not_a_migration():
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event("pod_failed.yaml"), job_event("job_failed.yaml")])
    with pytest.raises(m.MigrationError) as err:
        runner(api, clock, record=False, job_name="dify-backup").run()
    assert str(err.value).startswith("Job dify-db-migration failed")


def test_secret_env_and_volumes_reach_the_pod_spec_without_values():
    job = m.build_job(
        spec(
            secret_env={"PGPASSWORD": ("dify-credentials", "DB_PASSWORD")},
            volumes=[{"name": "backups", "persistentVolumeClaim": {"claimName": "dify-backups"}}],
            volume_mounts=[{"name": "backups", "mountPath": "/backups"}],
            args=["--verbose"],
        )
    )
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert {
        "name": "PGPASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "dify-credentials", "key": "DB_PASSWORD"}},
    } in container["env"]
    assert container["volumeMounts"] == [{"name": "backups", "mountPath": "/backups"}]
    assert container["args"] == ["--verbose"]
    assert job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "dify-backups"
