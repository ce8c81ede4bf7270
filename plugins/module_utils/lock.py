# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One run per namespace at a time: a coordination.k8s.io Lease, as Kubernetes' own controllers
elect a leader.

A run takes the Lease after prepare validated its inputs and before its first change, renews it
while it works (every module of the collection renews it in its waits: see ``Heartbeat``), and
releases it at the end. A second run fails at once naming the holder and how long ago it renewed,
or waits for it (``wait``). A holder that died is taken over once its lease expired, or at once
when it ran on this very host and its process is gone.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import Conflict, DifyError, NotFound

LEASE_SECONDS = 120
# Renew when a quarter of the lease has passed: three renewals may fail before it expires.
RENEW_AFTER = LEASE_SECONDS / 4


class LockHeld(DifyError):
    """Another run holds the namespace."""


class LockLost(DifyError):
    """This run's lease expired and another run took the namespace."""


class LeaseApi(Protocol):
    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]: ...


def identity(task_vars: dict[str, Any] | None = None) -> str:
    """Who runs: the AWX job and user when AWX runs it, else user@host; always the host and the
    process of ansible-playbook (the parent of the worker that runs a task), which stays the same
    for every task of the run."""
    task_vars = task_vars or {}
    host = socket.gethostname()
    pid = os.getppid()
    job = task_vars.get("awx_job_id") or task_vars.get("tower_job_id")
    if job:
        who = f"AWX job {job}" + (f" ({task_vars.get('awx_user_name')})" if task_vars.get("awx_user_name") else "")
    else:
        who = f"{os.environ.get('USER') or os.environ.get('LOGNAME') or 'someone'}@{host}"
    return f"{who}, ansible-playbook pid {pid} on {host}"


def _micro(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> float | None:
    if not text:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    return None


def _gone_from_this_host(holder: str) -> bool:
    """Whether the holder is an ansible-playbook of this host whose process has ended."""
    marker = " ansible-playbook pid "
    if marker not in holder:
        return False
    pid_text, _sep, host = holder.rsplit(marker, 1)[1].partition(" on ")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    return not os.path.exists(f"/proc/{pid_text}")


@dataclass
class NamespaceLock:
    api: LeaseApi
    namespace: str
    holder: str
    seconds: int = LEASE_SECONDS
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Any] = time.sleep
    details: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return names.LOCK

    def _lease(self, current: dict[str, Any] | None, now: float) -> dict[str, Any]:
        spec = dict((current or {}).get("spec") or {})
        mine = spec.get("holderIdentity") == self.holder
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if mine or current is None else 1)
        spec.update(
            holderIdentity=self.holder,
            leaseDurationSeconds=self.seconds,
            acquireTime=spec.get("acquireTime") if mine else _micro(now),
            renewTime=_micro(now),
            leaseTransitions=transitions,
        )
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "labels": names.labels("lock")}
        if self.details:
            meta["annotations"] = {names.ANNOTATION_PREFIX + k: v for k, v in self.details.items()}
        if current is not None:
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}

    def acquire(self, wait: float = 0) -> dict[str, Any]:
        """Take the namespace (again, when this run holds it already). Returns what happened:
        ``waited`` seconds, ``took_over`` (the holder that died), ``held_since``."""
        started = self.clock()
        took_over = ""
        while True:
            now = self.clock()
            current = self.api.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
            spec = (current or {}).get("spec") or {}
            holder = spec.get("holderIdentity") or ""
            renewed = _parse(spec.get("renewTime")) or 0
            expired = now > renewed + int(spec.get("leaseDurationSeconds") or self.seconds)
            if current is None or not holder or holder == self.holder or expired or _gone_from_this_host(holder):
                if holder and holder != self.holder:
                    took_over = holder
                try:
                    body = self._lease(current, now)
                    self.api.create(body) if current is None else self.api.replace(body)
                except (Conflict, NotFound):
                    continue  # another run got in between: look again
                return {"waited": round(now - started, 1), "took_over": took_over, "holder": self.holder}
            if now - started >= wait:
                ago = round(now - renewed)
                raise LockHeld(
                    f"Nothing was changed. Another run works on namespace {self.namespace}: {holder} (Lease "
                    f"{self.name}, renewed {ago}s ago, taken at {spec.get('acquireTime')}). Wait for it to finish, "
                    f"or set dify_lock_wait (seconds) to wait for it. A run that died frees the namespace when its "
                    f"lease expires ({self.seconds}s after its last renewal).",
                    holder=holder,
                    renewed_seconds_ago=ago,
                )
            self.sleep(min(2.0, max(wait - (now - started), 0.1)))

    def renew(self) -> None:
        current = self.api.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
        holder = ((current or {}).get("spec") or {}).get("holderIdentity")
        if current is None or holder != self.holder:
            raise LockLost(
                f"This run lost namespace {self.namespace}: its lease {self.name} "
                + (f"is held by {holder}" if holder else "is gone")
                + ". It stopped before changing anything else; run it again when the other run finished."
            )
        try:
            self.api.replace(self._lease(current, self.clock()))
        except Conflict:
            self.renew()

    def release(self) -> bool:
        """Give the namespace up (only when this run holds it); True when released."""
        current = self.api.get("coordination.k8s.io/v1", "Lease", self.name, self.namespace)
        spec = (current or {}).get("spec") or {}
        if current is None or spec.get("holderIdentity") != self.holder:
            return False
        body = self._lease(current, self.clock())
        body["spec"]["holderIdentity"] = ""
        body["spec"].pop("renewTime", None)
        try:
            self.api.replace(body)
        except Conflict:
            return self.release()
        return True


class Heartbeat:
    """Renews this run's lease from inside long waits (a migration, a rollout): call it often,
    it renews when due. Without a lock (a module used on its own) it does nothing."""

    def __init__(self, lock: NamespaceLock | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.lock = lock
        self.clock = clock
        self.last = clock()

    def __call__(self) -> None:
        if self.lock is None or self.clock() - self.last < RENEW_AFTER:
            return
        self.lock.renew()
        self.last = self.clock()


def from_option(api: LeaseApi, option: dict[str, Any] | None) -> Heartbeat:
    """The heartbeat of a module's ``lock`` option ({namespace, holder}), renewing once now."""
    if not option or not option.get("holder"):
        return Heartbeat()
    heartbeat = Heartbeat(NamespaceLock(api, option["namespace"], option["holder"]))
    heartbeat.lock.renew()  # type: ignore[union-attr]
    return heartbeat


def basis_of(found: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """What a run decided on, as a fingerprint of the objects read (their resourceVersions): taken
    again after the lock, a different value means another run changed the installation since."""
    import hashlib
    import json

    parts = sorted(
        (read_id, sorted((o["metadata"].get("name", ""), o["metadata"].get("resourceVersion", ""))
                         for o in (found.get(read_id) or {}).get("resources") or []))
        for read_id in found
    )  # fmt: skip
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def heartbeat(api: LeaseApi, params: dict[str, Any], check_mode: bool = False) -> Heartbeat | None:
    """The heartbeat of a module's validated options (none in check mode, which changes nothing)."""
    return None if check_mode else from_option(api, params.get("lock"))
