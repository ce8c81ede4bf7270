# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dify's database migration: the record, the run/skip/attach decision and Alembic's output.

Dify's own ``flask upgrade-db`` skips when a Redis lock is held and, up to 1.12, swallowed
exceptions with exit code 0. Here ``flask db upgrade`` runs in a Job (job.JobRunner) and every
failure stops the play. After a success a record (a ConfigMap named like the Job) keeps the
image, the Job and the applied revisions: the same image again needs no Job.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Protocol

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import JobFailed
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job import (
    Decision,
    JobApi,
    JobRunner,
    JobSpec,
    JobState,
    KubeJobApi,
    existing_job,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.records import Records

# `flask db upgrade`, then where the database is and where the image's migrations end: Alembic's
# `current` and `heads` ("<revision> (head)"), as the Job's report. An exit code 0 alone is not
# trusted: the runner compares the two (MigrationRunner.finished).
MIGRATE_SCRIPT = """\
flask db upgrade
current=$(flask db current 2>/dev/null | tr '\\n' ' ')
heads=$(flask db heads 2>/dev/null | tr '\\n' ' ')
echo "DIFY_REPORT {\\"current\\": \\"$current\\", \\"heads\\": \\"$heads\\"}"
"""
DEFAULT_COMMAND = ["/bin/sh", "-ec", MIGRATE_SCRIPT]


def revisions(text: str) -> list[str]:
    """The revisions Alembic printed ("6f5a9c2d8e1b (head)", one per line), without the markers."""
    return sorted({word for word in text.split() if not word.startswith("(")})


CONTAINER_NAME = names.JobContainer.MIGRATE

# Alembic logs one line per applied revision (logger alembic.runtime.migration):
#   Running upgrade 64b051264f32 -> 2a3aebbbf4bb, add foo
# The first revision of an empty database has no "from": "Running upgrade  -> abc, init".
_REVISION_LINE = re.compile(
    r"Running upgrade\s+(?P<from>[0-9A-Za-z_]*)\s*->\s*(?P<to>[0-9A-Za-z_]+)(?:,\s*(?P<message>.*))?$"
)


def parse_applied_revisions(log_text: str) -> list[dict[str, str | None]]:
    """Alembic revisions applied, in order, from the migration's output."""
    revisions = []
    for line in log_text.splitlines():
        match = _REVISION_LINE.search(line.strip())
        if match:
            revisions.append(
                {
                    "from": match.group("from") or None,
                    "to": match.group("to"),
                    "message": (match.group("message") or "").strip() or None,
                }
            )
    return revisions


# ----------------------------------------------------------------------------- the record


class RecordApi(Protocol):
    def read_record(self, namespace: str, name: str) -> dict[str, str] | None: ...

    def write_record(self, namespace: str, name: str, data: dict[str, str]) -> None: ...


class MigrationApi(JobApi, RecordApi, Protocol):
    """What the migration runner needs: the Job calls and the record."""


class KubeMigrationApi(KubeJobApi):
    """MigrationApi over the collection's client layer; the record is written as every record is
    (records.py)."""

    def read_record(self, namespace: str, name: str) -> dict[str, str] | None:
        cm = self.kube.get("v1", "ConfigMap", name, namespace)
        return None if cm is None else cm.get("data") or {}

    def write_record(self, namespace: str, name: str, data: dict[str, str]) -> None:
        Records(self.kube, namespace).write("migration", data, replace=True, name=name)


def record_data(spec: JobSpec, job: dict[str, Any], result: dict[str, Any], completed_at: str) -> dict[str, str]:
    return {
        "image": spec.image,
        "job": spec.job_name,
        "job_uid": job["metadata"].get("uid", ""),
        "completed_at": completed_at,
        "duration_seconds": str(result.get("duration_seconds")),
        "applied_revisions": json.dumps(result.get("applied_revisions") or []),
        **({"revision": ",".join(result["revision"])} if result.get("revision") else {}),
    }


def record_view(data: dict[str, str] | None) -> dict[str, Any] | None:
    """The record as returned to users (JSON fields decoded)."""
    if not data:
        return None
    view: dict[str, Any] = dict(data)
    try:
        view["applied_revisions"] = json.loads(data.get("applied_revisions") or "[]")
    except ValueError:
        view["applied_revisions"] = []
    return view


# ----------------------------------------------------------------------------- decision


def decide(record: dict[str, Any] | None, state: JobState, spec: JobSpec) -> Decision:
    """The migration's decision, from the record, what the Job of its name is now (job_state:
    the Job and its pods) and the Job this run wants: skip (this image migrated), attach (follow
    the Job running for this image, or record the one that succeeded unrecorded) or run (a new
    Job, replacing one that finished, failed or cannot start). Pure: prepare calls it to plan, the
    module again on a fresh read. Refuses while a Job runs for another image."""
    found = existing_job(state, spec, "migration Job")
    if found:
        return found
    if (state.phase == "succeeded" and state.image == spec.image and not spec.force
            and (record or {}).get("job_uid") != state.uid):  # fmt: skip
        # Succeeded, but the record was never written (interrupted run): record it.
        return Decision("attach", f"migration Job {spec.job_name} for {spec.image} already succeeded; recording it")
    if record and record.get("image") == spec.image and not spec.force:
        return Decision(
            "skip",
            f"image {spec.image} already migrated successfully "
            f"by Job {record.get('job')} at {record.get('completed_at')}",
        )
    if spec.force:
        reason = "forced re-run"
    else:
        reason = f"image {spec.image} has not been migrated yet" + (
            f" (last migrated: {record.get('image')})" if record and record.get("image") else ""
        )
    return Decision("run", reason, replace_uid=state.uid)


class MigrationRunner(JobRunner):
    """The migration: a JobRunner that keeps a record and skips an image that already migrated."""

    what = "migration"
    api: MigrationApi

    @property
    def record_name(self) -> str:
        # Same name as the Job, other kind: `kubectl get cm,job dify-db-migration`.
        return self.spec.job_name

    def plan(self) -> tuple[Decision, dict[str, Any] | None]:
        record = self.api.read_record(self.spec.namespace, self.record_name)
        state, job = self.read_state()
        decision = decide(record, state, self.spec)
        decision.record = record
        return decision, job

    def base_result(self, decision: Decision) -> dict[str, Any]:
        return dict(super().base_result(decision), applied_revisions=[])

    def parse(self, log_text: str) -> dict[str, Any]:
        return {"applied_revisions": parse_applied_revisions(log_text)}

    def checked(self, result: dict[str, Any], decision: Decision) -> dict[str, Any]:
        record = decision.record
        if decision.action == "skip":
            after = record
        else:
            after = dict(record or {}, image=self.spec.image, job=self.spec.job_name)
            after.update(job_uid="(known after the run)", completed_at="(known after the run)")
            after.pop("duration_seconds", None)
            after.pop("applied_revisions", None)
        result["record"] = record_view(record)
        result["diff"] = _diff(record, after)
        return result

    def skipped(self, result: dict[str, Any], decision: Decision) -> dict[str, Any]:
        result["record"] = record_view(decision.record)
        return result

    def verify(self, result: dict[str, Any], job: dict[str, Any]) -> None:
        """The database must be at the image's head after a Job that exited 0 (when it said where
        it is: a custom command may not)."""
        report = result.get("report") or {}
        if "current" not in report or "heads" not in report:
            return
        current, heads = revisions(report["current"]), revisions(report["heads"])
        result.update(revision=current, heads=heads)
        if not heads or current != heads:
            raise JobFailed(
                f"migration failed (Job {self.spec.namespace}/{job['metadata']['name']}, image {self.spec.image}): it "
                f"exited 0, but the database is at revision {', '.join(current) or '(none)'} while the image's "
                f"migrations end at {', '.join(heads) or '(none)'}; the app was not rolled out. Look at the Job's "
                "output (kubectl logs job/...) and run again.",
                reason="BelowHead",
                job_name=job["metadata"]["name"],
                image=self.spec.image,
                revision=current,
                heads=heads,
                logs=result.get("logs") or [],
            )

    def finished(self, result: dict[str, Any], job: dict[str, Any], decision: Decision) -> dict[str, Any]:
        self.verify(result, job)
        record = decision.record
        completed_at = (
            (job.get("status") or {}).get("completionTime")
            or result.get("finished_at")
            or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        )
        new_record = record_data(self.spec, job, result, completed_at)
        self.api.write_record(self.spec.namespace, self.record_name, new_record)
        result["record"] = record_view(new_record)
        result["diff"] = _diff(record, new_record)
        result["changed"] = bool(result["applied_revisions"]) or (record or {}).get("job_uid") != new_record["job_uid"]
        return result


def _diff(before: dict[str, str] | None, after: dict[str, str] | None) -> dict[str, Any]:
    def show(data: dict[str, str] | None) -> str:
        if not data:
            return ""
        return "".join(f"{k}: {data[k]}\n" for k in sorted(data))

    return {
        "before": show(before),
        "after": show(after if after is not None else before),
        "before_header": "migration record",
        "after_header": "migration record",
    }
