# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one client layer: how this collection calls and watches the Kubernetes API.

Connections come from kubernetes.core (its auth options, K8S_AUTH_* variables, kubeconfig,
in-cluster config, and its discovery cache). Requests are plain paths with JSON dicts in the
API's own shape (what kubectl prints), so the logic above never sees client models: importing
the typed CoreV1Api/BatchV1Api costs about a second, and deserializing every watch event into
models costs more. The kinds this collection manages are known here, so no discovery request is
needed for them; other kinds (CRDs) are found through kubernetes.core's cached discovery.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any, Callable, Iterator

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import (
    ApiError,
    Conflict,
    Expired,
    NotFound,
)

try:
    from kubernetes.client.rest import ApiException
except ImportError:  # reported by the module or action base class

    class ApiException(Exception):  # type: ignore[no-redef]
        status = 0
        body = None
        reason = None


# (apiVersion, kind) -> (plural, namespaced), for every kind the roles use.
KNOWN_KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "Service"): ("services", True),
    ("v1", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("v1", "Pod"): ("pods", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Event"): ("events", True),
    ("v1", "Namespace"): ("namespaces", False),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("apps/v1", "StatefulSet"): ("statefulsets", True),
    ("apps/v1", "DaemonSet"): ("daemonsets", True),
    ("apps/v1", "ReplicaSet"): ("replicasets", True),
    ("batch/v1", "Job"): ("jobs", True),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("networkpolicies", True),
    ("networking.k8s.io/v1", "Ingress"): ("ingresses", True),
    ("policy/v1", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("storage.k8s.io/v1", "StorageClass"): ("storageclasses", False),
    ("storage.k8s.io/v1", "CSIDriver"): ("csidrivers", False),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("customresourcedefinitions", False),
    ("coordination.k8s.io/v1", "Lease"): ("leases", True),
    # CRDs a setting may use (dify_expose: gateway, dify_metrics_enabled): applied only where the
    # discovery lists their group version; listing them elsewhere finds nothing (404).
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): ("httproutes", True),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("servicemonitors", True),
}

# A watch request ends on the server after this long and is re-established: short enough that
# a silently dropped connection is noticed, long enough to be cheap.
WATCH_SECONDS = 50
RECONNECT_DELAY = 0.5
MAX_RECONNECTS = 20


def api_message(exc: BaseException) -> str:
    """The apiserver's own message of an API error (not the whole HTTP response)."""
    if isinstance(exc, ApiError):
        return str(exc)
    body = getattr(exc, "body", None)
    if body:
        try:
            return json.loads(body).get("message") or str(exc)
        except (ValueError, AttributeError):
            pass
    status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
    return f"{status} {reason}" if status else str(exc)


def _error(exc: BaseException, what: str) -> ApiError:
    status = getattr(exc, "status", None)
    message = f"{what}: {api_message(exc)}"
    body = getattr(exc, "body", None)
    cls = {404: NotFound, 409: Conflict, 410: Expired}.get(status or 0, ApiError)
    return cls(message, status=status, body=body)


def selector_string(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class Kube:
    """Get, list, apply, create, replace, delete, logs and watch over one kubernetes.core client."""

    def __init__(self, dynamic_client: Any) -> None:
        self.client = dynamic_client
        self._kinds: dict[tuple[str, str], tuple[str, bool]] = dict(KNOWN_KINDS)

    # -- paths -----------------------------------------------------------------
    def kind_info(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind; discovery only for kinds not known here."""
        key = (api_version, kind)
        if key not in self._kinds:
            resource = self.client.resources.get(api_version=api_version, kind=kind)
            self._kinds[key] = (resource.name, bool(resource.namespaced))
        return self._kinds[key]

    def namespaced(self, api_version: str, kind: str) -> bool:
        return self.kind_info(api_version, kind)[1]

    def path(self, api_version: str, kind: str, namespace: str | None = None, name: str | None = None) -> str:
        plural, namespaced = self.kind_info(api_version, kind)
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        if namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{plural}"
        return base + (f"/{name}" if name else "")

    # -- requests ----------------------------------------------------------------
    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str | None = None,
        accept: str | None = None,
        timeout: float | None = None,
        what: str = "",
    ) -> Any:
        """One request; the raw response (read it, or stream it). API errors become ApiError."""
        params: dict[str, Any] = {"query_params": list(query or [])}
        if content_type:
            params["content_type"] = content_type
        if accept:
            params["header_params"] = {"Accept": accept}
        if timeout:
            params["_request_timeout"] = (10, timeout)
        try:
            return self.client.request(method, path, body=body, serialize=False, **params)
        except ApiException as exc:
            raise _error(exc, what or f"{method} {path}") from exc

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.call(method, path, **kwargs)
        data = response.data if hasattr(response, "data") else response.read()
        return json.loads(data) if data else {}

    def api_versions(self) -> list[str]:
        """The group versions the cluster serves (GET /apis, one request; the core v1 too)."""
        data = self._json("GET", "/apis", what="reading the API discovery")
        versions = [v["groupVersion"] for g in data.get("groups") or [] for v in g.get("versions") or []]
        return ["v1", *versions]

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self._json("GET", self.path(api_version, kind, namespace, name), what=f"reading {kind} {name}")
        except NotFound:
            return None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[dict[str, dict[str, Any]], str]:
        """The objects by name, and the list's resourceVersion (to watch from)."""
        query = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        data = self._json("GET", self.path(api_version, kind, namespace), query=query, what=f"listing {kind}")
        items = {}
        for item in data.get("items") or []:
            # Items of a list carry no apiVersion/kind; give them theirs.
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
            items[item["metadata"]["name"]] = item
        return items, (data.get("metadata") or {}).get("resourceVersion", "")

    def apply(
        self, obj: dict[str, Any], field_manager: str, force: bool = True, dry_run: bool = False
    ) -> dict[str, Any]:
        """Server-side apply (what `kubectl apply --server-side` sends)."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") if self.namespaced(obj["apiVersion"], obj["kind"]) else None
        query: list[tuple[str, Any]] = [("fieldManager", field_manager), ("force", "true" if force else "false")]
        if dry_run:
            query.append(("dryRun", "All"))
        return self._json(
            "PATCH",
            self.path(obj["apiVersion"], obj["kind"], namespace, meta["name"]),
            body=obj,
            query=query,
            content_type="application/apply-patch+yaml",
            what=f"applying {obj['kind']} {meta['name']}",
        )

    def create(self, obj: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        meta = obj["metadata"]
        namespace = meta.get("namespace") if self.namespaced(obj["apiVersion"], obj["kind"]) else None
        return self._json(
            "POST",
            self.path(obj["apiVersion"], obj["kind"], namespace),
            body=obj,
            query=[("dryRun", "All")] if dry_run else [],
            what=f"creating {obj['kind']} {meta['name']}",
        )

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT (with metadata.resourceVersion: fails with Conflict when someone wrote in between)."""
        meta = obj["metadata"]
        namespace = meta.get("namespace") if self.namespaced(obj["apiVersion"], obj["kind"]) else None
        return self._json(
            "PUT",
            self.path(obj["apiVersion"], obj["kind"], namespace, meta["name"]),
            body=obj,
            what=f"replacing {obj['kind']} {meta['name']}",
        )

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        uid: str | None = None,
        dry_run: bool = False,
    ) -> bool:
        """Delete (in the background); False when it was gone already. With ``uid``, only that very
        object: a Conflict means it is not the one we meant any more."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.call(
                "DELETE",
                self.path(api_version, kind, namespace, name),
                body=body,
                query=[("dryRun", "All")] if dry_run else [],
                what=f"deleting {kind} {name}",
            )
        except NotFound:
            return False
        return True

    def log(self, namespace: str, pod: str, container: str, limit_bytes: int = 4 * 1024 * 1024) -> str:
        response = self.call(
            "GET",
            self.path("v1", "Pod", namespace, pod) + "/log",
            query=[("container", container), ("limitBytes", limit_bytes)],
            accept="text/plain, */*",
            what=f"reading the log of pod {pod}",
        )
        data = response.data if hasattr(response, "data") else response.read()
        return data.decode("utf-8", errors="replace")

    def watch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        resource_version: str,
        timeout: float = WATCH_SECONDS,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Changes after ``resource_version`` as (type, object), BOOKMARKs included, until the
        server ends the watch after ``timeout`` seconds. Raises Expired (410: list again)."""
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", max(1, int(timeout))),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        response = self.call(
            "GET", self.path(api_version, kind, namespace), query=query, timeout=timeout + 15, what=f"watching {kind}"
        )
        try:
            for line in _lines(response):
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    code = obj.get("code")
                    cls = Expired if code == 410 else ApiError
                    raise cls(f"watching {kind}: {obj.get('message') or obj}", status=code)
                yield event["type"], obj
        finally:
            response.release_conn()


def _lines(response: Any) -> Iterator[bytes]:
    """The lines of a streamed response (one JSON event each)."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


class Informer:
    """Changes of several collections merged into one queue, as (name, event type, object).

    Each collection is listed first (ADDED for what exists, DELETED for what vanished since the
    last list) and then watched from exactly that state, in a thread of its own; expired
    resource versions and dropped connections lead to a new list, not to a missed change.
    Unrecoverable errors (401, 403, 404, or too many reconnects) are raised by ``get``.
    """

    def __init__(self, kube: Kube, sleep: Callable[[float], Any] | None = None) -> None:
        self.kube = kube
        self._events: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait

    def watch(self, name: str, api_version: str, kind: str, namespace: str, **selectors: str) -> None:
        thread = threading.Thread(
            target=self.run, args=(name, api_version, kind, namespace, selectors), name=f"watch-{name}", daemon=True
        )
        thread.start()

    def get(self, timeout: float) -> tuple[str, str, dict[str, Any]] | None:
        """The next event, or None when nothing happened within ``timeout`` seconds."""
        try:
            event = self._events.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if isinstance(event, BaseException):
            raise event
        return event

    def close(self) -> None:
        self._stop.set()

    def run(self, name: str, api_version: str, kind: str, namespace: str, selectors: dict[str, str]) -> None:
        """The list-and-watch loop of one collection (a thread's target; public for tests)."""
        known: dict[str, dict[str, Any]] = {}
        version: str | None = None
        failures = 0
        while not self._stop.is_set():
            try:
                if version is None:
                    current, version = self.kube.list(api_version, kind, namespace, **selectors)
                    for gone in sorted(set(known) - set(current)):
                        self._events.put((name, "DELETED", known.pop(gone)))
                    for item_name, item in current.items():
                        known[item_name] = item
                        self._events.put((name, "ADDED", item))
                for event_type, obj in self.kube.watch(
                    api_version, kind, namespace, version, WATCH_SECONDS, **selectors
                ):
                    if self._stop.is_set():
                        return
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event_type == "BOOKMARK":
                        continue
                    item_name = obj["metadata"]["name"]
                    if event_type == "DELETED":
                        known.pop(item_name, None)
                    else:
                        known[item_name] = obj
                    self._events.put((name, event_type, obj))
                failures = 0
            except Expired:
                version = None  # too old: list again
            except Exception as exc:  # connection dropped, apiserver restarting, Forbidden, ...
                if self._stop.is_set():
                    return
                failures += 1
                if getattr(exc, "status", None) in (401, 403, 404) or failures > MAX_RECONNECTS:
                    self._events.put(exc)
                    return
                version = None
                self._sleep(RECONNECT_DELAY)


def wait_until(
    kube: Kube,
    api_version: str,
    kind: str,
    namespace: str | None,
    done: Callable[[dict[str, dict[str, Any]]], bool],
    timeout: float,
    monotonic: Callable[[], float] = time.monotonic,
    **selectors: str,
) -> tuple[bool, dict[str, dict[str, Any]]]:
    """List, then watch, until ``done(objects by name)``; (whether it became true, the objects)."""
    deadline = monotonic() + timeout
    failures = 0
    while True:
        current, version = kube.list(api_version, kind, namespace, **selectors)
        if done(current):
            return True, current
        try:
            while True:
                remaining = deadline - monotonic()
                if remaining <= 0:
                    return False, current
                for event_type, obj in kube.watch(
                    api_version, kind, namespace, version, min(remaining, WATCH_SECONDS), **selectors
                ):
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event_type == "BOOKMARK":
                        continue
                    if event_type == "DELETED":
                        current.pop(obj["metadata"]["name"], None)
                    else:
                        current[obj["metadata"]["name"]] = dict(obj, apiVersion=api_version, kind=kind)
                    if done(current):
                        return True, current
                    if monotonic() >= deadline:
                        return False, current
        except Expired:
            continue  # list again
        except ApiError:
            raise  # Forbidden, not found: the caller says what it waited for
        except Exception:  # a dropped connection: list again, a few times
            failures += 1
            if failures > MAX_RECONNECTS or monotonic() >= deadline:
                raise
            time.sleep(RECONNECT_DELAY)
