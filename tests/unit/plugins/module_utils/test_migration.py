"""Unit tests of the migration: Alembic's output, the record, the run/skip/attach decision and the
MigrationRunner on top of the generic runner (tested in test_job.py, whose fakes are used here)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from test_job import IMAGE, FakeApi, FakeClock, fixture, job_event, pod_event, spec, text

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import job, migration, names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import Conflict, DifyError, JobFailed, NotFound

# --------------------------------------------------------------------------- parsing


def test_parse_applied_revisions_in_order():
    revisions = migration.parse_applied_revisions(text("migration_output.log"))
    assert revisions == [
        {"from": "64b051264f32", "to": "2a3aebbbf4bb", "message": "add tracing app config"},
        {"from": "2a3aebbbf4bb", "to": "4e99a8df00ff", "message": "add load balancing"},
    ]


def test_parse_first_revision_of_empty_database_has_no_from():
    assert migration.parse_applied_revisions(text("migration_initial.log")) == [
        {"from": None, "to": "64b051264f32", "message": "init"}
    ]


def test_parse_nothing_applied_when_already_at_head():
    assert migration.parse_applied_revisions("INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n") == []


def test_record_view_decodes_the_revisions():
    assert migration.record_view(None) is None
    assert migration.record_view({}) is None
    view = migration.record_view({"image": IMAGE, "applied_revisions": '[{"to": "abc"}]'})
    assert view == {"image": IMAGE, "applied_revisions": [{"to": "abc"}]}
    assert migration.record_view({"image": IMAGE, "applied_revisions": "not json"})["applied_revisions"] == []
    assert migration.record_view({"image": IMAGE})["applied_revisions"] == []


# --------------------------------------------------------------------------- decide

RECORD = {"image": IMAGE, "job": "dify-db-migration", "job_uid": "11111111-aaaa-4bbb-8ccc-000000000001"}


def decide(record, existing, pods=(), **overrides: Any) -> job.Decision:
    """migration.decide on what a read found: the record, the Job of its name and its pods."""
    return migration.decide(record, job.job_state(existing, list(pods)), spec(**overrides))


def running(**changes: Any) -> dict:
    """job_running.yaml, its metadata changed."""
    found = fixture("job_running.yaml")
    found["metadata"].update(changes)
    return found


UID = "11111111-aaaa-4bbb-8ccc-000000000001"
NEWER = "langgenius/dify-api:1.11.5"
SUCCEEDED = fixture("pod_succeeded.yaml")
OTHER_JOBS_POD = copy.deepcopy(SUCCEEDED)
OTHER_JOBS_POD["metadata"]["labels"] = {"batch.kubernetes.io/controller-uid": "an-earlier-job"}


# Every state a run can find (and an interrupted one leave behind): the record, the Job of the
# migration's name and its pods, what this run wants -> the decision, and whether the Job found is
# replaced. The same function plans in prepare and decides in the module on a fresh read.
DECISIONS = [
    # (what, record, job, pods, wanted, action, replaces)
    ("nothing migrated yet", None, None, [], {}, "run", False),
    ("this image migrated, Job cleaned up", RECORD, None, [], {}, "skip", False),
    ("this image migrated by this Job", RECORD, fixture("job_complete.yaml"), [], {}, "skip", False),
    ("... and forced", RECORD, fixture("job_complete.yaml"), [], {"force": True}, "run", True),
    ("another image failed, a newer one wanted", RECORD, fixture("job_failed.yaml"), [], {"image": NEWER},
     "run", True),
    ("a forced re-run of this image failed", RECORD, fixture("job_failed.yaml"), [], {}, "skip", False),
    ("this image runs", None, running(), [fixture("pod_running.yaml")], {}, "attach", False),
    ("this image succeeded, never recorded", None, fixture("job_complete.yaml"), [], {}, "attach", False),
    # The pod succeeded, the Job controller has not recorded it yet (the module already returned):
    ("this image's pod succeeded and was recorded", RECORD, running(), [SUCCEEDED], {}, "skip", False),
    ("... and forced", RECORD, running(), [SUCCEEDED], {"force": True}, "run", True),
    ("this image's pod succeeded, never recorded", None, running(), [SUCCEEDED], {}, "attach", False),
    ("an earlier Job's pod does not count", None, running(), [OTHER_JOBS_POD], {}, "attach", False),
    ("the pod failed, the Job not yet", None, running(), [fixture("pod_failed.yaml")], {}, "run", True),
    # A Job that cannot start is replaced (the operator fixed the cause and runs again).
    ("the image cannot be pulled", None, running(), [fixture("pod_image_pull_backoff.yaml")], {}, "run", True),
    ("... even another image's", None, running(), [fixture("pod_image_pull_backoff.yaml")], {"image": NEWER},
     "run", True),
    ("configuration missing", None, running(), [fixture("pod_config_error.yaml")], {}, "run", True),
    ("no node fits", None, running(), [fixture("pod_unschedulable.yaml")], {}, "run", True),
    ("another pod of this image runs", None, running(annotations={names.JOB_IMAGE: IMAGE, names.JOB_POD_HASH: "0"}),
     [fixture("pod_running.yaml")], {}, "run", True),
    ("this pod runs", None, running(annotations={names.JOB_IMAGE: IMAGE, names.JOB_POD_HASH: spec().pod_hash}),
     [fixture("pod_running.yaml")], {}, "attach", False),
    ("the Job is being deleted", None, running(deletionTimestamp="2026-11-25T10:01:00Z"), [], {}, "run", True),
]  # fmt: skip


@pytest.mark.parametrize(("what", "record", "found", "pods", "wanted", "action", "replaces"), DECISIONS,
                         ids=[d[0] for d in DECISIONS])  # fmt: skip
def test_the_migration_decision(what, record, found, pods, wanted, action, replaces):
    decision = decide(record, found, pods, **wanted)
    assert decision.action == action, decision.reason
    assert decision.replace_uid == (UID if replaces else None), decision.reason


def test_decide_says_what_was_migrated_last_when_a_newer_image_runs():
    assert "last migrated: " + IMAGE in decide(RECORD, fixture("job_failed.yaml"), image=NEWER).reason


def test_decide_says_why_a_job_is_replaced():
    assert "ImagePullBackOff" in decide(None, running(), [fixture("pod_image_pull_backoff.yaml")]).reason
    assert (
        "another pod"
        in decide(None, running(annotations={names.JOB_POD_HASH: "0"}), [fixture("pod_running.yaml")]).reason
    )


def test_decide_refuses_a_second_migration_while_another_image_migrates():
    with pytest.raises(JobFailed, match="still running for image " + IMAGE):
        decide(None, running(), [fixture("pod_running.yaml")], image=NEWER)


# --------------------------------------------------------------------------- runner


def runner(api: FakeApi, clock: FakeClock, **overrides: Any) -> migration.MigrationRunner:
    """The migration runner (what dify_migrate runs; the old runner with record=True)."""
    return migration.MigrationRunner(api, spec(**overrides), clock=clock, monotonic=clock)


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
    # Done when the pod succeeded: the time its container finished (the Job controller records the
    # Job's completion up to a second later).
    assert written["completed_at"] == "2026-11-25T10:00:11Z"
    assert json.loads(written["applied_revisions"])[0]["from"] == "64b051264f32"
    assert api.streams[0].closed
    assert result["record"]["applied_revisions"][1]["to"] == "4e99a8df00ff"
    assert "image: " + IMAGE in result["diff"]["after"] and result["diff"]["before"] == ""


def test_second_run_with_same_image_creates_no_job():
    clock = FakeClock()
    api = FakeApi(clock, record=dict(RECORD, completed_at="2026-11-25T10:00:12Z"), job=fixture("job_complete.yaml"))
    result = runner(api, clock).run()
    assert result["changed"] is False
    assert result["decision"] == "skip"
    assert "already migrated" in result["skipped_reason"]
    assert api.created == [] and api.deleted == []
    assert result["record"]["image"] == IMAGE


def test_failed_job_raises_with_exit_code_and_logs():
    clock = FakeClock()
    api = FakeApi(
        clock,
        script=[pod_event("pod_running.yaml"), pod_event("pod_failed.yaml"), job_event("job_failed.yaml")],
        logs='sqlalchemy.exc.ProgrammingError: relation "dify_setups" does not exist\n',
    )
    with pytest.raises(JobFailed) as err:
        runner(api, clock).run()
    assert err.value.details["exit_code"] == 3
    assert err.value.details["reason"] == "JobFailed"
    assert "dify_setups" in str(err.value)
    assert "container exit code 3" in str(err.value)
    assert "dify-db-migration-x7k2p" in str(err.value)
    assert str(err.value).startswith("migration failed")
    assert err.value.details["applied_revisions"] == []
    assert api.records_written == []


def test_a_failure_after_some_revisions_reports_what_was_applied():
    clock = FakeClock()
    api = FakeApi(
        clock,
        script=[pod_event("pod_failed.yaml"), job_event("job_failed.yaml")],
        logs=text("migration_output.log") + "sqlalchemy.exc.OperationalError: boom\n",
    )
    with pytest.raises(JobFailed) as err:
        runner(api, clock).run()
    assert [r["to"] for r in err.value.details["applied_revisions"]] == ["2a3aebbbf4bb", "4e99a8df00ff"]


def test_migration_job_deleted_while_running_says_migration():
    clock = FakeClock()
    api = FakeApi(clock, script=[job_event("job_running.yaml", event="DELETED")])
    with pytest.raises(JobFailed, match="the migration Job was deleted while it was running"):
        runner(api, clock).run()


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


def test_losing_the_create_race_attaches_to_the_winner_and_records_it():
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
    assert api.records_written[-1]["job_uid"] == "11111111-aaaa-4bbb-8ccc-000000000001"


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


def test_adopting_a_job_that_applied_nothing_is_still_a_change_of_the_record():
    clock = FakeClock()
    done = fixture("job_complete.yaml")
    api = FakeApi(clock, record=None, job=done, script=[], pods=[fixture("pod_succeeded.yaml")])
    result = runner(api, clock).run()
    assert result["decision"] == "attach" and result["applied_revisions"] == []
    assert result["changed"] is True  # the record is new
    assert api.records_written[-1]["job_uid"] == done["metadata"]["uid"]


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


def test_the_migration_job_is_made_from_the_api_pod_template():
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event("pod_succeeded.yaml"), job_event("job_complete.yaml")])
    template = job.pod_template(
        fixture("pod_template_api.yaml"),
        container_name=migration.CONTAINER_NAME,
        command=migration.DEFAULT_COMMAND,
        args=[],
    )
    migration.MigrationRunner(api, job.JobSpec("dify", template), clock=clock, monotonic=clock).run()
    container = api.created[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == migration.DEFAULT_COMMAND and "args" not in container
    assert api.records_written[-1]["image"] == IMAGE
    assert api.log_reads == [("dify-db-migration-x7k2p", "migrate")]


# --------------------------------------------------------------------------- the record over Kube


class RecordKube:
    """The k8s.Kube calls of KubeMigrationApi's record, with scripted conflicts."""

    def __init__(self, current=None, conflicts=0):
        self.current = current
        self.conflicts = conflicts
        self.writes: list[tuple[str, dict]] = []

    def get(self, api_version, kind, name, namespace=None):
        return copy.deepcopy(self.current)

    def _write(self, verb, obj):
        self.writes.append((verb, copy.deepcopy(obj)))
        if self.conflicts:
            self.conflicts -= 1
            raise Conflict("the object has been modified", status=409)
        self.current = dict(copy.deepcopy(obj), metadata=dict(obj["metadata"], resourceVersion="2"))
        return obj

    def create(self, obj, dry_run=False):
        return self._write("create", obj)

    def replace(self, obj):
        return self._write("replace", obj)


