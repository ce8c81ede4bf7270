"""Unit tests of the client layer (k8s.py) over fakes: no cluster, no real sleeping.

FakeClient stands for kubernetes.core's DynamicClient: ``request(method, path, body=None, **params)``
returning a urllib3-like response, and ``resources.get(api_version=..., kind=...)`` for discovery.
ScriptedKube stands for k8s.Kube's list and watch in the tests of Informer and wait_until.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Callable

import pytest
from kubernetes.client.rest import ApiException

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import k8s
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import ApiError, Conflict, Expired, NotFound

# --------------------------------------------------------------------------- fakes


class FakeResponse:
    """What DynamicClient.request(..., serialize=False) returns: a urllib3 response."""

    def __init__(self, data: bytes = b"", chunks: list[bytes] | None = None) -> None:
        self.data = data
        self.chunks = list(chunks or [])
        self.stream_args: tuple | None = None
        self.released = False

    def stream(self, amt=None, decode_content=False):
        self.stream_args = (amt, decode_content)
        yield from self.chunks

    def release_conn(self) -> None:
        self.released = True


@dataclass
class Request:
    method: str
    path: str
    body: Any
    params: dict[str, Any]

    @property
    def query(self) -> list[tuple[str, Any]]:
        return self.params["query_params"]


class FakeResources:
    def __init__(self, kinds: dict[tuple[str, str], Any]) -> None:
        self.kinds = kinds
        self.calls: list[tuple[str, str]] = []

    def get(self, api_version=None, kind=None):
        self.calls.append((api_version, kind))
        return self.kinds[(api_version, kind)]


class FakeClient:
    """Replies in order: a dict (JSON body), a FakeResponse, an exception to raise, or a callable
    returning one of those."""

    def __init__(self, *replies: Any, kinds: dict | None = None) -> None:
        self.replies = list(replies)
        self.requests: list[Request] = []
        self.resources = FakeResources(kinds or {})

    def request(self, method, path, body=None, **params):
        self.requests.append(Request(method, path, copy.deepcopy(body), params))
        reply = self.replies.pop(0)
        if callable(reply):
            reply = reply()
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, dict):
            return FakeResponse(json.dumps(reply).encode())
        return reply


def api_exception(status: int, message: str | None = None, reason: str = "Reason") -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": status})
    return exc


def obj(name: str, rv: str, **extra: Any) -> dict[str, Any]:
    return dict({"metadata": {"name": name, "resourceVersion": rv}}, **extra)


def lines(*events: dict) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (("v1", "ConfigMap", "dify", "dify-shared-env"), "/api/v1/namespaces/dify/configmaps/dify-shared-env"),
        (("v1", "Pod", "dify"), "/api/v1/namespaces/dify/pods"),
        (("apps/v1", "Deployment", "dify", "dify-api"), "/apis/apps/v1/namespaces/dify/deployments/dify-api"),
        (("batch/v1", "Job", "dify"), "/apis/batch/v1/namespaces/dify/jobs"),
        (
            ("networking.k8s.io/v1", "Ingress", "dify", "dify"),
            "/apis/networking.k8s.io/v1/namespaces/dify/ingresses/dify",
        ),
        (("apps/v1", "Deployment"), "/apis/apps/v1/deployments"),  # all namespaces
        (("v1", "Namespace", None, "dify"), "/api/v1/namespaces/dify"),
        (("v1", "Namespace", "dify", "dify"), "/api/v1/namespaces/dify"),  # cluster-scoped: namespace ignored
        (("storage.k8s.io/v1", "StorageClass", None, "fast"), "/apis/storage.k8s.io/v1/storageclasses/fast"),
        (("storage.k8s.io/v1", "StorageClass", "dify"), "/apis/storage.k8s.io/v1/storageclasses"),
    ],
)
def test_paths_of_known_kinds_need_no_discovery(args, path):
    client = FakeClient()
    assert k8s.Kube(client).path(*args) == path
    assert client.resources.calls == []


def test_other_kinds_are_discovered_once():
    client = FakeClient(
        kinds={
            ("metallb.io/v1beta1", "IPAddressPool"): SimpleNamespace(name="ipaddresspools", namespaced=True),
            ("example.com/v1", "Tenant"): SimpleNamespace(name="tenants", namespaced=False),
        }
    )
    kube = k8s.Kube(client)
    assert (
        kube.path("metallb.io/v1beta1", "IPAddressPool", "metallb-system", "dify")
        == "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools/dify"
    )
    assert kube.namespaced("metallb.io/v1beta1", "IPAddressPool") is True
    assert kube.path("example.com/v1", "Tenant", "dify", "a") == "/apis/example.com/v1/tenants/a"
    assert kube.kind_info("example.com/v1", "Tenant") == ("tenants", False)
    assert client.resources.calls == [("metallb.io/v1beta1", "IPAddressPool"), ("example.com/v1", "Tenant")]


def test_selector_string_is_sorted():
    assert k8s.selector_string({"b": "2", "a": "1"}) == "a=1,b=2"


# --------------------------------------------------------------------------- requests and errors


def test_call_passes_query_content_type_accept_and_timeout():
    client = FakeClient(FakeResponse(b"{}"), FakeResponse(b"{}"))
    kube = k8s.Kube(client)
    kube.call(
        "GET", "/api/v1/pods", query=[("limit", 5)], content_type="application/json", accept="text/plain", timeout=7
    )
    assert client.requests[0].params == {
        "serialize": False,
        "query_params": [("limit", 5)],
        "content_type": "application/json",
        "header_params": {"Accept": "text/plain"},
        "_request_timeout": (10, 7),
    }
    kube.call("GET", "/api/v1/pods")
    assert client.requests[1].params == {"serialize": False, "query_params": []}


@pytest.mark.parametrize(
    ("status", "cls"),
    [(404, NotFound), (409, Conflict), (410, Expired), (403, ApiError), (422, ApiError), (500, ApiError)],
)
def test_api_errors_carry_the_apiservers_message(status, cls):
    message = f'configmaps "dify-shared-env" failed with {status}'
    exc = api_exception(status, message)
    client = FakeClient(exc)
    with pytest.raises(ApiError) as err:
        k8s.Kube(client).call("GET", "/api/v1/namespaces/dify/configmaps/dify-shared-env", what="reading it")
    assert err.value.__class__ is cls
    assert str(err.value) == f"reading it: {message}"
    assert err.value.status == status
    assert err.value.details["body"] == exc.body
    assert err.value.__cause__ is exc


def test_an_error_without_a_json_body_says_status_and_reason():
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = "<html>forbidden</html>"
    client = FakeClient(exc)
    with pytest.raises(ApiError, match=r"^GET /api/v1/pods: 403 Forbidden$"):
        k8s.Kube(client).call("GET", "/api/v1/pods")
    assert k8s.api_message(ConnectionRefusedError("connection refused")) == "connection refused"
    assert k8s.api_message(ApiError("already ours")) == "already ours"


def test_get_returns_the_object_or_none_when_missing():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}
    client = FakeClient(cm, api_exception(404, 'configmaps "b" not found'))
    kube = k8s.Kube(client)
    assert kube.get("v1", "ConfigMap", "a", "dify") == cm
    assert kube.get("v1", "ConfigMap", "b", "dify") is None
    assert [(r.method, r.path) for r in client.requests] == [
        ("GET", "/api/v1/namespaces/dify/configmaps/a"),
        ("GET", "/api/v1/namespaces/dify/configmaps/b"),
    ]


def test_get_raises_other_errors():
    client = FakeClient(api_exception(403, 'configmaps "a" is forbidden: User "dev" cannot get resource'))
    with pytest.raises(ApiError, match=r'^reading ConfigMap a: configmaps "a" is forbidden') as err:
        k8s.Kube(client).get("v1", "ConfigMap", "a", "dify")
    assert err.value.status == 403


def test_list_gives_items_their_kind_and_returns_the_resource_version():
    client = FakeClient(
        {
            "apiVersion": "v1",
            "kind": "PodList",
            "metadata": {"resourceVersion": "4242"},
            "items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}, "kind": "Pod", "apiVersion": "v1"}],
        },
        {"metadata": {}, "items": None},
    )
    kube = k8s.Kube(client)
    items, version = kube.list("v1", "Pod", "dify", label_selector="job-name=x", field_selector="status.phase=Running")
    assert version == "4242"
    assert items == {
        "a": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}},
        "b": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "b"}},
    }
    request = client.requests[0]
    assert (request.method, request.path) == ("GET", "/api/v1/namespaces/dify/pods")
    assert request.query == [("labelSelector", "job-name=x"), ("fieldSelector", "status.phase=Running")]
    assert kube.list("apps/v1", "Deployment", "dify") == ({}, "")
    assert client.requests[1].query == []


def test_apply_is_a_server_side_apply_patch():
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dify-api", "namespace": "dify"}}
    client = FakeClient(dict(deployment, status={}), {}, {})
    kube = k8s.Kube(client)
    assert kube.apply(deployment, field_manager="dify_ce.kubernetes") == dict(deployment, status={})
    request = client.requests[0]
    assert (request.method, request.path) == ("PATCH", "/apis/apps/v1/namespaces/dify/deployments/dify-api")
    assert request.body == deployment
    assert request.params["content_type"] == "application/apply-patch+yaml"
    assert request.query == [("fieldManager", "dify_ce.kubernetes"), ("force", "true")]

    kube.apply(deployment, field_manager="me", force=False, dry_run=True)  # check mode
    assert client.requests[1].query == [("fieldManager", "me"), ("force", "false"), ("dryRun", "All")]

    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dify", "namespace": "x"}}
    kube.apply(namespace, field_manager="me")
    assert client.requests[2].path == "/api/v1/namespaces/dify"


def test_create_and_replace():
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "rec", "namespace": "dify"}}
    client = FakeClient(cm, cm, cm)
    kube = k8s.Kube(client)
    kube.create(cm)
    kube.create(cm, dry_run=True)
    kube.replace(dict(cm, metadata=dict(cm["metadata"], resourceVersion="7")))
    assert [(r.method, r.path, r.query) for r in client.requests] == [
        ("POST", "/api/v1/namespaces/dify/configmaps", []),
        ("POST", "/api/v1/namespaces/dify/configmaps", [("dryRun", "All")]),
        ("PUT", "/api/v1/namespaces/dify/configmaps/rec", []),
    ]
    assert client.requests[2].body["metadata"]["resourceVersion"] == "7"


def test_create_of_an_existing_object_is_a_conflict():
    client = FakeClient(api_exception(409, 'jobs.batch "dify-db-migration" already exists'))
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "dify-db-migration", "namespace": "dify"}}
    with pytest.raises(
        Conflict, match=re.escape('creating Job dify-db-migration: jobs.batch "dify-db-migration" already exists')
    ):
        k8s.Kube(client).create(job)


def test_delete_with_a_uid_precondition():
    client = FakeClient(FakeResponse(b"{}"), FakeResponse(b"{}"), api_exception(404, "gone"))
    kube = k8s.Kube(client)
    assert kube.delete("batch/v1", "Job", "dify-db-migration", "dify", uid="u1") is True
    request = client.requests[0]
    assert (request.method, request.path) == ("DELETE", "/apis/batch/v1/namespaces/dify/jobs/dify-db-migration")
    assert request.body == {"propagationPolicy": "Background", "preconditions": {"uid": "u1"}}
    assert request.query == []
    assert kube.delete("batch/v1", "Job", "x", "dify", dry_run=True) is True
    assert client.requests[1].body == {"propagationPolicy": "Background"}
    assert client.requests[1].query == [("dryRun", "All")]
    assert kube.delete("batch/v1", "Job", "x", "dify") is False  # gone already


def test_delete_of_another_object_of_that_name_is_a_conflict():
    client = FakeClient(api_exception(409, "Precondition failed: UID in precondition: u1, UID in object meta: u2"))
    with pytest.raises(Conflict, match="Precondition failed"):
        k8s.Kube(client).delete("batch/v1", "Job", "dify-db-migration", "dify", uid="u1")


def test_log_is_plain_text():
    client = FakeClient(FakeResponse("line 1\nGr\u00fc\u00dfe\n".encode() + b"\xff"))
    text = k8s.Kube(client).log("dify", "dify-db-migration-x7k2p", "migrate")
    assert text == "line 1\nGr\u00fc\u00dfe\n\ufffd"
    request = client.requests[0]
    assert request.path == "/api/v1/namespaces/dify/pods/dify-db-migration-x7k2p/log"
    assert request.query == [("container", "migrate"), ("limitBytes", 4 * 1024 * 1024)]
    assert request.params["header_params"] == {"Accept": "text/plain, */*"}


# --------------------------------------------------------------------------- watch

WATCH_EVENTS = [
    {"type": "ADDED", "object": {"kind": "Pod", "metadata": {"name": "a", "resourceVersion": "11"}}},
    {
        "type": "MODIFIED",
        "object": {
            "kind": "Pod",
            "metadata": {"name": "a", "resourceVersion": "12", "annotations": {"x": "Gr\u00fc\u00dfe"}},
        },
    },
    {"type": "BOOKMARK", "object": {"kind": "Pod", "metadata": {"resourceVersion": "13"}}},
    {"type": "DELETED", "object": {"kind": "Pod", "metadata": {"name": "a", "resourceVersion": "14"}}},
]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 16, 61, 100000])
def test_watch_parses_json_lines_split_at_any_point(size):
    payload = lines(*WATCH_EVENTS)
    response = FakeResponse(chunks=chunked(payload, size))
    client = FakeClient(response)
    events = list(k8s.Kube(client).watch("v1", "Pod", "dify", "10", label_selector="job-name=x"))
    assert events == [(e["type"], e["object"]) for e in WATCH_EVENTS]
    assert response.released
    assert response.stream_args == (None, False)
    request = client.requests[0]
    assert (request.method, request.path) == ("GET", "/api/v1/namespaces/dify/pods")
    assert request.query == [
        ("watch", "true"),
        ("resourceVersion", "10"),
        ("allowWatchBookmarks", "true"),
        ("timeoutSeconds", k8s.WATCH_SECONDS),
        ("labelSelector", "job-name=x"),
    ]
    assert request.params["_request_timeout"] == (10, k8s.WATCH_SECONDS + 15)


def test_watch_skips_blank_lines_and_reads_a_last_line_without_newline():
    payload = b"\n" + lines(WATCH_EVENTS[0]) + b"\r\n\n" + json.dumps(WATCH_EVENTS[3]).encode()
    client = FakeClient(FakeResponse(chunks=[payload[:5], payload[5:]]))
    events = list(k8s.Kube(client).watch("v1", "Pod", "dify", "10", field_selector="metadata.name=a"))
    assert [t for t, _obj in events] == ["ADDED", "DELETED"]
    assert client.requests[0].query[-1] == ("fieldSelector", "metadata.name=a")


@pytest.mark.parametrize(("timeout", "seconds"), [(0.4, 1), (12.7, 12), (50, 50)])
def test_watch_timeout_is_whole_seconds_on_the_server(timeout, seconds):
    client = FakeClient(FakeResponse())
    assert list(k8s.Kube(client).watch("v1", "Pod", "dify", "1", timeout=timeout)) == []
    assert ("timeoutSeconds", seconds) in client.requests[0].query
    assert client.requests[0].params["_request_timeout"] == (10, timeout + 15)


def test_watch_error_event_410_is_expired():
    status = {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old resource version: 10 (20)"}
    expired = {"type": "ERROR", "object": status}
    response = FakeResponse(chunks=chunked(lines(WATCH_EVENTS[0], expired), 9))
    seen = []
    with pytest.raises(Expired, match=r"^watching Pod: too old resource version: 10 \(20\)$") as err:
        for event in k8s.Kube(FakeClient(response)).watch("v1", "Pod", "dify", "10"):
            seen.append(event[0])
    assert seen == ["ADDED"]
    assert err.value.status == 410
    assert response.released


def test_watch_other_error_events_are_api_errors():
    error = {"type": "ERROR", "object": {"kind": "Status", "code": 500, "message": "etcd leader changed"}}
    response = FakeResponse(chunks=[lines(error)])
    with pytest.raises(ApiError, match="etcd leader changed") as err:
        list(k8s.Kube(FakeClient(response)).watch("batch/v1", "Job", "dify", "10"))
    assert err.value.__class__ is ApiError and err.value.status == 500
    assert response.released


def test_watch_releases_the_connection_when_the_consumer_stops_early():
    response = FakeResponse(chunks=[lines(*WATCH_EVENTS)])
    events = k8s.Kube(FakeClient(response)).watch("v1", "Pod", "dify", "10")
    assert next(events)[0] == "ADDED"
    events.close()
    assert response.released


def test_watch_request_refused_with_410_is_expired():
    client = FakeClient(api_exception(410, "too old resource version: 1 (99)"))
    with pytest.raises(Expired, match="watching Pod: too old resource version"):
        list(k8s.Kube(client).watch("v1", "Pod", "dify", "1"))


# --------------------------------------------------------------------------- Informer and wait_until fakes


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class ScriptedKube:
    """k8s.Kube's list and watch from a script.

    ``lists``: (objects by name, resourceVersion) or an exception, one per list call.
    ``watches``: one list per watch call of (type, object), exceptions to raise and callables to
    call (closing the informer, letting time pass). Once the watches are used up a watch returns
    at once after calling ``end`` (closes the informer) and letting ``timeout`` seconds pass.
    """

    lists: list = field(default_factory=list)
    watches: list = field(default_factory=list)
    end: Callable[[], Any] | None = None
    clock: FakeClock | None = None
    calls: list = field(default_factory=list)

    def list(self, api_version, kind, namespace=None, **selectors):
        self.calls.append(("list", kind, namespace, selectors))
        item = self.lists.pop(0)
        if isinstance(item, BaseException):
            raise item
        items, version = item
        return copy.deepcopy(items), version

    def watch(self, api_version, kind, namespace, resource_version, timeout=k8s.WATCH_SECONDS, **selectors):
        self.calls.append(("watch", resource_version, timeout, selectors))
        if not self.watches:
            if self.end:
                self.end()
            if self.clock:
                self.clock.now += timeout  # a silent cluster: the server ends the watch
            return
        for item in self.watches.pop(0):
            if isinstance(item, BaseException):
                raise item
            if callable(item):
                item()
                continue
            yield copy.deepcopy(item)

    def kinds(self) -> list[str]:
        return [call[0] for call in self.calls]

    def watched_from(self) -> list[str]:
        return [call[1] for call in self.calls if call[0] == "watch"]


def drain(informer: k8s.Informer) -> list[tuple[str, str, str]]:
    events = []
    while True:
        event = informer.get(0)
        if event is None:
            return events
        events.append((event[0], event[1], event[2]["metadata"]["name"]))


def informer_over(kube: ScriptedKube, sleeps: list | None = None) -> k8s.Informer:
    # Always a fake sleep: a reconnect loop must not make a test slow, even a failing one.
    informer = k8s.Informer(kube, sleep=(sleeps if sleeps is not None else []).append)
    if kube.end is None:
        kube.end = informer.close
    return informer


def run(informer: k8s.Informer, **selectors: str) -> None:
    informer.run("pod", "v1", "Pod", "dify", selectors)


# --------------------------------------------------------------------------- Informer


def test_informer_starts_with_the_listed_objects_and_forwards_watch_events():
    kube = ScriptedKube(
        lists=[({"a": obj("a", "9"), "b": obj("b", "10")}, "10")],
        watches=[
            [
                ("MODIFIED", obj("a", "11")),
                ("ADDED", obj("c", "12")),
                ("DELETED", obj("b", "13")),
                ("BOOKMARK", {"metadata": {"resourceVersion": "14"}}),
            ]
        ],
    )
    informer = informer_over(kube)
    run(informer, label_selector="job-name=x")
    assert drain(informer) == [
        ("pod", "ADDED", "a"),
        ("pod", "ADDED", "b"),
        ("pod", "MODIFIED", "a"),
        ("pod", "ADDED", "c"),
        ("pod", "DELETED", "b"),
    ]
    assert kube.calls[0] == ("list", "Pod", "dify", {"label_selector": "job-name=x"})
    assert kube.calls[1] == ("watch", "10", k8s.WATCH_SECONDS, {"label_selector": "job-name=x"})
    # The server ended the first watch: the next one goes on from the bookmark, without a list.
    assert kube.kinds() == ["list", "watch", "watch"]
    assert kube.watched_from() == ["10", "14"]


def test_informer_relists_after_expired_and_reports_what_vanished():
    kube = ScriptedKube(
        lists=[
            ({"a": obj("a", "9"), "b": obj("b", "10")}, "10"),
            ({"a": obj("a", "20"), "c": obj("c", "19")}, "20"),
        ],
        watches=[[("MODIFIED", obj("a", "11")), Expired("too old resource version: 11 (20)", status=410)]],
    )
    sleeps: list = []
    informer = informer_over(kube, sleeps)
    run(informer)
    events = []
    while (event := informer.get(0)) is not None:
        events.append(event)
    assert [(t, o["metadata"]["name"], o["metadata"]["resourceVersion"]) for _name, t, o in events] == [
        ("ADDED", "a", "9"),
        ("ADDED", "b", "10"),
        ("MODIFIED", "a", "11"),
        ("DELETED", "b", "10"),  # gone between the lists: the last state known of it
        ("ADDED", "a", "20"),
        ("ADDED", "c", "19"),
    ]
    assert kube.kinds() == ["list", "watch", "list", "watch"]
    assert kube.watched_from() == ["10", "20"]
    assert sleeps == []  # an expired version is no failure: list again at once


def test_informer_reconnects_after_a_dropped_connection():
    kube = ScriptedKube(
        lists=[
            ({"a": obj("a", "9")}, "10"),
            ConnectionRefusedError("apiserver restarting"),
            ({"a": obj("a", "12")}, "12"),
        ],
        watches=[[("MODIFIED", obj("a", "11")), ConnectionResetError("connection reset by peer")]],
    )
    sleeps: list = []
    informer = informer_over(kube, sleeps)
    run(informer)
    assert drain(informer) == [("pod", "ADDED", "a"), ("pod", "MODIFIED", "a"), ("pod", "ADDED", "a")]
    assert sleeps == [k8s.RECONNECT_DELAY, k8s.RECONNECT_DELAY]
    assert kube.kinds() == ["list", "watch", "list", "list", "watch"]


@pytest.mark.parametrize("status", [401, 403, 404])
def test_informer_gives_up_at_once_when_the_request_can_never_succeed(status):
    refused = ApiError(f"listing Pod: refused with {status}", status=status)
    kube = ScriptedKube(lists=[refused])
    sleeps: list = []
    informer = informer_over(kube, sleeps)
    run(informer)
    with pytest.raises(ApiError) as err:
        informer.get(0)
    assert err.value is refused
    assert sleeps == [] and kube.kinds() == ["list"]


def test_informer_gives_up_when_a_watch_becomes_forbidden():
    forbidden = ApiError("watching Pod: forbidden", status=403)
    kube = ScriptedKube(lists=[({"a": obj("a", "1")}, "1")], watches=[[("MODIFIED", obj("a", "2")), forbidden]])
    informer = informer_over(kube, [])
    run(informer)
    assert informer.get(0)[1] == "ADDED"
    assert informer.get(0)[1] == "MODIFIED"
    with pytest.raises(ApiError, match="forbidden"):
        informer.get(0)


def test_informer_tolerates_max_reconnects_failures_in_a_row():
    refused = ConnectionRefusedError("connection refused")
    kube = ScriptedKube(lists=[refused] * k8s.MAX_RECONNECTS + [({"a": obj("a", "1")}, "1")])
    sleeps: list = []
    informer = informer_over(kube, sleeps)
    run(informer)
    assert drain(informer) == [("pod", "ADDED", "a")]
    assert len(sleeps) == k8s.MAX_RECONNECTS


def test_informer_counts_only_failures_in_a_row():
    refused = ConnectionRefusedError("connection refused")
    ok = ({"a": obj("a", "1")}, "1")
    kube = ScriptedKube(
        lists=[refused] * k8s.MAX_RECONNECTS + [ok, ok],
        # A watch that the server ended normally resets the count; then the connection drops once.
        watches=[[], [ConnectionResetError("connection reset by peer")]],
    )
    sleeps: list = []
    informer = informer_over(kube, sleeps)
    run(informer)
    assert drain(informer) == [("pod", "ADDED", "a"), ("pod", "ADDED", "a")]
    assert len(sleeps) == k8s.MAX_RECONNECTS + 1


def test_informer_gives_up_after_more_than_max_reconnects_failures():
    refused = ConnectionRefusedError("connection refused")
    kube = ScriptedKube(lists=[refused] * (k8s.MAX_RECONNECTS + 1))
    sleeps: list = []
    informer = informer_over(kube, sleeps)
    run(informer)
    with pytest.raises(ConnectionRefusedError):
        informer.get(0)
    assert sleeps == [k8s.RECONNECT_DELAY] * k8s.MAX_RECONNECTS
    assert kube.kinds() == ["list"] * (k8s.MAX_RECONNECTS + 1)


def test_informer_stops_forwarding_once_closed():
    kube = ScriptedKube(lists=[({}, "1")], watches=[[("ADDED", obj("a", "2")), None, ("ADDED", obj("b", "3"))]])
    informer = informer_over(kube)
    kube.watches[0][1] = informer.close
    run(informer)
    assert drain(informer) == [("pod", "ADDED", "a")]
    closed = informer_over(ScriptedKube())
    closed.close()
    run(closed)  # returns at once, no request
    assert closed.kube.calls == []


def test_informer_watch_runs_in_a_thread_and_get_waits_for_events():
    kube = ScriptedKube(lists=[({"dify-db-migration": obj("dify-db-migration", "5")}, "5")])
    informer = informer_over(kube)
    informer.watch("job", "batch/v1", "Job", "dify", field_selector="metadata.name=dify-db-migration")
    name, event_type, job = informer.get(timeout=5)
    assert (name, event_type, job["metadata"]["name"]) == ("job", "ADDED", "dify-db-migration")
    assert informer.get(0) is None  # nothing more happened
    assert kube.calls[0] == ("list", "Job", "dify", {"field_selector": "metadata.name=dify-db-migration"})


def test_informer_over_kube_end_to_end():
    pod_a = {"metadata": {"name": "a", "resourceVersion": "9"}}
    pod_b = {"metadata": {"name": "b", "resourceVersion": "10"}}
    informer: k8s.Informer
    stream = FakeResponse(
        chunks=chunked(
            lines(
                {"type": "MODIFIED", "object": {"kind": "Pod", "metadata": {"name": "a", "resourceVersion": "11"}}},
                {"type": "ERROR", "object": {"kind": "Status", "code": 410, "message": "too old resource version"}},
            ),
            10,
        )
    )
    last = FakeResponse()

    def closing():
        informer.close()
        return last

    client = FakeClient(
        {"metadata": {"resourceVersion": "10"}, "items": [pod_a, pod_b]},
        stream,
        {
            "metadata": {"resourceVersion": "20"},
            "items": [dict(pod_a, metadata=dict(pod_a["metadata"], resourceVersion="20"))],
        },
        closing,
    )
    informer = k8s.Informer(k8s.Kube(client), sleep=lambda _s: pytest.fail("no reconnect expected"))
    informer.run("pod", "v1", "Pod", "dify", {"label_selector": "job-name=dify-db-migration"})
    events = []
    while (event := informer.get(0)) is not None:
        events.append(event)
    assert [(t, o["metadata"]["name"]) for _name, t, o in events] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
        ("MODIFIED", "a"),
        ("DELETED", "b"),
        ("ADDED", "a"),
    ]
    assert events[0][2]["kind"] == "Pod" and events[0][2]["apiVersion"] == "v1"
    assert stream.released and last.released
    assert [(r.method, dict(r.query).get("watch"), dict(r.query).get("resourceVersion")) for r in client.requests] == [
        ("GET", None, None),
        ("GET", "true", "10"),
        ("GET", None, None),
        ("GET", "true", "20"),
    ]


# --------------------------------------------------------------------------- wait_until


def ready(objects: dict) -> bool:
    return bool(objects) and all(o.get("status", {}).get("ready") for o in objects.values())


def wait(kube: ScriptedKube, clock: FakeClock, done=ready, timeout: float = 300, **selectors: str):
    return k8s.wait_until(kube, "apps/v1", "Deployment", "dify", done, timeout, monotonic=clock, **selectors)


def test_wait_until_returns_at_once_when_the_list_is_done():
    clock = FakeClock()
    kube = ScriptedKube(lists=[({"a": obj("a", "1", status={"ready": True})}, "1")], clock=clock)
    assert wait(kube, clock, label_selector="app=x") == (True, {"a": obj("a", "1", status={"ready": True})})
    assert kube.calls == [("list", "Deployment", "dify", {"label_selector": "app=x"})]


def test_wait_until_follows_watch_events_until_done():
    clock = FakeClock()
    kube = ScriptedKube(
        lists=[({}, "1")],
        watches=[
            [
                ("ADDED", obj("a", "2", status={"ready": False})),
                ("BOOKMARK", {"metadata": {"resourceVersion": "3"}}),
            ],
            [("MODIFIED", obj("a", "4", status={"ready": True})), ("MODIFIED", obj("a", "5"))],
        ],
        clock=clock,
    )
    ok, current = wait(kube, clock)
    assert ok is True
    # Watched objects get their apiVersion and kind like listed ones; nothing after "done" is read.
    assert current == {"a": dict(obj("a", "4", status={"ready": True}), apiVersion="apps/v1", kind="Deployment")}
    assert kube.watched_from() == ["1", "3"]
    assert kube.calls[1][2] == k8s.WATCH_SECONDS


def test_wait_until_sees_deletions():
    clock = FakeClock()
    kube = ScriptedKube(lists=[({"a": obj("a", "1")}, "1")], watches=[[("DELETED", obj("a", "2"))]], clock=clock)
    assert wait(kube, clock, done=lambda objects: "a" not in objects) == (True, {})


def test_wait_until_times_out_on_a_silent_cluster():
    clock = FakeClock()
    kube = ScriptedKube(lists=[({"a": obj("a", "1")}, "1")], clock=clock)
    ok, current = wait(kube, clock, timeout=120)
    assert ok is False and current == {"a": obj("a", "1")}
    assert [call[2] for call in kube.calls if call[0] == "watch"] == [50, 50, 20]  # never past the deadline
    assert clock.now == 1120


def test_wait_until_times_out_while_events_keep_coming():
    clock = FakeClock()

    def later():
        clock.now += 301

    kube = ScriptedKube(
        lists=[({}, "1")],
        watches=[[("ADDED", obj("a", "2")), later, ("MODIFIED", obj("a", "3")), ("MODIFIED", obj("a", "4"))]],
        clock=clock,
    )
    ok, current = wait(kube, clock, timeout=300)
    assert ok is False
    assert current["a"]["metadata"]["resourceVersion"] == "3"


def test_wait_until_lists_again_after_expired():
    clock = FakeClock()
    kube = ScriptedKube(
        lists=[({}, "1"), ({}, "20")],
        watches=[
            [Expired("too old resource version: 1 (20)", status=410)],
            [("ADDED", obj("a", "21", status={"ready": True}))],
        ],
        clock=clock,
    )
    ok, _current = wait(kube, clock)
    assert ok is True
    assert kube.kinds() == ["list", "watch", "list", "watch"]
    assert kube.watched_from() == ["1", "20"]


def test_wait_until_raises_other_errors():
    clock = FakeClock()
    kube = ScriptedKube(lists=[({}, "1")], watches=[[ApiError("watching Deployment: forbidden", status=403)]])
    with pytest.raises(ApiError, match="forbidden"):
        wait(kube, clock)


def test_wait_until_lists_again_after_a_dropped_connection(monkeypatch):
    monkeypatch.setattr(k8s.time, "sleep", lambda seconds: None)
    clock = FakeClock()
    kube = ScriptedKube(
        lists=[({}, "1"), ({}, "5")],
        watches=[[ConnectionResetError("peer reset")], [("ADDED", obj("a", "6", status={"ready": True}))]],
        clock=clock,
    )
    ok, _current = wait(kube, clock)
    assert ok is True
    assert kube.kinds() == ["list", "watch", "list", "watch"]
