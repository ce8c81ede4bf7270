# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a one-off Kubernetes Job (above all Dify's database migration) and judge the outcome.

Dify's own ``flask upgrade-db`` skips when a Redis lock is held and swallows
exceptions with exit code 0. Here ``flask db upgrade`` runs in a Job and every way
that Job can go wrong (non-zero exit, image pull failure, missing config, no node,
timeout, Job deleted) becomes an exception with a reason, so the play stops.

The same runner serves dify_job (status probes, backups, password rotation) with the record
switched off. Everything in this file is plain logic over API objects given as dicts; the
Kubernetes calls live behind the small ``JobApi`` protocol (see job_client.py), so
the runner is unit-tested with fakes and fixtures.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

DEFAULT_COMMAND = ["flask", "db", "upgrade"]
CONTAINER_NAME = "migrate"
MANAGED_BY = "dify_ce.kubernetes"
COMPONENT = "db-migration"
IMAGE_ANNOTATION = "dify-ce.kubernetes/image"

# Waiting reasons after which a container will not start without someone changing
# something; waiting for the timeout would only hide the cause.
FATAL_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)

# Alembic logs one line per applied revision (logger alembic.runtime.migration):
#   Running upgrade 64b051264f32 -> 2a3aebbbf4bb, add foo
# The first revision of an empty database has no "from": "Running upgrade  -> abc, init".
_REVISION_LINE = re.compile(
    r"Running upgrade\s+(?P<from>[0-9A-Za-z_]*)\s*->\s*(?P<to>[0-9A-Za-z_]+)(?:,\s*(?P<message>.*))?$"
)
_TAG_OR_DIGEST = re.compile(r"^(?P<name>[^@]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


class MigrationError(Exception):
    """The migration did not succeed; ``details`` goes into the module result."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.details = details


class JobApi(Protocol):
    """The Kubernetes calls the runner needs (implemented by job_client.JobClient)."""

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def delete_job(self, namespace: str, name: str, uid: str) -> None: ...

    def wait_job_gone(self, namespace: str, name: str, uid: str, timeout: float) -> bool: ...

    def read_record(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def write_record(self, namespace: str, name: str, data: dict[str, str], labels: dict[str, str]) -> None: ...

    def follow(self, namespace: str, job: dict[str, Any]) -> EventStream: ...

    def list_pods(self, namespace: str, job: dict[str, Any]) -> list[dict[str, Any]]: ...

    def read_log(self, namespace: str, pod: str, container: str) -> str: ...


class EventStream(Protocol):
    """Changes of one Job and its pods, as ("job" | "pod", event type, object).

    The stream starts with the current state (ADDED events) and survives watch
    disconnects and expired resource versions on its own.
    """

    def get(self, timeout: float) -> tuple[str, str, dict[str, Any]] | None:
        """The next event, or None when nothing happened within ``timeout`` seconds."""

    def close(self) -> None: ...


class AlreadyExists(Exception):
    """Raised by JobApi.create_job when a Job of that name exists."""


# ----------------------------------------------------------------------------- input


def image_problem(image: str, allow_latest: bool) -> str | None:
    """Why an image reference is not acceptable for a migration, or None."""
    if not image or image != image.strip() or " " in image:
        return "must be an image reference such as langgenius/dify-api:1.11.4"
    last_segment = image.rsplit("/", 1)[-1]
    match = _TAG_OR_DIGEST.match(last_segment)
    if not match:
        return "is not a valid image reference"
    if not match.group("tag") and not match.group("digest"):
        return "has no tag or digest; pin the version the app will run, e.g. langgenius/dify-api:1.11.4"
    if match.group("tag") == "latest" and not match.group("digest") and not allow_latest:
        return (
            "uses the 'latest' tag, which names no fixed version, so the migration record "
            "would be meaningless; pin a version or set allow_latest=true"
        )
    return None


@dataclass
class JobSpec:
    """What to run: the validated module options, minus connection settings."""

    namespace: str
    image: str
    job_name: str = "dify-db-migration"
    command: list[str] = field(default_factory=lambda: list(DEFAULT_COMMAND))
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # VAR -> (secret name, key): values that must stay out of the Job spec.
    secret_env: dict[str, tuple[str, str]] = field(default_factory=dict)
    env_from_secrets: list[str] = field(default_factory=list)
    env_from_config_maps: list[str] = field(default_factory=list)
    ttl_seconds_after_finished: int | None = 86400
    backoff_limit: int = 0
    timeout: float = 600
    unschedulable_timeout: float = 60
    service_account_name: str | None = None
    image_pull_secrets: list[str] = field(default_factory=list)
    image_pull_policy: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    resources: dict[str, Any] = field(default_factory=dict)
    pod_labels: dict[str, str] = field(default_factory=dict)
    pod_annotations: dict[str, str] = field(default_factory=dict)
    security_context: dict[str, Any] | None = None
    pod_security_context: dict[str, Any] | None = None
    force: bool = False
    wait: bool = True
    delete_on_timeout: bool = False
    log_lines: int = 50
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    # The label app.kubernetes.io/component of Job and pod (NetworkPolicies select on it).
    component: str = COMPONENT
    container_name: str = CONTAINER_NAME
    # Keep a record of successful runs and skip a run whose image already succeeded
    # (migrations); off for Jobs that must run every time.
    record: bool = True

    @property
    def record_name(self) -> str:
        # Same name as the Job, other kind: `kubectl get cm,job dify-db-migration`.
        return self.job_name


# ----------------------------------------------------------------------------- Job


def common_labels(spec: JobSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "dify",
        "app.kubernetes.io/component": spec.component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def build_job(spec: JobSpec) -> dict[str, Any]:
    """The Job manifest for one run."""
    container: dict[str, Any] = {
        "name": spec.container_name,
        "image": spec.image,
        # Override the image's entrypoint (Dify's would start the api server instead).
        "command": list(spec.command),
    }
    if spec.args:
        container["args"] = list(spec.args)
    if spec.image_pull_policy:
        container["imagePullPolicy"] = spec.image_pull_policy
    env = [{"name": k, "value": str(v)} for k, v in sorted(spec.env.items())]
    env += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": ref[0], "key": ref[1]}}}
        for k, ref in sorted(spec.secret_env.items())
    ]
    if env:
        container["env"] = env
    env_from = [{"configMapRef": {"name": n}} for n in spec.env_from_config_maps]
    env_from += [{"secretRef": {"name": n}} for n in spec.env_from_secrets]
    if env_from:
        container["envFrom"] = env_from
    if spec.resources:
        container["resources"] = spec.resources
    if spec.security_context is not None:
        container["securityContext"] = spec.security_context
    if spec.volume_mounts:
        container["volumeMounts"] = spec.volume_mounts

    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        # The migration talks to the database, never to the Kubernetes API.
        "automountServiceAccountToken": False,
        "containers": [container],
    }
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": n} for n in spec.image_pull_secrets]
    if spec.node_selector:
        pod_spec["nodeSelector"] = spec.node_selector
    if spec.tolerations:
        pod_spec["tolerations"] = spec.tolerations
    if spec.pod_security_context is not None:
        pod_spec["securityContext"] = spec.pod_security_context
    if spec.volumes:
        pod_spec["volumes"] = spec.volumes

    labels = common_labels(spec)
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        "template": {
            "metadata": {
                "labels": dict(spec.pod_labels, **labels),
                "annotations": dict(spec.pod_annotations),
            },
            "spec": pod_spec,
        },
    }
    if spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": spec.job_name,
            "namespace": spec.namespace,
            "labels": labels,
            "annotations": {IMAGE_ANNOTATION: spec.image},
        },
        "spec": job_spec,
    }


def job_image(job: dict[str, Any]) -> str | None:
    annotations = job.get("metadata", {}).get("annotations") or {}
    if IMAGE_ANNOTATION in annotations:
        return annotations[IMAGE_ANNOTATION]
    containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return containers[0].get("image") if containers else None


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def job_outcome(job: dict[str, Any]) -> str | None:
    """'succeeded', 'failed', or None while the Job still runs.

    SuccessCriteriaMet / FailureTarget are set by the Job controller the moment the
    outcome is decided (Complete / Failed follow once pods are cleaned up), so they
    end the wait as soon as the result is certain.
    """
    if _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet"):
        return "succeeded"
    if _condition(job, "Failed") or _condition(job, "FailureTarget"):
        return "failed"
    return None


def job_failure_reason(job: dict[str, Any]) -> str:
    cond = _condition(job, "Failed") or _condition(job, "FailureTarget") or {}
    reason = cond.get("reason") or "Failed"
    message = cond.get("message")
    return f"{reason}: {message}" if message else reason


# ----------------------------------------------------------------------------- Pods


@dataclass
class PodProblem:
    """A pod state that will not resolve on its own."""

    reason: str
    message: str


def _container_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])


def _main_container_status(pod: dict[str, Any] | None) -> dict[str, Any]:
    # build_job makes pods of exactly one container.
    statuses = ((pod or {}).get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def pod_termination(pod: dict[str, Any] | None) -> dict[str, Any] | None:
    """The container's terminated state, once it ended."""
    return (_main_container_status(pod).get("state") or {}).get("terminated")


def pod_exit_code(pod: dict[str, Any] | None) -> int | None:
    terminated = pod_termination(pod)
    if terminated and terminated.get("exitCode") is not None:
        return int(terminated["exitCode"])
    return None


def pod_problem(pod: dict[str, Any]) -> PodProblem | None:
    """A container state after which waiting any longer is pointless."""
    for cs in _container_statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FATAL_WAITING_REASONS:
            return PodProblem(reason, waiting.get("message") or reason)
    return None


def pod_unschedulable(pod: dict[str, Any]) -> str | None:
    """The scheduler's message while no node fits the pod, else None."""
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return cond.get("message") or "no node fits the pod"
    return None


# ----------------------------------------------------------------------------- logs


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


def tail(text: str, lines: int) -> list[str]:
    if lines <= 0:
        return []
    return text.splitlines()[-lines:]


# ----------------------------------------------------------------------------- decision


@dataclass
class Decision:
    action: str  # run | skip | attach
    reason: str
    replace_uid: str | None = None  # a finished Job of the same name to replace


def decide(spec: JobSpec, record: dict[str, Any] | None, job: dict[str, Any] | None) -> Decision:
    """Whether to run a new Job, skip, or attach to the existing one."""
    if not spec.record:
        record = None
    if job is not None:
        image = job_image(job)
        outcome = job_outcome(job)
        uid = job["metadata"].get("uid")
        deleting = bool(job["metadata"].get("deletionTimestamp"))
        if outcome is None and not deleting:
            if image == spec.image:
                return Decision("attach", f"migration Job {spec.job_name} for {image} is already running; following it")
            raise MigrationError(
                f"migration Job {spec.namespace}/{spec.job_name} is still running for image {image}; "
                f"refusing to start a second migration for {spec.image}. Wait for it to finish "
                "(or delete that Job if it is stuck), then run again.",
                job_name=spec.job_name,
                image=spec.image,
                running_image=image,
            )
        recorded_uid = (record or {}).get("job_uid")
        if (
            spec.record
            and outcome == "succeeded"
            and image == spec.image
            and not spec.force
            and not deleting
            and recorded_uid != uid
        ):
            # Succeeded, but the record was never written (interrupted run): adopt it.
            return Decision("attach", f"migration Job {spec.job_name} for {image} already succeeded; recording it")
        replace = uid
    else:
        replace = None

    if record and record.get("image") == spec.image and not spec.force:
        return Decision(
            "skip",
            f"image {spec.image} already migrated successfully "
            f"by Job {record.get('job')} at {record.get('completed_at')}",
        )
    if not spec.record:
        reason = f"running Job {spec.job_name}"
    elif spec.force:
        reason = "forced re-run"
    else:
        reason = f"image {spec.image} has not been migrated yet" + (
            f" (last migrated: {record.get('image')})" if record and record.get("image") else ""
        )
    return Decision("run", reason, replace_uid=replace)


def record_data(spec: JobSpec, job: dict[str, Any], result: dict[str, Any], completed_at: str) -> dict[str, str]:
    return {
        "image": spec.image,
        "job": spec.job_name,
        "job_uid": job["metadata"].get("uid", ""),
        "completed_at": completed_at,
        "duration_seconds": str(result.get("duration_seconds")),
        "applied_revisions": json.dumps(result.get("applied_revisions") or []),
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


# ----------------------------------------------------------------------------- runner


class JobRunner:
    """Plan, run and follow one Job; raises MigrationError on any failure."""

    # How often to re-plan when another play races us for the same Job name.
    MAX_RACE_RETRIES = 5

    def __init__(
        self,
        api: JobApi,
        spec: JobSpec,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.spec = spec
        self.clock = clock
        self.monotonic = monotonic

    # -- planning ------------------------------------------------------------
    def plan(self) -> tuple[Decision, dict[str, str] | None, dict[str, Any] | None]:
        record = self.api.read_record(self.spec.namespace, self.spec.record_name) if self.spec.record else None
        job = self.api.read_job(self.spec.namespace, self.spec.job_name)
        return decide(self.spec, record, job), record, job

    def check(self) -> dict[str, Any]:
        """Check mode: say what would happen, change nothing."""
        decision, record, _job = self.plan()
        result = self._base_result(decision)
        result["changed"] = decision.action != "skip"
        if decision.action == "skip":
            result["skipped_reason"] = decision.reason
            after = record
        elif not self.spec.record:
            after = None
        else:
            after = dict(record or {}, image=self.spec.image, job=self.spec.job_name)
            after.update(job_uid="(known after the run)", completed_at="(known after the run)")
            after.pop("duration_seconds", None)
            after.pop("applied_revisions", None)
        result["record"] = record_view(record)
        result["diff"] = self._diff(record, after)
        return result

    # -- running -------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        for _attempt in range(self.MAX_RACE_RETRIES):
            decision, record, existing = self.plan()
            if decision.action == "skip":
                result = self._base_result(decision)
                result["changed"] = False
                result["skipped_reason"] = decision.reason
                result["record"] = record_view(record)
                return result
            if decision.action == "attach":
                return self._follow_and_record(existing, decision, record)
            job = self._start(decision)
            if job is not None:
                return self._follow_and_record(job, decision, record)
        raise MigrationError(
            f"could not start migration Job {self.spec.namespace}/{self.spec.job_name}: "
            "it kept changing underneath (another play running migrations at the same time?)",
            job_name=self.spec.job_name,
            image=self.spec.image,
        )

    def _start(self, decision: Decision) -> dict[str, Any] | None:
        """Create the Job (replacing a finished one); None means re-plan."""
        ns, name = self.spec.namespace, self.spec.job_name
        if decision.replace_uid:
            # The uid precondition makes sure we delete the finished Job we looked at,
            # never a new one another play just created.
            self.api.delete_job(ns, name, decision.replace_uid)
            self.api.wait_job_gone(ns, name, decision.replace_uid, timeout=60)
        try:
            return self.api.create_job(ns, build_job(self.spec))
        except AlreadyExists:
            return None

    def _follow_and_record(
        self, job: dict[str, Any], decision: Decision, record: dict[str, str] | None
    ) -> dict[str, Any]:
        result = self._base_result(decision)
        if not self.spec.wait:
            result["changed"] = decision.action == "run"
            result["job_name"] = job["metadata"]["name"]
            return result
        outcome = self.follow(job)
        finished = outcome.pop("job")
        result.update(outcome)
        if not self.spec.record:
            result["changed"] = True  # a Job ran
            return result
        completed_at = (finished.get("status") or {}).get("completionTime") or time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())
        )
        new_record = record_data(self.spec, finished, outcome, completed_at)
        self.api.write_record(self.spec.namespace, self.spec.record_name, new_record, common_labels(self.spec))
        result["record"] = record_view(new_record)
        result["diff"] = self._diff(record, new_record)
        result["changed"] = bool(outcome["applied_revisions"]) or (record or {}).get("job_uid") != new_record["job_uid"]
        return result

    def follow(self, job: dict[str, Any]) -> dict[str, Any]:
        """Watch the Job and its pods until the outcome is known; raise on failure."""
        spec = self.spec
        started = self.monotonic()
        deadline = started + spec.timeout
        pods: dict[str, dict[str, Any]] = {}
        unschedulable_since: dict[str, float] = {}
        current = job
        events = self.api.follow(spec.namespace, job)
        try:
            while True:
                outcome = job_outcome(current)
                if outcome is not None:
                    return self._finish(current, pods, outcome, started)
                now = self.monotonic()
                wake = deadline - now
                for name, pod in pods.items():
                    problem = pod_problem(pod)
                    if problem:
                        self._fail(current, pod, f"{problem.reason}: {problem.message}", started, problem.reason)
                    message = pod_unschedulable(pod)
                    if message is None:
                        unschedulable_since.pop(name, None)
                        continue
                    since = unschedulable_since.setdefault(name, now)
                    if now - since >= spec.unschedulable_timeout:
                        self._fail(
                            current,
                            pod,
                            f"Unschedulable for {now - since:.0f}s: {message}",
                            started,
                            "Unschedulable",
                        )
                    wake = min(wake, since + spec.unschedulable_timeout - now)
                if now >= deadline:
                    self._timeout(current, pods, started)
                event = events.get(max(wake, 0.0))
                if event is None:
                    continue
                kind, event_type, obj = event
                if kind == "job":
                    if event_type == "DELETED":
                        self._fail(
                            obj,
                            self._latest_pod(pods) or self._refresh_pod(obj),
                            "the migration Job was deleted while it was running",
                            started,
                            "JobDeleted",
                        )
                    current = obj
                elif event_type == "DELETED":
                    pods.pop(obj["metadata"]["name"], None)
                else:
                    pods[obj["metadata"]["name"]] = obj
        finally:
            events.close()

    # -- outcomes ------------------------------------------------------------
    @staticmethod
    def _latest_pod(pods: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        if not pods:
            return None
        return max(pods.values(), key=lambda p: str(p["metadata"].get("creationTimestamp") or ""))

    def _refresh_pod(self, job: dict[str, Any]) -> dict[str, Any] | None:
        try:
            pods = self.api.list_pods(self.spec.namespace, job)
        except Exception:  # evidence only
            return None
        return self._latest_pod({p["metadata"]["name"]: p for p in pods})

    def _logs(self, pod: dict[str, Any] | None) -> str:
        if pod is None:
            return ""
        try:
            return self.api.read_log(self.spec.namespace, pod["metadata"]["name"], self.spec.container_name)
        except Exception as exc:  # logs are evidence, not a reason to fail differently
            return f"(logs unavailable: {exc})"

    def _finish(
        self, job: dict[str, Any], pods: dict[str, dict[str, Any]], outcome: str, started: float
    ) -> dict[str, Any]:
        pod = self._latest_pod(pods)
        if pod_termination(pod) is None:
            # The Job's terminal event can overtake the pod's; read the pods once.
            pod = self._refresh_pod(job) or pod
        if outcome == "failed":
            self._fail(job, pod, job_failure_reason(job), started, "JobFailed")
        log_text = self._logs(pod)
        return {
            "job": job,
            "job_name": job["metadata"]["name"],
            "pod_name": pod["metadata"]["name"] if pod else None,
            "exit_code": pod_exit_code(pod),
            "duration_seconds": round(self.monotonic() - started, 3),
            "applied_revisions": parse_applied_revisions(log_text),
            "logs": tail(log_text, self.spec.log_lines),
        }

    def _fail(self, job: dict[str, Any], pod: dict[str, Any] | None, why: str, started: float, reason: str) -> None:
        spec = self.spec
        log_text = self._logs(pod)
        exit_code = pod_exit_code(pod)
        pod_name = pod["metadata"]["name"] if pod else None
        where = f"Job {spec.namespace}/{job['metadata']['name']}" + (f", pod {pod_name}" if pod_name else "")
        what = "migration" if spec.record else f"Job {job['metadata']['name']}"
        msg = f"{what} failed ({where}, image {spec.image}): {why}"
        if exit_code is not None:
            msg += f"; container exit code {exit_code}"
        lines = tail(log_text, spec.log_lines)
        if lines:
            msg += "\nlast log lines:\n" + "\n".join(lines)
        raise MigrationError(
            msg,
            reason=reason,
            job_name=job["metadata"]["name"],
            pod_name=pod_name,
            image=spec.image,
            exit_code=exit_code,
            duration_seconds=round(self.monotonic() - started, 3),
            applied_revisions=parse_applied_revisions(log_text),
            logs=lines,
        )

    def _timeout(self, job: dict[str, Any], pods: dict[str, dict[str, Any]], started: float) -> None:
        pod = self._latest_pod(pods)
        if pod is None:
            waiting_for = "a pod to be created (check the Job's events and resource quotas)"
        else:
            phase = (pod.get("status") or {}).get("phase") or "Pending"
            waiting_for = f"pod {pod['metadata']['name']} to finish (phase {phase})"
        if self.spec.delete_on_timeout:
            self.api.delete_job(self.spec.namespace, job["metadata"]["name"], job["metadata"].get("uid", ""))
            left = "deleted the Job (delete_on_timeout)"
        else:
            left = "the Job is left in place for inspection"
        self._fail(
            job, pod, f"timed out after {self.spec.timeout:g}s waiting for {waiting_for}; {left}", started, "Timeout"
        )

    # -- helpers ------------------------------------------------------------
    def _base_result(self, decision: Decision) -> dict[str, Any]:
        return {
            "decision": decision.action,
            "msg": decision.reason,
            "job_name": self.spec.job_name,
            "image": self.spec.image,
            "pod_name": None,
            "exit_code": None,
            "duration_seconds": None,
            "applied_revisions": [],
            "logs": [],
        }

    @staticmethod
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