def test_the_record_is_a_configmap_created_then_replaced_with_its_resource_version():
    kube = RecordKube()
    api = migration.KubeMigrationApi(kube)
    assert api.read_record("dify", "dify-db-migration") is None
    api.write_record("dify", "dify-db-migration", {"image": IMAGE})
    verb, body = kube.writes[-1]
    assert verb == "create"
    # A record: the label no prune selects (records.py), next to the component's labels.
    labels = dict(names.labels(names.MIGRATION), **{names.RECORD_LABEL: "migration"})
    assert body == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "dify-db-migration", "namespace": "dify", "labels": labels},
        "data": {"image": IMAGE},
    }
    assert api.read_record("dify", "dify-db-migration") == {"image": IMAGE}
    api.write_record("dify", "dify-db-migration", {"image": "x:1"})
    verb, body = kube.writes[-1]
    assert verb == "replace" and body["metadata"]["resourceVersion"] == "2"


def test_writing_the_record_retries_conflicts_and_then_gives_up():
    kube = RecordKube(current={"metadata": {"name": "dify-db-migration", "resourceVersion": "1"}}, conflicts=4)
    migration.KubeMigrationApi(kube).write_record("dify", "dify-db-migration", {"image": IMAGE})
    assert [verb for verb, _body in kube.writes] == ["replace"] * 5
    kube = RecordKube(current={"metadata": {"name": "dify-db-migration", "resourceVersion": "1"}}, conflicts=5)
    with pytest.raises(DifyError, match="kept changing"):
        migration.KubeMigrationApi(kube).write_record("dify", "dify-db-migration", {"image": IMAGE})


