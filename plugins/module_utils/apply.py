# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a batch of objects with server-side apply, calling the API only where something differs.

One run takes a whole phase: one LIST per kind finds what exists; every object carries a hash of
its rendered form (annotation dify-ce.kubernetes/applied-hash); an object is left alone only
when the live hash equals the rendered one *and* the live state still holds every rendered
field (so a hand edit is taken back). Anything else is sent with server-side apply under our
field manager, which also drops fields we no longer set: a setting removed from the inventory
leaves the cluster. Readiness is followed with the watch API; objects a phase no longer renders
are pruned by label. Plain functions over dicts; the API sits behind ``ApplyApi`` (k8s.Kube).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, TypeVar

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import ApplyFailed, DifyError, NotFound
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.k8s import api_message, wait_until

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    "": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip


# ----------------------------------------------------------------------------- comparison


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity ("500m", "1Gi", 2) as a number, or None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = _QUANTITY.match(value)
        if match:
            return float(match.group(1)) * _SUFFIX[match.group(2) or ""]
    return None


def same_value(desired: Any, live: Any) -> bool:
    if desired == live:
        return True
    # The apiserver canonicalises quantities ("0.5" -> "500m", "1024Mi" -> "1Gi").
    a, b = quantity(desired), quantity(live)
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)


def contains(desired: Any, live: Any) -> bool:
    """Whether the live object already has every field (and value) of the desired one.

    Fields the apiserver or controllers add (defaults, status, clusterIP) do not matter; a field
    we set that differs does. Lists must match element by element. This alone cannot see a
    field we stopped setting: the applied hash does (``unchanged``).
    """
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        for key, value in desired.items():
            if value is None:
                continue
            if key not in live:
                # An empty map or list we send is not stored by the apiserver.
                if value in ({}, []):
                    continue
                return False
            if not contains(value, live[key]):
                return False
        return True
    if isinstance(desired, list):
        return isinstance(live, list) and len(desired) == len(live) and all(map(contains, desired, live))
    return same_value(desired, live)


