# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a one-off Kubernetes Job and judge the outcome: the generic runner.

A Job starts from a pod template (the role hands over the api pod it renders, so a migration
runs with exactly the image, environment, volumes and security settings the app will run) and
only command, args, restartPolicy and labels are the runner's. Every way the Job can go wrong
(non-zero exit, an image that cannot be pulled, missing configuration, no node, timeout, the
Job deleted) becomes a JobFailed with the reason and the last log lines.

Plain logic over API objects given as dicts; the Kubernetes calls sit behind the small
``JobApi`` protocol (``KubeJobApi`` implements it over k8s.Kube), so the runner is unit-tested
with fakes and fixtures. The migration record and its decisions live in migration.py.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import Conflict, JobFailed
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.k8s import Informer, Kube, selector_string
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.records import parse_report

# Waiting reasons after which a container will not start without someone changing something;
# waiting for the timeout would only hide the cause.
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

_TAG_OR_DIGEST = re.compile(r"^(?P<name>[^@]+?)(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


# How long a wait for the Job's events may last before the runner looks again (and renews the lock).
HEARTBEAT = 15.0


class AlreadyExists(Exception):
    """Raised by JobApi.create_job when a Job of that name exists."""


# ----------------------------------------------------------------------------- input


def image_problem(image: str, allow_latest: bool) -> str | None:
    """Why an image reference is not acceptable for a Job whose outcome is recorded, or None."""
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


def pod_template(
    base: dict[str, Any] | None = None,
    container_name: str | None = None,
    image: str | None = None,
    command: list[str] | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    secret_env: dict[str, tuple[str, str]] | None = None,
    env_from_config_maps: list[str] | None = None,
    env_from_secrets: list[str] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    volume_mounts: list[dict[str, Any]] | None = None,
    resources: dict[str, Any] | None = None,
    security_context: dict[str, Any] | None = None,
    pod_security_context: dict[str, Any] | None = None,
    image_pull_policy: str | None = None,
    image_pull_secrets: list[str] | None = None,
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict[str, Any]] | None = None,
    service_account_name: str | None = None,
    pod_labels: dict[str, str] | None = None,
    pod_annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pod template of one container: ``base`` (a pod template such as the role's api pod)
    with the given options on top; without ``base``, from the options alone. ``container_name``
    names the container (default: the base's name, else "job").

    Options that are None keep what the base has; env and secret_env replace variables of the
    same name; envFrom, volumes and mounts are added; labels and annotations are merged.
    """
    template = copy.deepcopy(base) if base else {"metadata": {}, "spec": {}}
    meta = template.setdefault("metadata", {})
    spec = template.setdefault("spec", {})
    containers = spec.get("containers") or [{"name": container_name or "job"}]
    if len(containers) != 1:
        raise ValueError("a Job's pod template must have exactly one container")
    container = containers[0]
    if container_name:
        container["name"] = container_name
    spec["containers"] = [container]

    if image is not None:
        container["image"] = image
    if command is not None:
        if command:
            container["command"] = list(command)
        else:
            container.pop("command", None)
    if args is not None:
        if args:
            container["args"] = list(args)
        else:
            container.pop("args", None)
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    extra_env = [{"name": k, "value": str(v)} for k, v in sorted((env or {}).items())]
    extra_env += [
        {"name": k, "valueFrom": {"secretKeyRef": {"name": ref[0], "key": ref[1]}}}
        for k, ref in sorted((secret_env or {}).items())
    ]
    if extra_env:
        replaced = {e["name"] for e in extra_env}
        container["env"] = [e for e in container.get("env") or [] if e["name"] not in replaced] + extra_env
    extra_from = [{"configMapRef": {"name": n}} for n in env_from_config_maps or []]
    extra_from += [{"secretRef": {"name": n}} for n in env_from_secrets or []]
    if extra_from:
        container["envFrom"] = (container.get("envFrom") or []) + extra_from
    if resources is not None:
        container["resources"] = resources
    if security_context is not None:
        container["securityContext"] = security_context
    if volume_mounts:
        container["volumeMounts"] = (container.get("volumeMounts") or []) + list(volume_mounts)

    if volumes:
        spec["volumes"] = (spec.get("volumes") or []) + list(volumes)
    if pod_security_context is not None:
        spec["securityContext"] = pod_security_context
    if image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": n} for n in image_pull_secrets]
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if service_account_name:
        spec["serviceAccountName"] = service_account_name
    if pod_labels:
        meta["labels"] = dict(meta.get("labels") or {}, **pod_labels)
    if pod_annotations:
        meta["annotations"] = dict(meta.get("annotations") or {}, **pod_annotations)
    return template


@dataclass
class JobSpec:
    """What to run: a pod template of one container, and how to judge it."""

    namespace: str
    template: dict[str, Any]
    job_name: str = names.MIGRATION_JOB
    # The label app.kubernetes.io/component of Job and pod (NetworkPolicies select on it).
    component: str = names.MIGRATION
    ttl_seconds_after_finished: int | None = 86400
    backoff_limit: int = 0
    timeout: float = 600
    unschedulable_timeout: float = 60
    force: bool = False
    wait: bool = True
    delete_on_timeout: bool = False
    log_lines: int = 50
    # Judge a Job of this name that exists (finished or not) instead of replacing it: the second
    # half of a Job started earlier with wait=false.
    follow_existing: bool = False

    @property
    def container(self) -> dict[str, Any]:
        return self.template["spec"]["containers"][0]

    @property
    def image(self) -> str:
        return self.container.get("image", "")

    @property
    def container_name(self) -> str:
        return self.container["name"]

    @property
    def pod_hash(self) -> str:
        """What the Job's pod is made of (the Job keeps it in an annotation)."""
        return pod_hash(build_job(self, with_hash=False)["spec"]["template"])


# ----------------------------------------------------------------------------- Job


def pod_hash(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


def build_job(spec: JobSpec, with_hash: bool = True) -> dict[str, Any]:
    """The Job manifest for one run: the pod template, never restarted, labelled as the Job's."""
    template = copy.deepcopy(spec.template)
    pod_spec = template["spec"]
    pod_spec["restartPolicy"] = "Never"
    # A Job serves nothing: a probe of a server port would only kill it.
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        pod_spec["containers"][0].pop(probe, None)
    # A Job talks to its database or to Dify, never to the Kubernetes API.
    pod_spec.setdefault("automountServiceAccountToken", False)
    labels = names.labels(spec.component)
    meta = template.setdefault("metadata", {})
    meta["labels"] = dict(meta.get("labels") or {}, **labels)
    meta["annotations"] = dict(meta.get("annotations") or {})
    job_spec: dict[str, Any] = {"backoffLimit": spec.backoff_limit, "template": template}
    if spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    annotations = {names.JOB_IMAGE: spec.image}
    if with_hash:
        annotations[names.JOB_POD_HASH] = pod_hash(template)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": spec.job_name, "namespace": spec.namespace, "labels": labels, "annotations": annotations},
        "spec": job_spec,
    }


def job_image(job: dict[str, Any]) -> str | None:
    annotations = job.get("metadata", {}).get("annotations") or {}
    if names.JOB_IMAGE in annotations:
        return annotations[names.JOB_IMAGE]
    containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    return containers[0].get("image") if containers else None


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def job_outcome(job: dict[str, Any]) -> str | None:
    """'succeeded', 'failed', or None while the Job still runs.

    SuccessCriteriaMet / FailureTarget are set by the Job controller the moment the outcome is
    decided (Complete / Failed follow once pods are cleaned up), so they end the wait as soon as
    the result is certain.
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


# ----------------------------------------------------------------------------- pods


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


def pod_outcome(job: dict[str, Any], pods: dict[str, dict[str, Any]]) -> str | None:
    """'succeeded' as soon as the pod of a one-completion Job has succeeded (its container exited 0).
    The Job controller batches pod updates and records that up to a second later; nothing can
    change the outcome any more."""
    if ((job.get("spec") or {}).get("completions") or 1) != 1:
        return None
    for pod in pods.values():
        if (pod.get("status") or {}).get("phase") == "Succeeded" and pod_exit_code(pod) == 0:
            return "succeeded"
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


def tail(text: str, lines: int) -> list[str]:
    if lines <= 0:
        return []
    return text.splitlines()[-lines:]


def _pod_failed(job: dict[str, Any], pods: dict[str, dict[str, Any]]) -> str | None:
    """'failed' as soon as a pod of a Job that retries nothing (backoffLimit 0) failed."""
    if ((job.get("spec") or {}).get("backoffLimit") or 0) != 0:
        return None
    return "failed" if any((p.get("status") or {}).get("phase") == "Failed" for p in pods.values()) else None


def pods_of(job: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The pods of exactly this Job, by name: a pod that names another Job as its controller (an
    earlier Job of the same name) is not one of them."""
    uid = job["metadata"].get("uid")

    def owners(pod: dict[str, Any]) -> set[str]:
        labels = pod["metadata"].get("labels") or {}
        found = {labels.get("batch.kubernetes.io/controller-uid"), labels.get("controller-uid")}
        found |= {o.get("uid") for o in pod["metadata"].get("ownerReferences") or []}
        return found - {None}

    return {p["metadata"]["name"]: p for p in pods if not uid or not owners(p) or uid in owners(p)}


@dataclass(frozen=True)
class JobState:
    """What a Job of our name is now, from the Job and its pods: the one notion of "finished"
    that the runner's wait and every decision (skip, attach, replace) share. A Job whose pod
    succeeded is finished, though the Job controller records that up to a second later."""

    phase: str  # absent | deleting | running | stuck | succeeded | failed
    uid: str | None = None
    image: str | None = None
    pod_hash: str | None = None
    problem: str = ""

    @property
    def finished(self) -> bool:
        return self.phase in ("succeeded", "failed")


def job_state(job: dict[str, Any] | None, pods: list[dict[str, Any]] | None = None) -> JobState:
    if job is None:
        return JobState("absent")
    meta = job["metadata"]
    known = {"uid": meta.get("uid"), "image": job_image(job), "pod_hash": (meta.get("annotations") or {}).get(
        names.JOB_POD_HASH)}  # fmt: skip
    if meta.get("deletionTimestamp"):
        return JobState("deleting", **known)
    mine = pods_of(job, pods or [])
    outcome = job_outcome(job) or pod_outcome(job, mine) or _pod_failed(job, mine)
    if outcome:
        return JobState(outcome, **known)
    for pod in mine.values():
        problem = pod_problem(pod)
        if problem:
            return JobState("stuck", problem=f"{problem.reason}: {problem.message}", **known)
        message = pod_unschedulable(pod)
        if message:
            return JobState("stuck", problem=f"Unschedulable: {message}", **known)
    return JobState("running", **known)


# ----------------------------------------------------------------------------- the API side


class EventSource(Protocol):
    """Changes of one Job and its pods, as ("job" | "pod", event type, object); starts with the
    current state (ADDED) and survives disconnects and expired resource versions on its own."""

    def get(self, timeout: float) -> tuple[str, str, dict[str, Any]] | None: ...

    def close(self) -> None: ...


class JobApi(Protocol):
    """The Kubernetes calls the runner needs."""

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def delete_job(self, namespace: str, name: str, uid: str) -> None: ...

    def wait_job_gone(self, namespace: str, name: str, uid: str, timeout: float) -> bool: ...

    def follow(self, namespace: str, job: dict[str, Any]) -> EventSource: ...

    def list_pods(self, namespace: str, job: dict[str, Any]) -> list[dict[str, Any]]: ...

    def read_log(self, namespace: str, pod: str, container: str) -> str: ...


def pod_selector(job: dict[str, Any]) -> str:
    labels = ((job.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not labels:  # a Job as returned by the API always has one
        labels = {"job-name": job["metadata"]["name"]}
    return selector_string(labels)


class KubeJobApi:
    """JobApi over the collection's client layer."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.kube.get("batch/v1", "Job", name, namespace)

    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.kube.create(dict(body, metadata=dict(body["metadata"], namespace=namespace)))
        except Conflict as exc:
            raise AlreadyExists(body["metadata"]["name"]) from exc

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        try:
            self.kube.delete("batch/v1", "Job", name, namespace, uid=uid or None)
        except Conflict:
            pass  # the uid precondition failed: not the Job we meant any more, not ours to delete

    def wait_job_gone(self, namespace: str, name: str, uid: str, timeout: float) -> bool:
        from ansible_collections.dify_ce.kubernetes.plugins.module_utils.k8s import wait_until

        gone, _jobs = wait_until(
            self.kube,
            "batch/v1",
            "Job",
            namespace,
            lambda jobs: name not in jobs or jobs[name]["metadata"].get("uid") != uid,
            timeout,
            field_selector=f"metadata.name={name}",
        )
        return gone

    def follow(self, namespace: str, job: dict[str, Any]) -> Informer:
        informer = Informer(self.kube)
        informer.watch("job", "batch/v1", "Job", namespace, field_selector=f"metadata.name={job['metadata']['name']}")
        informer.watch("pod", "v1", "Pod", namespace, label_selector=pod_selector(job))
        return informer

    def list_pods(self, namespace: str, job: dict[str, Any]) -> list[dict[str, Any]]:
        pods, _version = self.kube.list("v1", "Pod", namespace, label_selector=pod_selector(job))
        return list(pods.values())

    def read_log(self, namespace: str, pod: str, container: str) -> str:
        return self.kube.log(namespace, pod, container)


# ----------------------------------------------------------------------------- runner


def existing_job(state: JobState, spec: JobSpec, job_words: str = "Job") -> Decision | None:
    """What a Job of our name that has not finished means: follow it (running, this image,
    this pod), replace it (it cannot start, or it runs another pod of this image), refuse (it
    runs another image); None when there is none or it finished."""
    job = f"{job_words} {spec.namespace}/{spec.job_name}"
    if state.phase == "stuck":
        return Decision("run", f"{job} cannot start ({state.problem}); replacing it", replace_uid=state.uid)
    if state.phase != "running":
        return None
    if state.image != spec.image:
        raise JobFailed(
            f"{job} is still running for image {state.image}; refusing to start a second one for "
            f"{spec.image}. Wait for it to finish (or delete that Job if it is stuck), then run again.",
            job_name=spec.job_name,
            image=spec.image,
            running_image=state.image,
        )
    if state.pod_hash and state.pod_hash != spec.pod_hash:
        return Decision("run", f"{job} runs another pod than this run wants; replacing it", replace_uid=state.uid)
    return Decision("attach", f"{job} for {state.image} is already running; following it")


@dataclass
class Decision:
    action: str  # run | skip | attach
    reason: str
    replace_uid: str | None = None  # a finished Job of the same name to replace
    record: dict[str, Any] | None = field(default=None)


class JobRunner:
    """Plan, run and follow one Job; raises JobFailed on any failure. Runs every time (a finished
    Job of the same name is replaced, a running one for the same image is followed)."""

    # How often to re-plan when another play races us for the same Job name.
    MAX_RACE_RETRIES = 5
    what = "Job"

    @property
    def job_words(self) -> str:
        return "Job" if self.what == "Job" else f"{self.what} Job"

    def __init__(
        self,
        api: JobApi,
        spec: JobSpec,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.spec = spec
        self.clock = clock
        self.monotonic = monotonic
        # Called while following the Job (renews the run's lock, lock.Heartbeat).
        self.heartbeat = heartbeat or (lambda: None)

    # -- planning ------------------------------------------------------------
    def existing(self, state: JobState) -> Decision | None:
        return existing_job(state, self.spec, self.job_words)

    def decide(self, state: JobState) -> Decision:
        if state.phase != "absent" and self.spec.follow_existing and state.image == self.spec.image:
            return Decision("attach", f"following Job {self.spec.job_name}")
        found = self.existing(state)
        if found:
            return found
        return Decision("run", f"running Job {self.spec.job_name}", replace_uid=state.uid)

    def read_state(self) -> tuple[JobState, dict[str, Any] | None]:
        """The Job of our name and, unless its conditions already say it finished, its pods."""
        job = self.api.read_job(self.spec.namespace, self.spec.job_name)
        pods = self.api.list_pods(self.spec.namespace, job) if job and job_outcome(job) is None else []
        return job_state(job, pods), job

    def plan(self) -> tuple[Decision, dict[str, Any] | None]:
        state, job = self.read_state()
        return self.decide(state), job

    def check(self) -> dict[str, Any]:
        """Check mode: say what would happen, change nothing."""
        decision, _job = self.plan()
        result = self.base_result(decision)
        result["changed"] = decision.action != "skip"
        if decision.action == "skip":
            result["skipped_reason"] = decision.reason
        return self.checked(result, decision)

    # -- running -------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        for _attempt in range(self.MAX_RACE_RETRIES):
            decision, existing = self.plan()
            if decision.action == "skip":
                result = self.base_result(decision)
                result.update(changed=False, skipped_reason=decision.reason)
                return self.skipped(result, decision)
            if decision.action == "attach":
                return self._follow_and_finish(existing, decision)
            job = self._start(decision)
            if job is not None:
                return self._follow_and_finish(job, decision)
        raise JobFailed(
            f"could not start {self.job_words} {self.spec.namespace}/{self.spec.job_name}: "
            "it kept changing underneath (another play running it at the same time?)",
            job_name=self.spec.job_name,
            image=self.spec.image,
        )

    def _start(self, decision: Decision) -> dict[str, Any] | None:
        """Create the Job (replacing a finished one); None means re-plan."""
        ns, name = self.spec.namespace, self.spec.job_name
        if decision.replace_uid:
            # The uid precondition makes sure we delete the finished Job we looked at, never a
            # new one another play just created.
            self.api.delete_job(ns, name, decision.replace_uid)
            self.api.wait_job_gone(ns, name, decision.replace_uid, timeout=60)
        try:
            return self.api.create_job(ns, build_job(self.spec))
        except AlreadyExists:
            return None

    def _follow_and_finish(self, job: dict[str, Any], decision: Decision) -> dict[str, Any]:
        result = self.base_result(decision)
        if not self.spec.wait:
            result["changed"] = decision.action == "run"
            result["job_name"] = job["metadata"]["name"]
            return result
        outcome = self.follow(job)
        finished = outcome.pop("job")
        result.update(outcome)
        return self.finished(result, finished, decision)

    # -- hooks of runners that keep a record ----------------------------------
    def checked(self, result: dict[str, Any], decision: Decision) -> dict[str, Any]:
        return result

    def skipped(self, result: dict[str, Any], decision: Decision) -> dict[str, Any]:
        return result

    def finished(self, result: dict[str, Any], job: dict[str, Any], decision: Decision) -> dict[str, Any]:
        result["changed"] = True  # a Job ran
        return result

    def parse(self, log_text: str) -> dict[str, Any]:
        """What the runner reads out of the output (the migration: applied revisions)."""
        return {}

    # -- following -------------------------------------------------------------
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
                self.heartbeat()
                outcome = job_outcome(current) or pod_outcome(current, pods)
                if outcome is not None:
                    return self._finish(current, pods, outcome, started)
                now = self.monotonic()
                # Woken at least every HEARTBEAT seconds, to renew the run's lock.
                wake = min(deadline - now, HEARTBEAT)
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
                            current, pod, f"Unschedulable for {now - since:.0f}s: {message}", started, "Unschedulable"
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
                            f"the {self.job_words} was deleted while it was running",
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
        result = {
            "job": job,
            "job_name": job["metadata"]["name"],
            "pod_name": pod["metadata"]["name"] if pod else None,
            "exit_code": pod_exit_code(pod),
            "finished_at": (pod_termination(pod) or {}).get("finishedAt"),
            "duration_seconds": round(self.monotonic() - started, 3),
            "logs": tail(log_text, self.spec.log_lines),
            # What the Job says it did (its DIFY_REPORT line), read from the whole output.
            "report": parse_report(log_text),
        }
        result.update(self.parse(log_text))
        return result

    def _fail(self, job: dict[str, Any], pod: dict[str, Any] | None, why: str, started: float, reason: str) -> None:
        spec = self.spec
        log_text = self._logs(pod)
        exit_code = pod_exit_code(pod)
        pod_name = pod["metadata"]["name"] if pod else None
        where = f"Job {spec.namespace}/{job['metadata']['name']}" + (f", pod {pod_name}" if pod_name else "")
        what = "migration" if self.what == "migration" else f"Job {job['metadata']['name']}"
        msg = f"{what} failed ({where}, image {spec.image}): {why}"
        if exit_code is not None:
            msg += f"; container exit code {exit_code}"
        lines = tail(log_text, spec.log_lines)
        if lines:
            msg += "\nlast log lines:\n" + "\n".join(lines)
        raise JobFailed(
            msg,
            reason=reason,
            job_name=job["metadata"]["name"],
            pod_name=pod_name,
            image=spec.image,
            exit_code=exit_code,
            duration_seconds=round(self.monotonic() - started, 3),
            logs=lines,
            **self.parse(log_text),
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

    def base_result(self, decision: Decision) -> dict[str, Any]:
        return {
            "decision": decision.action,
            "msg": decision.reason,
            "job_name": self.spec.job_name,
            "image": self.spec.image,
            "pod_name": None,
            "exit_code": None,
            "duration_seconds": None,
            "logs": [],
            "report": None,
        }