def test_a_record_deleted_between_attempts_is_created_without_resource_version():
    class Vanishing(RecordKube):
        def replace(self, obj):
            self.writes.append(("replace", copy.deepcopy(obj)))
            self.current = None  # deleted in between: the replace fails, the next attempt creates
            raise NotFound('configmaps "dify-db-migration" not found', status=404)

    kube = Vanishing(current={"metadata": {"name": "dify-db-migration", "resourceVersion": "1"}})
    migration.KubeMigrationApi(kube).write_record("dify", "dify-db-migration", {"image": IMAGE})
    verb, body = kube.writes[-1]
    assert verb == "create"
    # The apiserver refuses a create that sets metadata.resourceVersion.
    assert "resourceVersion" not in body["metadata"]


# --------------------------------------------------------------------------- verified at the head


def succeeded(report: str) -> tuple[FakeClock, FakeApi]:
    clock = FakeClock()
    api = FakeApi(clock, script=[pod_event("pod_succeeded.yaml"), job_event("job_complete.yaml")],
                  logs=text("migration_output.log") + report)  # fmt: skip
    return clock, api


def test_a_migration_that_exits_0_below_the_images_head_fails_naming_both_revisions():
    clock, api = succeeded('DIFY_REPORT {"current": "2a3aebbbf4bb ", "heads": "4e99a8df00ff (head) "}\n')
    with pytest.raises(JobFailed) as failed:
        runner(api, clock).run()
    assert "database is at revision 2a3aebbbf4bb while the image's migrations end at 4e99a8df00ff" in str(failed.value)
    assert failed.value.details["reason"] == "BelowHead"
    assert api.records_written == [], "nothing is recorded as migrated"


def test_a_migration_at_the_images_head_records_the_revision():
    clock, api = succeeded('DIFY_REPORT {"current": "4e99a8df00ff (head) ", "heads": "4e99a8df00ff (head) "}\n')
    result = runner(api, clock).run()
    assert result["revision"] == result["heads"] == ["4e99a8df00ff"]
    assert api.records_written[-1]["revision"] == "4e99a8df00ff"


def test_a_custom_command_that_reports_nothing_is_not_judged_by_the_head():
    clock, api = succeeded("")
    assert runner(api, clock).run()["decision"] == "run"


def test_the_default_command_upgrades_then_reports_current_and_heads():
    script = migration.DEFAULT_COMMAND[2]
    assert script.index("flask db upgrade") < script.index("flask db current") < script.index("DIFY_REPORT")
    assert migration.revisions("6f5a9c2d8e1b (head)\n") == ["6f5a9c2d8e1b"]
