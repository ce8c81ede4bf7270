"""Unit tests of the generic Job runner and its pod/Job helpers: plain logic over API objects, no cluster.

The fakes and helpers here (FakeClock, FakeStream, FakeApi, spec, job_event, ...) are shared with
test_migration.py, which tests the record, the decision and Alembic's output on top.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import job, names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import ApiError, Conflict, JobFailed

FIXTURES = Path(__file__).parent / "fixtures"
IMAGE = "langgenius/dify-api:1.11.4"
MIGRATE_COMMAND = ["flask", "db", "upgrade"]
POD_OPTIONS = frozenset(inspect.signature(job.pod_template).parameters)


def fixture(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / name).read_text())


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def spec(**options: Any) -> job.JobSpec:
    """A migration-like JobSpec from flat options, as the old JobSpec took them: pod options go
    to pod_template (container "migrate" running flask db upgrade with IMAGE unless given), the
    rest to JobSpec."""
    pod = {key: options.pop(key) for key in list(options) if key in POD_OPTIONS}
    pod.setdefault("image", IMAGE)
    pod.setdefault("container_name", "migrate")
    pod.setdefault("command", list(MIGRATE_COMMAND))
    options.setdefault("namespace", "dify")
    return job.JobSpec(template=job.pod_template(**pod), **options)


def api_template() -> dict[str, Any]:
    return fixture("pod_template_api.yaml")


# --------------------------------------------------------------------------- output


def test_tail_returns_last_lines_only():
    assert job.tail("a\nb\nc\n", 2) == ["b", "c"]
    assert job.tail("a\nb", 0) == []


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
    assert job.image_problem(image, allow_latest=False) is None


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
    problem = job.image_problem(image, allow_latest=False)
    assert problem is not None and words in problem


def test_latest_accepted_when_explicitly_allowed():
    assert job.image_problem("langgenius/dify-api:latest", allow_latest=True) is None


# --------------------------------------------------------------------------- the Job


def test_build_job_runs_flask_db_upgrade_with_the_apps_config():
    built = job.build_job(
        spec(
            env={"LOG_LEVEL": "INFO"},
            env_from_config_maps=["dify-shared-env"],
            env_from_secrets=["dify-credentials"],
            image_pull_secrets=["regcred"],
            pod_annotations={"sidecar.istio.io/inject": "false"},
            security_context={"runAsNonRoot": True},
        )
    )
    container = built["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "migrate"
    assert container["command"] == ["flask", "db", "upgrade"]
    assert container["image"] == IMAGE
    assert container["envFrom"] == [
        {"configMapRef": {"name": "dify-shared-env"}},
        {"secretRef": {"name": "dify-credentials"}},
    ]
    assert container["env"] == [{"name": "LOG_LEVEL", "value": "INFO"}]
    assert container["securityContext"] == {"runAsNonRoot": True}
    pod = built["spec"]["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["metadata"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    # Changed on purpose: Job pods (and Jobs) now also carry app.kubernetes.io/part-of=dify.
    assert pod["metadata"]["labels"] == {
        "app.kubernetes.io/name": "dify",
        "app.kubernetes.io/component": names.MIGRATION,
        "app.kubernetes.io/part-of": "dify",
        "app.kubernetes.io/managed-by": "dify_ce.kubernetes",
    }
    assert built["metadata"]["labels"] == pod["metadata"]["labels"]
    assert built["spec"]["backoffLimit"] == 0
    assert built["spec"]["ttlSecondsAfterFinished"] == 86400
    assert built["metadata"]["annotations"][names.JOB_IMAGE] == IMAGE
    assert built["metadata"]["name"] == "dify-db-migration"
    assert built["metadata"]["namespace"] == "dify"


def test_build_job_without_ttl_keeps_the_job():
    assert "ttlSecondsAfterFinished" not in job.build_job(spec(ttl_seconds_after_finished=None))["spec"]


def test_pod_labels_cannot_override_the_labels_the_module_relies_on():
    built = job.build_job(spec(pod_labels={"app.kubernetes.io/component": "other", "team": "ai"}))
    labels = built["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == names.MIGRATION
    assert labels["team"] == "ai"


def test_secret_env_and_volumes_reach_the_pod_spec_without_values():
    built = job.build_job(
        spec(
            secret_env={"PGPASSWORD": ("dify-credentials", "DB_PASSWORD")},
            volumes=[{"name": "backups", "persistentVolumeClaim": {"claimName": "dify-backups"}}],
            volume_mounts=[{"name": "backups", "mountPath": "/backups"}],
            args=["--verbose"],
        )
    )
    container = built["spec"]["template"]["spec"]["containers"][0]
    assert {
        "name": "PGPASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "dify-credentials", "key": "DB_PASSWORD"}},
    } in container["env"]
    assert container["volumeMounts"] == [{"name": "backups", "mountPath": "/backups"}]
    assert container["args"] == ["--verbose"]
    assert built["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "dify-backups"


def test_the_job_spec_reads_image_and_container_name_from_its_template():
    s = spec(image="langgenius/dify-api:1.11.5", container_name="job")
    assert s.image == "langgenius/dify-api:1.11.5"
    assert s.container_name == "job"
    assert s.container is s.template["spec"]["containers"][0]


def test_a_template_without_base_and_without_command_keeps_the_images_entrypoint():
    template = job.pod_template(container_name="job", image=IMAGE)
    assert template == {"metadata": {}, "spec": {"containers": [{"name": "job", "image": IMAGE}]}}
    assert "command" not in job.pod_template(container_name="job", image=IMAGE, command=[])["spec"]["containers"][0]


# --------------------------------------------------------------------------- Jobs from a pod template


def test_an_api_pod_template_becomes_a_job_changing_only_command_restart_probes_and_labels():
    base = api_template()
    untouched = copy.deepcopy(base)
    s = job.JobSpec(
        namespace="dify",
        template=job.pod_template(base, command=MIGRATE_COMMAND, args=[]),
    )
    built = job.build_job(s)
    assert base == untouched  # the caller's template is not modified

    expected = copy.deepcopy(base["spec"])
    container = expected["containers"][0]
    container["command"] = ["flask", "db", "upgrade"]
    del container["args"]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        del container[probe]
    expected["restartPolicy"] = "Never"
    pod = built["spec"]["template"]
    # Everything else is the api pod's: image, pull policy, env, envFrom, ports, resources,
    # securityContexts, volumes and mounts, imagePullSecrets, nodeSelector, enableServiceLinks.
    assert pod["spec"] == expected
    assert pod["spec"]["enableServiceLinks"] is False
    assert pod["metadata"]["annotations"] == base["metadata"]["annotations"]

    # The labels are the Job's: the component is the migration's, so that the api Service's
    # selector never picks the Job's pod (and NetworkPolicies of the Job apply to it).
    labels = pod["metadata"]["labels"]
    assert labels == dict(base["metadata"]["labels"], **names.labels(names.MIGRATION))
    assert labels[names.LABEL_COMPONENT] == names.MIGRATION
    assert not set(names.selector("api").items()) <= set(labels.items())
    assert built["metadata"]["labels"] == names.labels(names.MIGRATION)

    # The container name is the template's unless container_name is given.
    assert s.container_name == "api"
    renamed = job.pod_template(base, container_name="migrate")["spec"]["containers"][0]
    assert renamed["name"] == "migrate" and renamed["image"] == IMAGE
    assert s.image == IMAGE
    assert built["metadata"]["annotations"] == {names.JOB_IMAGE: IMAGE, names.JOB_POD_HASH: s.pod_hash}
    assert s.pod_hash == job.pod_hash(pod) and len(s.pod_hash) == 16


def test_options_given_replace_the_templates_and_options_not_given_keep_them():
    base = api_template()
    template = job.pod_template(
        base,
        image="langgenius/dify-api:1.11.5",
        resources={"requests": {"cpu": "100m"}},
        security_context={"runAsNonRoot": True},
        pod_security_context={"fsGroup": 2000},
        image_pull_policy="Always",
        image_pull_secrets=["other-registry"],
        service_account_name="migrator",
        pod_labels={"team": "ai"},
        pod_annotations={"sidecar.istio.io/inject": "false"},
    )
    container = template["spec"]["containers"][0]
    assert container["image"] == "langgenius/dify-api:1.11.5"
    assert container["resources"] == {"requests": {"cpu": "100m"}}
    assert container["securityContext"] == {"runAsNonRoot": True}
    assert container["imagePullPolicy"] == "Always"
    assert template["spec"]["securityContext"] == {"fsGroup": 2000}
    assert template["spec"]["imagePullSecrets"] == [{"name": "other-registry"}]
    assert template["spec"]["serviceAccountName"] == "migrator"
    assert template["metadata"]["labels"]["team"] == "ai"
    assert template["metadata"]["labels"][names.LABEL_COMPONENT] == "api"  # build_job overrides it
    assert template["metadata"]["annotations"] == {
        names.CONFIG_HASH: "0f3c9a51",
        "sidecar.istio.io/inject": "false",
    }
    other = job.JobSpec("dify", template)
    assert job.build_job(other)["metadata"]["annotations"] == {
        names.JOB_IMAGE: "langgenius/dify-api:1.11.5",
        names.JOB_POD_HASH: other.pod_hash,
    }

    kept = job.pod_template(base)  # nothing given: the template as it is (command and args too)
    assert kept == base


def test_env_and_secret_env_replace_variables_of_the_same_name():
    template = job.pod_template(
        api_template(),
        env={"LOG_LEVEL": "DEBUG", "FLASK_APP": "app.py"},
        secret_env={"DB_PASSWORD": ("dify-db-password-rotation", "NEW_PASSWORD")},
    )
    assert template["spec"]["containers"][0]["env"] == [
        {"name": "MODE", "value": "api"},
        {"name": "FLASK_APP", "value": "app.py"},
        {"name": "LOG_LEVEL", "value": "DEBUG"},
        {
            "name": "DB_PASSWORD",
            "valueFrom": {"secretKeyRef": {"name": "dify-db-password-rotation", "key": "NEW_PASSWORD"}},
        },
    ]


def test_env_from_volumes_and_mounts_are_added_to_the_templates():
    base = api_template()
    template = job.pod_template(
        base,
        env_from_config_maps=["dify-extra-env"],
        env_from_secrets=["dify-provider-keys"],
        volumes=[{"name": "backups", "persistentVolumeClaim": {"claimName": "dify-backups"}}],
        volume_mounts=[{"name": "backups", "mountPath": "/backups"}],
    )
    container = template["spec"]["containers"][0]
    before = base["spec"]["containers"][0]
    assert container["envFrom"] == before["envFrom"] + [
        {"configMapRef": {"name": "dify-extra-env"}},
        {"secretRef": {"name": "dify-provider-keys"}},
    ]
    assert container["volumeMounts"] == before["volumeMounts"] + [{"name": "backups", "mountPath": "/backups"}]
    assert template["spec"]["volumes"] == base["spec"]["volumes"] + [
        {"name": "backups", "persistentVolumeClaim": {"claimName": "dify-backups"}}
    ]


def test_a_template_with_two_containers_is_refused():
    base = api_template()
    base["spec"]["containers"].append({"name": "sidecar", "image": "busybox:1.36"})
    with pytest.raises(ValueError, match="exactly one container"):
        job.pod_template(base, command=MIGRATE_COMMAND)


# --------------------------------------------------------------------------- states


def test_job_outcome():
    assert job.job_outcome(fixture("job_running.yaml")) is None
    assert job.job_outcome(fixture("job_complete.yaml")) == "succeeded"
    assert job.job_outcome(fixture("job_failed.yaml")) == "failed"
    assert "BackoffLimitExceeded" in job.job_failure_reason(fixture("job_failed.yaml"))


def test_failure_target_alone_is_already_a_failure():
    failed = fixture("job_failed.yaml")
    failed["status"]["conditions"] = [c for c in failed["status"]["conditions"] if c["type"] == "FailureTarget"]
    assert job.job_outcome(failed) == "failed"


@pytest.mark.parametrize(
    ("name", "reason"),
    [("pod_image_pull_backoff.yaml", "ImagePullBackOff"), ("pod_config_error.yaml", "CreateContainerConfigError")],
)
def test_pod_problem_for_containers_that_cannot_start(name, reason):
    problem = job.pod_problem(fixture(name))
    assert problem is not None and problem.reason == reason


@pytest.mark.parametrize("name", ["pod_creating.yaml", "pod_running.yaml", "pod_unschedulable.yaml"])
def test_no_problem_while_a_pod_is_on_its_way(name):
    assert job.pod_problem(fixture(name)) is None


def test_unschedulable_reports_the_schedulers_message():
    assert "didn't match Pod's node affinity/selector" in job.pod_unschedulable(fixture("pod_unschedulable.yaml"))
    assert job.pod_unschedulable(fixture("pod_running.yaml")) is None


def test_exit_codes():
    assert job.pod_exit_code(fixture("pod_failed.yaml")) == 3
    assert job.pod_exit_code(fixture("pod_succeeded.yaml")) == 0
    assert job.pod_exit_code(fixture("pod_running.yaml")) is None
    assert job.pod_exit_code(None) is None


def test_job_image_from_the_annotation_or_the_container():
    assert job.job_image(fixture("job_complete.yaml")) == IMAGE
    unannotated = fixture("job_complete.yaml")
    del unannotated["metadata"]["annotations"]
    unannotated["spec"]["template"]["spec"]["containers"][0]["image"] = "other:1"
    assert job.job_image(unannotated) == "other:1"


def test_pod_selector_is_the_jobs_own():
    assert job.pod_selector(fixture("job_complete.yaml")) == (
        "batch.kubernetes.io/controller-uid=11111111-aaaa-4bbb-8ccc-000000000001"
    )
    assert job.pod_selector({"metadata": {"name": "dify-status"}, "spec": {}}) == "job-name=dify-status"


# --------------------------------------------------------------------------- runner fakes


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
    """JobApi plus the migration record (migration.MigrationApi), so both runners use it."""

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
        self.log_reads: list[tuple] = []
        self.create_conflicts = 0

    def read_job(self, namespace, name):
        return copy.deepcopy(self.job)

    def create_job(self, namespace, body):
        if self.create_conflicts:
            self.create_conflicts -= 1
            self.job = fixture("job_running.yaml")
            raise job.AlreadyExists(body["metadata"]["name"])
        self.created.append(body)
        created = copy.deepcopy(body)
        created["metadata"]["uid"] = "22222222-aaaa-4bbb-8ccc-000000000002"
        created["spec"]["selector"] = {
            "matchLabels": {"batch.kubernetes.io/controller-uid": created["metadata"]["uid"]}
        }
        self.job = created
        return copy.deepcopy(created)

    def delete_job(self, namespace, name, uid):
        self.deleted.append((name, uid))
        self.job = None

    def wait_job_gone(self, namespace, name, uid, timeout):
        return True

    def read_record(self, namespace, name):
        return copy.deepcopy(self.record)

    def write_record(self, namespace, name, data):
        self.records_written.append(data)
        self.record = data

    def follow(self, namespace, job):
        stream = FakeStream(self.clock, self.script)
        self.streams.append(stream)
        return stream

    def list_pods(self, namespace, job):
        return copy.deepcopy(self.pods)

    def read_log(self, namespace, pod, container):
        self.log_reads.append((pod, container))
        return self.logs


def job_event(name: str, uid: str = "22222222-aaaa-4bbb-8ccc-000000000002", event: str = "MODIFIED"):
    obj = fixture(name)
    obj["metadata"]["uid"] = uid
    return ("job", event, obj)


def pod_event(name: str, event: str = "MODIFIED"):
    return ("pod", event, fixture(name))


def runner(api: FakeApi, clock: FakeClock, **overrides: Any) -> job.JobRunner:
    """The generic runner (what dify_job runs; the old record=False)."""
    return job.JobRunner(api, spec(**overrides), clock=clock, monotonic=clock)


# --------------------------------------------------------------------------- following a Job


def test_failed_job_event_before_pod_event_still_reports_exit_code():
    clock = FakeClock()
    api = FakeApi(clock, script=[job_event("job_failed.yaml")], pods=[fixture("pod_failed.yaml")])
    with pytest.raises(JobFailed) as err:
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
    with pytest.raises(JobFailed) as err:
        runner(api, clock, timeout=600).run()
    assert err.value.details["reason"] == reason
    assert words in str(err.value)
    assert clock.now - 1000.0 < 1


def test_unschedulable_pod_fails_after_its_grace_period_with_the_schedulers_reason():
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event("pod_unschedulable.yaml")])
    with pytest.raises(JobFailed) as err:
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


def test_a_succeeded_pod_ends_the_wait_before_the_job_controller_records_it():
    clock = FakeClock()
    # No Job event follows: the controller batches pod updates and marks the Job up to 1 s later.
    api = FakeApi(clock, script=[pod_event("pod_running.yaml"), pod_event("pod_succeeded.yaml")])
    result = runner(api, clock, timeout=600).run()
    assert result["exit_code"] == 0 and result["finished_at"] == "2026-11-25T10:00:11Z"
    assert clock.now == 1000.0, "it did not wait for anything more"
    # A Job that wants more than one completion waits for the Job's own verdict.
    many = FakeApi(clock, script=[pod_event("pod_succeeded.yaml")])
    original = many.create_job

    def create_two(namespace, body):
        body["spec"]["completions"] = 2
        return original(namespace, body)

    many.create_job = create_two
    with pytest.raises(JobFailed, match="timed out"):
        runner(many, clock, timeout=20).run()


def test_timeout_names_what_it_waited_for_and_leaves_the_job():
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event("pod_running.yaml")])
    with pytest.raises(JobFailed) as err:
        runner(api, clock, timeout=20).run()
    assert err.value.details["reason"] == "Timeout"
    assert "timed out after 20s waiting for pod dify-db-migration-x7k2p to finish (phase Running)" in str(err.value)
    assert "left in place" in str(err.value)
    assert api.deleted == []


def test_timeout_can_delete_the_job():
    clock = FakeClock()
    api = FakeApi(clock, script=[])
    with pytest.raises(JobFailed, match="waiting for a pod to be created"):
        runner(api, clock, timeout=5, delete_on_timeout=True).run()
    assert api.deleted == [("dify-db-migration", "22222222-aaaa-4bbb-8ccc-000000000002")]


def test_job_deleted_while_running_fails_clearly():
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event("pod_running.yaml"), job_event("job_running.yaml", event="DELETED")])
    with pytest.raises(JobFailed, match="deleted while it was running") as err:
        runner(api, clock).run()
    assert err.value.details["reason"] == "JobDeleted"


def test_losing_the_create_race_attaches_to_the_winner():
    clock = FakeClock()
    api = FakeApi(
        clock,
        script=[
            pod_event("pod_succeeded.yaml"),
            job_event("job_complete.yaml", uid="11111111-aaaa-4bbb-8ccc-000000000001"),
        ],
        pods=[fixture("pod_running.yaml")],
    )
    api.create_conflicts = 1
    result = runner(api, clock).run()
    assert result["decision"] == "attach"
    assert api.created == []


def test_a_job_that_keeps_changing_underneath_gives_up():
    clock = FakeClock()

    class Racing(FakeApi):
        def create_job(self, namespace, body):
            raise job.AlreadyExists(body["metadata"]["name"])

    api = Racing(clock)
    with pytest.raises(JobFailed, match="kept changing underneath"):
        runner(api, clock).run()


def test_log_read_failure_does_not_hide_the_real_failure():
    clock = FakeClock()

    class NoLogs(FakeApi):
        def read_log(self, namespace, pod, container):
            raise RuntimeError("kubelet unreachable")

    api = NoLogs(clock, script=[pod_event("pod_failed.yaml"), job_event("job_failed.yaml")])
    with pytest.raises(JobFailed) as err:
        runner(api, clock).run()
    assert err.value.details["exit_code"] == 3
    assert "logs unavailable: kubelet unreachable" in str(err.value)


def test_the_event_source_is_closed_after_a_failure_too():
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event("pod_failed.yaml"), job_event("job_failed.yaml")])
    with pytest.raises(JobFailed):
        runner(api, clock).run()
    assert api.streams[0].closed


def test_the_runner_reads_the_log_of_the_templates_container():
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event("pod_succeeded.yaml"), job_event("job_complete.yaml")], logs="done\n")
    s = job.JobSpec(namespace="dify", template=job.pod_template(api_template(), command=MIGRATE_COMMAND, args=[]))
    result = job.JobRunner(api, s, clock=clock, monotonic=clock).run()
    assert result["logs"] == ["done"]
    assert api.log_reads == [("dify-db-migration-x7k2p", "api")]
    created = api.created[0]["spec"]["template"]["spec"]["containers"][0]
    assert created["name"] == "api" and "readinessProbe" not in created


# --------------------------------------------------------------------------- Jobs without a record


def test_a_job_without_record_runs_every_time_and_writes_nothing():
    clock = FakeClock()
    api = FakeApi(
        clock,
        record={"image": IMAGE, "job": "dify-db-migration"},  # ignored: JobRunner (dify_job) keeps no record
        job=fixture("job_complete.yaml"),
        script=[pod_event("pod_succeeded.yaml"), job_event("job_complete.yaml")],
        logs="57\n4e99a8df00ff\n",
    )
    result = runner(api, clock, component="db-tools", container_name="job").run()
    assert result["decision"] == "run" and result["changed"] is True
    assert result["logs"] == ["57", "4e99a8df00ff"]
    assert "applied_revisions" not in result  # no Alembic parsing either
    assert api.records_written == []
    assert api.deleted == [("dify-db-migration", "11111111-aaaa-4bbb-8ccc-000000000001")]
    labels = api.created[0]["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/component"] == "db-tools"
    assert api.created[0]["spec"]["template"]["spec"]["containers"][0]["name"] == "job"
    assert api.log_reads == [("dify-db-migration-x7k2p", "job")]


def test_a_failing_job_without_record_names_the_job_not_a_migration():
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event("pod_failed.yaml"), job_event("job_failed.yaml")])
    with pytest.raises(JobFailed) as err:
        runner(api, clock, job_name="dify-backup").run()
    assert str(err.value).startswith("Job dify-db-migration failed")


def test_a_job_without_record_follows_a_running_job_for_the_same_image_and_refuses_another():
    clock = FakeClock()
    api = FakeApi(clock, job=fixture("job_running.yaml"))
    assert runner(api, clock).check()["decision"] == "attach"
    with pytest.raises(JobFailed, match="still running for image " + IMAGE):
        runner(api, clock, image="langgenius/dify-api:1.11.5").check()
    assert api.created == []


def test_check_mode_of_a_job_without_record_reports_a_run():
    clock = FakeClock()
    api = FakeApi(clock, job=fixture("job_complete.yaml"))
    result = runner(api, clock).check()
    assert result["decision"] == "run" and result["changed"] is True
    assert "diff" not in result and "record" not in result
    assert api.created == [] and api.deleted == []


def test_messages_of_a_job_without_record_say_job_once():
    clock = FakeClock()
    attach = runner(FakeApi(clock, job=fixture("job_running.yaml")), clock).check()["msg"]
    with pytest.raises(JobFailed) as refused:
        runner(FakeApi(clock, job=fixture("job_running.yaml")), clock, image="langgenius/dify-api:1.11.5").check()
    api = FakeApi(clock, script=[job_event("job_running.yaml", event="DELETED")])
    with pytest.raises(JobFailed) as deleted:
        runner(api, clock).run()
    for message in (attach, str(refused.value), str(deleted.value)):
        assert "Job Job" not in message, message


# --------------------------------------------------------------------------- KubeJobApi


class FakeKube:
    """The few k8s.Kube methods KubeJobApi calls."""

    def __init__(self, jobs=None, watch_events=None, create_error=None, delete_error=None):
        self.jobs = jobs or {}
        self.watch_events = list(watch_events or [])
        self.create_error = create_error
        self.delete_error = delete_error
        self.calls: list[tuple] = []

    def get(self, api_version, kind, name, namespace=None):
        self.calls.append(("get", kind, name, namespace))
        return copy.deepcopy(self.jobs.get(name))

    def create(self, obj, dry_run=False):
        self.calls.append(("create", obj))
        if self.create_error:
            raise self.create_error
        return obj

    def delete(self, api_version, kind, name, namespace=None, uid=None, dry_run=False):
        self.calls.append(("delete", kind, name, namespace, uid))
        if self.delete_error:
            raise self.delete_error
        return True

    def list(self, api_version, kind, namespace=None, label_selector=None, field_selector=None):
        self.calls.append(("list", kind, namespace, label_selector, field_selector))
        return copy.deepcopy(self.jobs), "100"

    def watch(self, api_version, kind, namespace, resource_version, timeout, **selectors):
        self.calls.append(("watch", kind, resource_version, selectors))
        yield from self.watch_events

    def log(self, namespace, pod, container):
        self.calls.append(("log", namespace, pod, container))
        return "output\n"


def test_kube_job_api_creates_in_the_namespace_and_reports_an_existing_job():
    kube = FakeKube()
    api = job.KubeJobApi(kube)
    body = job.build_job(spec())
    api.create_job("other", body)
    assert kube.calls[-1][1]["metadata"]["namespace"] == "other"
    kube.create_error = Conflict('jobs.batch "dify-db-migration" already exists', status=409)
    with pytest.raises(job.AlreadyExists):
        api.create_job("dify", body)


def test_kube_job_api_deletes_only_the_job_it_looked_at():
    kube = FakeKube(delete_error=Conflict("Precondition failed: UID in precondition", status=409))
    api = job.KubeJobApi(kube)
    api.delete_job("dify", "dify-db-migration", "u1")  # a newer Job of that name: not ours, no error
    assert kube.calls == [("delete", "Job", "dify-db-migration", "dify", "u1")]
    kube.delete_error = ApiError("forbidden", status=403)
    with pytest.raises(ApiError):
        api.delete_job("dify", "dify-db-migration", "u1")


def test_kube_job_api_waits_until_that_very_job_is_gone():
    done = fixture("job_complete.yaml")
    kube = FakeKube(jobs={"dify-db-migration": done}, watch_events=[("DELETED", done)])
    api = job.KubeJobApi(kube)
    assert api.wait_job_gone("dify", "dify-db-migration", done["metadata"]["uid"], timeout=5) is True
    assert kube.calls[0] == ("list", "Job", "dify", None, "metadata.name=dify-db-migration")
    # A Job of that name with another uid is a new one: ours is gone.
    kube = FakeKube(jobs={"dify-db-migration": done})
    assert job.KubeJobApi(kube).wait_job_gone("dify", "dify-db-migration", "another-uid", timeout=5) is True
    assert [c[0] for c in kube.calls] == ["list"]


def test_kube_job_api_lists_the_pods_of_the_job_and_reads_logs():
    kube = FakeKube()
    api = job.KubeJobApi(kube)
    api.list_pods("dify", fixture("job_complete.yaml"))
    assert kube.calls[-1] == (
        "list",
        "Pod",
        "dify",
        "batch.kubernetes.io/controller-uid=11111111-aaaa-4bbb-8ccc-000000000001",
        None,
    )
    assert api.read_log("dify", "p", "migrate") == "output\n"
    assert api.read_job("dify", "dify-db-migration") is None
