# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a batch of objects with server-side apply, calling the API only where something differs.

kubernetes.core's k8s module reads every object and then patches it (two requests per object,
a third to wait), one module run per task. Here one run takes a whole phase: one LIST per kind
finds what exists, an object whose live state already contains every field we manage is left
alone, only the others are patched (server-side apply, our field manager), and readiness is
followed with the watch API instead of polling. Objects that a phase no longer renders can be
pruned by label. The logic is plain functions over dicts; the API sits behind ``ApplyApi``.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job_client import api_message

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
_SUFFIX = {
    "": 1.0, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip


class ApplyError(Exception):
    """Applying or waiting failed; ``details`` goes into the module result."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.details = details


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
    we set that differs does. Lists must match element by element.
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


# ----------------------------------------------------------------------------- readiness


def ready(obj: dict[str, Any]) -> tuple[bool, str]:
    """Whether a workload finished rolling out (other kinds are ready once applied)."""
    kind = obj.get("kind")
    if kind not in ("Deployment", "StatefulSet", "DaemonSet"):
        return True, ""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
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
    return ready_count == want and updated == want, f"{ready_count}/{want} ready, {updated} updated"


# ----------------------------------------------------------------------------- the API side


class ApplyApi(Protocol):
    """The calls the applier needs (implemented by ApplyClient below)."""

    def namespaced(self, api_version: str, kind: str) -> bool: ...

    def list(self, api_version: str, kind: str, namespace: str | None, label_selector: str | None = None
             ) -> tuple[dict[str, dict[str, Any]], str]: ...  # fmt: skip

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None: ...

    def apply(self, obj: dict[str, Any], field_manager: str, force: bool, dry_run: bool) -> dict[str, Any]: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None, dry_run: bool) -> None: ...

    def watch(self, api_version: str, kind: str, namespace: str | None, resource_version: str, timeout: float
              ) -> Iterator[tuple[str, dict[str, Any]]]: ...  # fmt: skip


@dataclass
class Outcome:
    changed: bool = False
    objects: list[dict[str, str]] = field(default_factory=list)

    def note(self, obj: dict[str, Any], action: str) -> None:
        meta = obj.get("metadata") or {}
        entry = {"kind": obj.get("kind", ""), "name": meta.get("name", ""), "action": action}
        if meta.get("namespace"):
            entry["namespace"] = meta["namespace"]
        self.objects.append(entry)
        if action not in ("unchanged",):
            self.changed = True


def _key(obj: dict[str, Any]) -> tuple[str, str, str | None]:
    return obj["apiVersion"], obj["kind"], (obj.get("metadata") or {}).get("namespace")


class Applier:
    """Apply one batch: prune, then apply what differs, then wait for workloads."""

    def __init__(self, api: ApplyApi, field_manager: str, force: bool = True, check_mode: bool = False,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.api = api
        self.field_manager = field_manager
        self.force = force
        self.check_mode = check_mode
        self.monotonic = monotonic

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
                    raise ApplyError(f"an object has no {required}: {obj.get('metadata', {}).get('name')}")
            if not (obj.get("metadata") or {}).get("name"):
                raise ApplyError(f"a {obj['kind']} has no metadata.name")

        groups: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
        for obj in definitions:
            groups.setdefault(_key(obj), []).append(obj)

        # Existing objects: one LIST per kind and namespace (a GET for cluster-scoped kinds).
        live: dict[tuple[str, str, str | None], dict[str, dict[str, Any]]] = {}
        for key, objs in groups.items():
            api_version, kind, namespace = key
            if self.api.namespaced(api_version, kind):
                live[key] = self.api.list(api_version, kind, namespace)[0]
            else:
                found = {}
                for obj in objs:
                    existing = self.api.get(api_version, kind, obj["metadata"]["name"], None)
                    if existing:
                        found[obj["metadata"]["name"]] = existing
                live[key] = found

        if prune_kinds and prune_selector:
            self._prune(definitions, prune_kinds, prune_selector, prune_namespace, outcome)

        # A dry run cannot apply into a namespace that does not exist yet (a first install in
        # check mode): such objects are reported as created without the server's dry run.
        absent = self._absent_namespaces(groups) if self.check_mode else set()

        applied: dict[tuple[str, str, str | None], dict[str, dict[str, Any]]] = {}
        for key, objs in groups.items():
            for obj in objs:
                name = obj["metadata"]["name"]
                current = live[key].get(name)
                if current is not None and contains(obj, current):
                    outcome.note(obj, "unchanged")
                    applied.setdefault(key, {})[name] = current
                    continue
                if key[2] in absent:
                    outcome.note(obj, "created")
                    continue
                result = self.api.apply(obj, self.field_manager, self.force, self.check_mode)
                if current is None:
                    outcome.note(obj, "created")
                elif (result.get("metadata") or {}).get("resourceVersion") != current["metadata"].get(
                    "resourceVersion"
                ):
                    outcome.note(obj, "configured")
                else:
                    outcome.note(obj, "unchanged")
                applied.setdefault(key, {})[name] = result

        if wait and not self.check_mode:
            self._wait(applied, timeout)
        return outcome

    def _absent_namespaces(self, groups: dict[tuple[str, str, str | None], list[dict[str, Any]]]) -> set[str]:
        namespaces = {namespace for (_api_version, _kind, namespace) in groups if namespace}
        return {ns for ns in sorted(namespaces) if self.api.get("v1", "Namespace", ns, None) is None}

    def _prune(
        self,
        definitions: list[dict[str, Any]],
        prune_kinds: list[dict[str, str]],
        selector: str,
        namespace: str | None,
        outcome: Outcome,
    ) -> None:
        wanted = {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in definitions}
        for item in prune_kinds:
            existing, _version = self.api.list(item["api_version"], item["kind"], namespace, label_selector=selector)
            for name, obj in sorted(existing.items()):
                if (item["api_version"], item["kind"], name) in wanted:
                    continue
                self.api.delete(item["api_version"], item["kind"], name, namespace, self.check_mode)
                outcome.note(dict(obj, apiVersion=item["api_version"], kind=item["kind"]), "deleted")

    def _wait(self, applied: dict[tuple[str, str, str | None], dict[str, dict[str, Any]]], timeout: float) -> None:
        deadline = self.monotonic() + timeout
        for key, objs in applied.items():
            api_version, kind, namespace = key
            if not any(not ready(dict(obj, kind=kind))[0] for obj in objs.values()):
                continue
            while True:
                # The current state, then changes from exactly there: no transition is missed,
                # whatever happened between the apply and now.
                current, version = self.api.list(api_version, kind, namespace)
                pending = {
                    name: current.get(name, obj)
                    for name, obj in objs.items()
                    if not ready(dict(current.get(name, obj), kind=kind))[0]
                }
                if not pending:
                    break
                remaining = deadline - self.monotonic()
                if remaining <= 0:
                    self._timeout(kind, pending, timeout)
                for event_type, obj in self.api.watch(api_version, kind, namespace, version, remaining):
                    name = obj["metadata"]["name"]
                    if name in pending and event_type != "DELETED":
                        pending[name] = obj
                        if ready(dict(obj, kind=kind))[0]:
                            del pending[name]
                    if not pending or self.monotonic() >= deadline:
                        break
                if not pending:
                    break

    @staticmethod
    def _timeout(kind: str, pending: dict[str, dict[str, Any]], timeout: float) -> None:
        states = []
        for name, obj in sorted(pending.items()):
            conditions = [
                f"{c.get('type')}={c.get('status')}" + (f" ({c.get('message')})" if c.get("message") else "")
                for c in (obj.get("status") or {}).get("conditions") or []
            ]
            states.append(
                f"{kind} {name}: {ready(dict(obj, kind=kind))[1]}"
                + (f"; {'; '.join(conditions)}" if conditions else "")
            )
        raise ApplyError(
            f"timed out after {timeout:g}s waiting for the rollout: " + " | ".join(states),
            not_ready=sorted(pending),
        )


def read_all(api: ApplyApi, reads: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Several reads in one go, each as kubernetes.core.k8s_info returns it: ``{"resources": [...]}``.

    A read with a name GETs that object (missing: no resources); without one it LISTs the kind
    (in the namespace, if given, filtered by the label selector). Errors name the read.
    """
    found: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for read in reads:
        api_version, kind, name = read["api_version"], read["kind"], read.get("name")
        namespace = read.get("namespace")
        try:
            if name:
                obj = api.get(api_version, kind, name, namespace)
                resources = [obj] if obj else []
            else:
                items, _version = api.list(api_version, kind, namespace, read.get("label_selector"))
                resources = [items[item_name] for item_name in sorted(items)]
        except Exception as exc:
            where = f" in namespace {namespace}" if namespace else ""
            raise ApplyError(
                f"reading {kind} {name or '(all)'}{where} failed: {api_message(exc)}", read=read["id"]
            ) from exc
        found[read["id"]] = {"resources": resources}
    return found


def _rv(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


# ----------------------------------------------------------------------------- the real client


class ApplyClient:
    """ApplyApi over kubernetes.core's dynamic client (its discovery cache and auth)."""

    def __init__(self, dynamic_client: Any) -> None:
        self.client = dynamic_client
        self._resources: dict[tuple[str, str], Any] = {}

    def _resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = self.client.resources.get(api_version=api_version, kind=kind)
        return self._resources[key]

    def namespaced(self, api_version: str, kind: str) -> bool:
        return bool(self._resource(api_version, kind).namespaced)

    def list(self, api_version, kind, namespace, label_selector=None):  # noqa: ANN001, ANN201
        result = self.client.get(self._resource(api_version, kind), namespace=namespace, label_selector=label_selector)
        data = result.to_dict()
        return {item["metadata"]["name"]: item for item in data.get("items") or []}, data["metadata"]["resourceVersion"]

    def get(self, api_version, kind, name, namespace):  # noqa: ANN001, ANN201
        from kubernetes.dynamic.exceptions import NotFoundError

        try:
            return self.client.get(self._resource(api_version, kind), name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def apply(self, obj, field_manager, force, dry_run):  # noqa: ANN001, ANN201
        resource = self._resource(obj["apiVersion"], obj["kind"])
        params = {"field_manager": field_manager, "force_conflicts": force}
        if dry_run:
            params["dry_run"] = "All"
        namespace = obj["metadata"].get("namespace") if resource.namespaced else None
        return self.client.server_side_apply(resource, body=obj, namespace=namespace, **params).to_dict()

    def delete(self, api_version, kind, name, namespace, dry_run):  # noqa: ANN001, ANN201
        from kubernetes.dynamic.exceptions import NotFoundError

        params = {"propagation_policy": "Background"}
        if dry_run:
            params["dry_run"] = "All"
        try:
            self.client.delete(self._resource(api_version, kind), name=name, namespace=namespace, **params)
        except NotFoundError:
            pass

    def watch(self, api_version, kind, namespace, resource_version, timeout):  # noqa: ANN001, ANN201
        from kubernetes.client.rest import ApiException

        stream = self.client.watch(
            self._resource(api_version, kind), namespace=namespace, resource_version=resource_version,
            timeout=max(1, min(int(timeout), 60)),
        )  # fmt: skip
        try:
            for event in stream:
                if event.get("type") == "ERROR":  # the caller lists again and watches from there
                    return
                yield event["type"], event.get("raw_object") or {}
        except ApiException as exc:
            if exc.status != 410:  # 410: resource version expired - list again
                raise