def rendered_hash(obj: dict[str, Any]) -> str:
    """A hash of the object as rendered (without its own hash annotation)."""
    bare = copy.deepcopy(obj)
    meta = bare.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    annotations.pop(names.APPLIED_HASH, None)
    if not annotations:
        meta.pop("annotations", None)
    text = json.dumps(bare, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def stamped(obj: dict[str, Any]) -> dict[str, Any]:
    """The object with the hash of its rendered form in an annotation."""
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    meta["annotations"] = dict(meta.get("annotations") or {}, **{names.APPLIED_HASH: rendered_hash(obj)})
    return out


def unchanged(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """Nothing to send: the live object was applied from this very rendering (same hash, so no
    field was added or removed since) and still holds every rendered field (no hand edit)."""
    if live is None:
        return False
    want = ((desired.get("metadata") or {}).get("annotations") or {}).get(names.APPLIED_HASH)
    have = ((live.get("metadata") or {}).get("annotations") or {}).get(names.APPLIED_HASH)
    return want is not None and want == have and contains(desired, live)


# ----------------------------------------------------------------------------- readiness


def ready(obj: dict[str, Any]) -> tuple[bool, str]:
    """Whether a workload finished rolling out, a LoadBalancer has an address (other kinds are
    ready once applied)."""
    kind = obj.get("kind")
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    if kind == "Service":
        if spec.get("type") != "LoadBalancer":
            return True, ""
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        return bool(ingress), "no LoadBalancer address yet (is MetalLB running, with a pool?)"
    if kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        return True, ""
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return False, "the controller has not seen the change yet"
    if kind == "DaemonSet":
        want = status.get("desiredNumberScheduled", 0)
        done = status.get("updatedNumberScheduled", 0) == want and status.get("numberReady", 0) == want
        return done, f"{status.get('numberReady', 0)}/{want} ready"
    want = spec.get("replicas", 1)
    updated, ready_count = status.get("updatedReplicas", 0), status.get("readyReplicas", 0)
    if kind == "Deployment":
        total = status.get("replicas", 0)
        done = updated == want and ready_count == want and status.get("availableReplicas", 0) == want and total == want
        return done, f"{ready_count}/{want} ready, {updated} updated, {total} total"
    rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    if rolling and status.get("updateRevision") and status.get("currentRevision") != status.get("updateRevision"):
        return False, f"{ready_count}/{want} ready, rolling out revision {status.get('updateRevision')}"
    # status.replicas counts pods still terminating: scaled to none, it is 0 once the last is gone.
    total = status.get("replicas", 0)
    done = ready_count == want and updated == want and total == want
    return done, f"{ready_count}/{want} ready, {updated} updated, {total} total"


# ----------------------------------------------------------------------------- the API side


class ApplyApi(Protocol):
    """The calls the applier needs (k8s.Kube implements them)."""

    def namespaced(self, api_version: str, kind: str) -> bool: ...

    def list(self, api_version: str, kind: str, namespace: str | None, label_selector: str | None = None
             ) -> tuple[dict[str, dict[str, Any]], str]: ...  # fmt: skip

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None: ...

    def api_versions(self) -> list[str]: ...

    def apply(self, obj: dict[str, Any], field_manager: str, force: bool, dry_run: bool) -> dict[str, Any]: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None, dry_run: bool = False) -> bool: ...

    def watch(self, api_version: str, kind: str, namespace: str | None, resource_version: str, timeout: float
              ) -> Iterator[tuple[str, dict[str, Any]]]: ...  # fmt: skip


@dataclass
class Outcome:
    changed: bool = False
    objects: list[dict[str, Any]] = field(default_factory=list)

    def note(self, obj: dict[str, Any], action: str) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        entry: dict[str, Any] = {"kind": obj.get("kind", ""), "name": meta.get("name", ""), "action": action}
        if meta.get("namespace"):
            entry["namespace"] = meta["namespace"]
        self.objects.append(entry)
        if action != "unchanged":
            self.changed = True
        return entry


Key = tuple  # (apiVersion, kind, namespace)
T = TypeVar("T")

# Requests in flight at once within one kind (helm sends its creates concurrently as well): the
# apiserver answers server-side applies in parallel, and a batch of 20 objects no longer costs 20
# round trips one after the other. Kinds still go one after the other, in the order rendered.
CONCURRENCY = 4


def _key(obj: dict[str, Any]) -> Key:
    return obj["apiVersion"], obj["kind"], (obj.get("metadata") or {}).get("namespace")


class Applier:
    """Apply one batch: prune, then apply what differs, then wait for workloads."""

    def __init__(self, api: ApplyApi, field_manager: str, force: bool = True, check_mode: bool = False,
                 monotonic: Callable[[], float] = time.monotonic, concurrency: int = CONCURRENCY,
                 heartbeat: Callable[[], None] | None = None) -> None:  # fmt: skip
        self.api = api
        # Called while waiting (renews the run's lock, lock.Heartbeat).
        self.heartbeat = heartbeat or (lambda: None)
        self.field_manager = field_manager
        self.force = force
        self.check_mode = check_mode
        self.monotonic = monotonic
        self.concurrency = concurrency

    def _send(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.api.apply(obj, self.field_manager, self.force, self.check_mode)

    def _each(self, calls: list[Callable[[], T]]) -> list[T]:
        """The results of ``calls``, in their order, made up to ``concurrency`` at a time. Every
        call finishes before the first failure (in the calls' order) is raised."""
        if self.concurrency <= 1 or len(calls) <= 1:
            return [call() for call in calls]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(calls))) as pool:
            futures = [pool.submit(call) for call in calls]
            return [future.result() for future in futures]

    def run(
        self,
        definitions: list[dict[str, Any]],
        wait: bool = False,
        timeout: float = 600,
        prune_kinds: list[dict[str, str]] | None = None,
        prune_selector: str | None = None,
        prune_namespace: str | None = None,
    ) -> Outcome:
        outcome = Outcome()
        for obj in definitions:
            for required in ("apiVersion", "kind"):
                if not obj.get(required):
                    raise ApplyFailed(f"an object has no {required}: {obj.get('metadata', {}).get('name')}")
            if not (obj.get("metadata") or {}).get("name"):
                raise ApplyFailed(f"a {obj['kind']} has no metadata.name")
        desired = [stamped(obj) for obj in definitions]

        groups: dict[Key, list[dict[str, Any]]] = {}
        for obj in desired:
            groups.setdefault(_key(obj), []).append(obj)

        # Existing objects: one LIST per kind and namespace (a GET for cluster-scoped kinds).
        # Discovery (for kinds not known) happens here, before any request runs in a thread.
        scoped = {key: self.api.namespaced(key[0], key[1]) for key in groups}

        def read(key: Key, objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
            api_version, kind, namespace = key
            if scoped[key]:
                return self.api.list(api_version, kind, namespace)[0]
            found = {}
            for obj in objs:
                existing = self.api.get(api_version, kind, obj["metadata"]["name"], None)
                if existing:
                    found[obj["metadata"]["name"]] = existing
            return found

        live: dict[Key, dict[str, dict[str, Any]]] = dict(
            zip(groups, self._each([lambda key=key, objs=objs: read(key, objs) for key, objs in groups.items()]))
        )

        if prune_kinds and prune_selector:
            self._prune(desired, prune_kinds, prune_selector, prune_namespace, outcome, wait, timeout)

        # A dry run cannot apply into a namespace that does not exist yet (a first install in
        # check mode): such objects are reported as created without the server's dry run.
        absent = self._absent_namespaces(groups) if self.check_mode else set()

        applied: dict[Key, dict[str, dict[str, Any]]] = {}
        entries: dict[tuple[Key, str], dict[str, Any]] = {}
        for key, objs in groups.items():
            same = {o["metadata"]["name"] for o in objs if unchanged(o, live[key].get(o["metadata"]["name"]))}
            to_send = [] if key[2] in absent else [o for o in objs if o["metadata"]["name"] not in same]
            sent = self._each([lambda obj=obj: self._send(obj) for obj in to_send])
            results = {obj["metadata"]["name"]: result for obj, result in zip(to_send, sent)}
            for obj in objs:
                name = obj["metadata"]["name"]
                current = live[key].get(name)
                if name in same:
                    entries[key, name] = outcome.note(obj, "unchanged")
                    applied.setdefault(key, {})[name] = current
                    continue
                if name not in results:
                    outcome.note(obj, "created")  # into a namespace that a dry run cannot see yet
                    continue
                result = results[name]
                if current is None:
                    action = "created"
                elif (result.get("metadata") or {}).get("resourceVersion") != current["metadata"].get(
                    "resourceVersion"
                ):
                    action = "configured"
                else:
                    action = "unchanged"
                entries[key, name] = outcome.note(obj, action)
                applied.setdefault(key, {})[name] = result

        if wait and not self.check_mode:
            finished = self._wait(applied, timeout)
            for (key, name), entry in entries.items():
                self._describe(entry, finished.get(key, {}).get(name))
        return outcome

    @staticmethod
    def _describe(entry: dict[str, Any], obj: dict[str, Any] | None) -> None:
        """What the report needs of an object that was waited for (the LoadBalancer address)."""
        if obj and obj.get("kind") == "Service" and (obj.get("spec") or {}).get("type") == "LoadBalancer":
            entry["load_balancer"] = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []

    def _absent_namespaces(self, groups: dict[Key, list[dict[str, Any]]]) -> set[str]:
        namespaces = {namespace for (_api_version, _kind, namespace) in groups if namespace}
        return {ns for ns in sorted(namespaces) if self.api.get("v1", "Namespace", ns, None) is None}

    def _prune(
        self,
        desired: list[dict[str, Any]],
        prune_kinds: list[dict[str, str]],
        selector: str,
        namespace: str | None,
        outcome: Outcome,
        wait: bool = False,
        timeout: float = 600,
    ) -> None:
        """Kind by kind, in the order given; with ``wait``, each kind's deleted objects are gone
        before the next kind is pruned (an uninstall removes the NetworkPolicies last)."""
        wanted = {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in desired}
        deadline = self.monotonic() + timeout
        for item in prune_kinds:
            api_version, kind = item["api_version"], item["kind"]
            label_selector = ",".join(part for part in (selector, item.get("label_selector")) if part)
            try:
                existing, _version = self.api.list(api_version, kind, namespace, label_selector=label_selector)
            except NotFound:
                continue  # a kind the cluster does not serve (a CRD not installed): nothing of it to prune
            deleted: set[str] = set()
            for name, obj in sorted(existing.items()):
                if (api_version, kind, name) in wanted:
                    continue
                self.api.delete(api_version, kind, name, namespace, dry_run=self.check_mode)
                outcome.note(dict(obj, apiVersion=api_version, kind=kind), "deleted")
                deleted.add(name)
            if wait and deleted and not self.check_mode:
                self._follow(
                    (api_version, kind, namespace),
                    deleted,
                    lambda _name, obj: obj is None,
                    deadline,
                    timeout,
                    lambda pending, kind=kind: "the deletion of " + ", ".join(f"{kind} {n}" for n in sorted(pending)),
                )

    def _follow(
        self,
        key: Key,
        names_: set[str],
        done: Callable[[str, dict[str, Any] | None], bool],
        deadline: float,
        timeout: float,
        describe: Callable[[dict[str, dict[str, Any]]], str],
    ) -> dict[str, dict[str, Any]]:
        """Until ``done`` holds for every name (list, then watch from exactly there)."""
        api_version, kind, namespace = key

        def all_done(objs: dict[str, dict[str, Any]]) -> bool:
            self.heartbeat()
            return all(done(n, objs.get(n)) for n in names_)

        ok, current = wait_until(
            self.api,
            api_version,
            kind,
            namespace,
            all_done,
            max(deadline - self.monotonic(), 0.0),
            monotonic=self.monotonic,
        )
        if not ok:
            pending = sorted(n for n in names_ if not done(n, current.get(n)))
            raise ApplyFailed(
                f"timed out after {timeout:g}s waiting for {describe({n: current.get(n) for n in pending})}",
                not_ready=pending,
            )
        return current

    def _wait(self, applied: dict[Key, dict[str, dict[str, Any]]], timeout: float) -> dict[Key, dict[str, Any]]:
        deadline = self.monotonic() + timeout
        finished: dict[Key, dict[str, Any]] = {}
        for key, objs in applied.items():
            kind = key[1]
            if all(ready(dict(obj, kind=kind))[0] for obj in objs.values()):
                finished[key] = objs
                continue

            def done(name: str, obj: dict[str, Any] | None, kind: str = kind) -> bool:
                return obj is not None and ready(dict(obj, kind=kind))[0]

            def describe(pending: dict[str, Any], kind: str = kind, objs: dict = objs) -> str:
                return "the rollout: " + " | ".join(self._state(kind, name, obj or objs[name])
                                                    for name, obj in sorted(pending.items()))  # fmt: skip

            finished[key] = self._follow(key, set(objs), done, deadline, timeout, describe)
        return finished

    @staticmethod
    def _state(kind: str, name: str, obj: dict[str, Any]) -> str:
        conditions = [
            f"{c.get('type')}={c.get('status')}" + (f" ({c.get('message')})" if c.get("message") else "")
            for c in (obj.get("status") or {}).get("conditions") or []
        ]
        return f"{kind} {name}: {ready(dict(obj, kind=kind))[1]}" + (f"; {'; '.join(conditions)}" if conditions else "")


# The kind of the read that lists what the cluster serves (read_all).
DISCOVERY = "APIGroupList"


def read_all(api: ApplyApi, reads: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Several reads in one go, each as kubernetes.core.k8s_info returns it: ``{"resources": [...]}``.

    A read with a name GETs that object (missing: no resources); without one it LISTs the kind
    (in the namespace, if given, filtered by the label selector); kind APIGroupList reads the
    discovery: one resource per group version served ({"groupVersion": ...}). Errors name the read.
    """
    found: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for read in reads:
        api_version, kind, name = read["api_version"], read["kind"], read.get("name")
        namespace = read.get("namespace")
        try:
            if kind == DISCOVERY:
                resources = [{"groupVersion": version} for version in api.api_versions()]
            elif name:
                obj = api.get(api_version, kind, name, namespace)
                resources = [obj] if obj else []
            else:
                items, _version = api.list(api_version, kind, namespace, read.get("label_selector"))
                resources = [items[item_name] for item_name in sorted(items)]
        except Exception as exc:
            where = f" in namespace {namespace}" if namespace else ""
            message = api_message(exc)
            if isinstance(exc, DifyError) and ": " in message:
                message = message.split(": ", 1)[1]  # the client layer's own "reading X:" prefix
            raise ApplyFailed(f"reading {kind} {name or '(all)'}{where} failed: {message}", read=read["id"]) from exc
        found[read["id"]] = {"resources": resources}
    return found


def apply_with(kube: Any, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """dify_apply's work from its validated options (the module and the action plugin share it)."""
    from ansible_collections.dify_ce.kubernetes.plugins.module_utils.lock import heartbeat

    applier = Applier(kube, params["field_manager"], params["force_conflicts"], check_mode,
                      heartbeat=heartbeat(kube, params, check_mode))  # fmt: skip
    outcome = applier.run(
        params["definitions"],
        wait=params["wait"],
        timeout=params["wait_timeout"],
        prune_kinds=params["prune_kinds"],
        prune_selector=params["prune_selector"],
        prune_namespace=params["prune_namespace"],
    )
    return {"changed": outcome.changed, "objects": outcome.objects}
