# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Kubernetes side of the migration runner: Jobs, pods, logs and the record.

Objects cross this boundary as plain dicts in the API's own (camelCase) shape, the
same shape kubectl prints, so the runner's logic and its tests never see client
models. Watching uses the watch API with one thread per watched collection: the
runner learns about a finished Job within milliseconds instead of polling.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any, Callable

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.migration import AlreadyExists

try:
    from kubernetes import watch as k8s_watch
    from kubernetes.client.rest import ApiException
except ImportError:  # reported by the module (AnsibleK8SModule requires kubernetes)
    k8s_watch = None

    class ApiException(Exception):  # type: ignore[no-redef]
        status = 0


# A watch request ends on the server after this long and is re-established; short
# enough that a silently dropped connection is noticed, long enough to be cheap.
WATCH_SECONDS = 50
RECONNECT_DELAY = 0.5


def _json(response: Any) -> dict[str, Any]:
    return json.loads(response.data)


def api_message(exc: Exception) -> str:
    """The apiserver's own message of an API error (not the whole HTTP response)."""
    body = getattr(exc, "body", None)
    if body:
        try:
            return json.loads(body).get("message") or str(exc)
        except (ValueError, AttributeError):
            pass
    status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
    return f"{status} {reason}" if status else str(exc)


def _selector(job: dict[str, Any]) -> str:
    labels = ((job.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not labels:  # a Job as returned by the API always has one
        labels = {"job-name": job["metadata"]["name"]}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class JobClient:
    """JobApi for a real cluster, over kubernetes.core's dynamic client (its auth and connection).

    Requests go through DynamicClient.request with plain paths and JSON dicts: the typed
    CoreV1Api/BatchV1Api of the kubernetes package take about a second to import and
    deserialize every watch event into models this code never reads.
    """

    def __init__(self, dynamic_client: Any) -> None:
        self.client = dynamic_client

    def _request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        params.pop("_preload_content", None)  # always raw here
        query = params.pop("query_params", [])
        return self.client.request(method, path, body=body, serialize=False, query_params=list(query), **params)

    def _get(self, path: str, **params: Any) -> dict[str, Any]:
        return _json(self._request("GET", path, **params))

    @staticmethod
    def _jobs(namespace: str, name: str = "") -> str:
        return f"/apis/batch/v1/namespaces/{namespace}/jobs" + (f"/{name}" if name else "")

    @staticmethod
    def _core(namespace: str, plural: str, name: str = "") -> str:
        return f"/api/v1/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")

    # No return annotation and no docstring: kubernetes.watch reads the type to deserialize
    # events into from them; without one it leaves the events as JSON dicts.
    def _list_jobs(self, namespace: str, **params: Any):
        return self._request("GET", self._jobs(namespace), **params)

    def _list_pods(self, namespace: str, **params: Any):
        return self._request("GET", self._core(namespace, "pods"), **params)

    # -- Jobs ------------------------------------------------------------------
    def read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._get(self._jobs(namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return _json(self._request("POST", self._jobs(namespace), body=body))
        except ApiException as exc:
            if exc.status == 409:
                raise AlreadyExists(body["metadata"]["name"]) from exc
            raise

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        options = {"propagationPolicy": "Background"}
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            self._request("DELETE", self._jobs(namespace, name), body=options)
        except ApiException as exc:
            # 404: already gone; 409: the uid precondition failed, i.e. it is not the
            # Job we meant any more (someone replaced it) - not ours to delete.
            if exc.status not in (404, 409):
                raise

    def wait_job_gone(self, namespace: str, name: str, uid: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            job = self.read_job(namespace, name)
            if job is None or job["metadata"].get("uid") != uid:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            watcher = k8s_watch.Watch()
            for event in watcher.stream(
                self._list_jobs,
                namespace,
                field_selector=f"metadata.name={name}",
                resource_version=job["metadata"]["resourceVersion"],
                timeout_seconds=max(1, int(remaining)),
            ):
                if event["type"] == "DELETED":
                    watcher.stop()
                    return True

    # -- pods and logs -----------------------------------------------------------
    def list_pods(self, namespace: str, job: dict[str, Any]) -> list[dict[str, Any]]:
        return self._get(self._core(namespace, "pods"), label_selector=_selector(job)).get("items") or []

    def read_log(self, namespace: str, pod: str, container: str) -> str:
        # Migration output is short; the cap only protects against a runaway log.
        try:
            response = self._request(
                "GET",
                self._core(namespace, "pods", pod) + "/log",
                query_params=[("container", container), ("limitBytes", 4 * 1024 * 1024)],
                header_params={"Accept": "text/plain, */*"},
            )
        except ApiException as exc:
            raise RuntimeError(api_message(exc)) from exc
        return response.data.decode("utf-8", errors="replace")

    # -- the record ----------------------------------------------------------------
    def read_record(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            cm = self._get(self._core(namespace, "configmaps", name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return cm.get("data") or {}

    def write_record(self, namespace: str, name: str, data: dict[str, str], labels: dict[str, str]) -> None:
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": data}
        for _attempt in range(3):
            try:
                current = self._get(self._core(namespace, "configmaps", name))
            except ApiException as exc:
                if exc.status != 404:
                    raise
                try:
                    self._request("POST", self._core(namespace, "configmaps"), body=body)
                    return
                except ApiException as create_exc:
                    if create_exc.status != 409:
                        raise
                    continue
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            try:
                self._request("PUT", self._core(namespace, "configmaps", name), body=body)
                return
            except ApiException as exc:
                if exc.status != 409:  # someone wrote in between: read again
                    raise
        raise RuntimeError(f"could not write migration record ConfigMap {namespace}/{name}: kept conflicting")

    # -- following -------------------------------------------------------------------
    def follow(self, namespace: str, job: dict[str, Any]) -> EventStream:
        stream = EventStream()
        name = job["metadata"]["name"]
        stream.watch("job", self._list_jobs, namespace, field_selector=f"metadata.name={name}")
        stream.watch("pod", self._list_pods, namespace, label_selector=_selector(job))
        return stream


class EventStream:
    """Events of several watched collections merged into one queue."""

    def __init__(self) -> None:
        self._events: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._watchers: list[Any] = []

    def watch(self, kind: str, list_fn: Callable[..., Any], namespace: str, **selector: str) -> None:
        thread = threading.Thread(
            target=self._run, args=(kind, list_fn, namespace, selector), name=f"watch-{kind}", daemon=True
        )
        thread.start()

    def get(self, timeout: float) -> tuple[str, str, dict[str, Any]] | None:
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(event, BaseException):
            raise event
        return event

    def close(self) -> None:
        self._stop.set()
        for watcher in list(self._watchers):
            watcher.stop()

    def _run(self, kind: str, list_fn: Callable[..., Any], namespace: str, selector: dict[str, str]) -> None:
        known: dict[str, dict[str, Any]] = {}
        resource_version = None
        failures = 0
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    # (Re-)list: the current state, and DELETED for what vanished meanwhile.
                    listing = _json(list_fn(namespace, _preload_content=False, **selector))
                    resource_version = listing["metadata"]["resourceVersion"]
                    current = {item["metadata"]["name"]: item for item in listing.get("items") or []}
                    for gone in set(known) - set(current):
                        self._events.put((kind, "DELETED", known.pop(gone)))
                    for item_name, item in current.items():
                        known[item_name] = item
                        self._events.put((kind, "ADDED", item))
                watcher = k8s_watch.Watch()
                self._watchers.append(watcher)
                try:
                    for event in watcher.stream(
                        list_fn,
                        namespace,
                        resource_version=resource_version,
                        timeout_seconds=WATCH_SECONDS,
                        allow_watch_bookmarks=True,
                        **selector,
                    ):
                        if self._stop.is_set():
                            return
                        obj = event["raw_object"]
                        resource_version = obj.get("metadata", {}).get("resourceVersion") or resource_version
                        if event["type"] == "BOOKMARK":
                            continue
                        item_name = obj["metadata"]["name"]
                        if event["type"] == "DELETED":
                            known.pop(item_name, None)
                        else:
                            known[item_name] = obj
                        self._events.put((kind, event["type"], obj))
                finally:
                    self._watchers.remove(watcher)
                failures = 0
            except ApiException as exc:
                if self._stop.is_set():
                    return
                if exc.status == 410:  # resourceVersion too old: list again
                    resource_version = None
                    continue
                failures += 1
                if exc.status in (401, 403, 404) or failures > 20:
                    self._events.put(exc)
                    return
                resource_version = None
                self._stop.wait(RECONNECT_DELAY)
            except Exception as exc:  # connection dropped, apiserver restarting, ...
                if self._stop.is_set():
                    return
                failures += 1
                if failures > 20:
                    self._events.put(exc)
                    return
                resource_version = None
                self._stop.wait(RECONNECT_DELAY)
