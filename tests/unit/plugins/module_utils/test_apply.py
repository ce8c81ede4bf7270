"""Unit tests of the batch applier: comparison, readiness, and which requests it makes."""

from __future__ import annotations

import copy
import threading
from typing import Any

import pytest

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import apply as a
from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import ApplyFailed


def deployment(name: str = "dify-api", image: str = "langgenius/dify-api:1.11.4", **status: Any) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "dify",
            "labels": {"app.kubernetes.io/managed-by": "dify_ce.kubernetes"},
        },
        "spec": {
            "replicas": 1,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "api", "image": image, "resources": {"requests": {"cpu": "0.5", "memory": "1Gi"}}}
                    ]
                }
            },
        },
    }


def live_of(obj: dict, rv: str = "100", generation: int = 1, ready: bool = True) -> dict:
    """The object as the apiserver returns it after we applied it (with our hash annotation)."""
    live = a.stamped(obj)
    live["metadata"].update(resourceVersion=rv, generation=generation, uid="u-" + obj["metadata"]["name"])
    live["metadata"].setdefault("labels", {})["pod-template-hash"] = "abc"  # added by others
    if obj["kind"] == "Deployment":
        container = live["spec"]["template"]["spec"]["containers"][0]
        container["resources"]["requests"]["cpu"] = "500m"  # canonicalised by the apiserver
        container["terminationMessagePath"] = "/dev/termination-log"  # defaulted
        n = 1 if ready else 0
        live["status"] = {"observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
                          "readyReplicas": n, "availableReplicas": n}  # fmt: skip
    return live


# --------------------------------------------------------------------------- comparison


@pytest.mark.parametrize(
    ("a_value", "b_value", "same"),
    [("500m", "0.5", True), ("1Gi", "1024Mi", True), (2, "2", True), ("2", "2000m", True), ("1Gi", "1G", False),
     ("1.11.4", "1.11.4", True), ("1.11.4", "1.11.5", False), (True, "true", False), ("true", "1", False)],
)  # fmt: skip
def test_quantities_compare_by_value(a_value, b_value, same):
    assert a.same_value(a_value, b_value) is same


def test_live_with_defaults_and_canonical_quantities_contains_the_desired_object():
    desired = deployment()
    assert a.contains(desired, live_of(desired))


def test_a_changed_field_or_list_length_is_noticed():
    desired = deployment(image="langgenius/dify-api:1.11.5")
    assert not a.contains(desired, live_of(deployment()))
    two = deployment()
    two["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "x:1"})
    assert not a.contains(two, live_of(deployment()))


def test_empty_maps_we_send_are_not_missing():
    desired = deployment()
    desired["metadata"]["annotations"] = {}
    assert a.contains(desired, live_of(deployment()))


# --------------------------------------------------------------------------- readiness


def test_readiness_of_workloads():
    assert a.ready(live_of(deployment()))[0]
    assert not a.ready(live_of(deployment(), ready=False))[0]
    stale = live_of(deployment())
    stale["metadata"]["generation"] = 2
    assert a.ready(stale) == (False, "the controller has not seen the change yet")
    assert a.ready({"kind": "ConfigMap"})[0]
    sts = {"kind": "StatefulSet", "metadata": {"generation": 1}, "spec": {"replicas": 1},
           "status": {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                      "currentRevision": "a", "updateRevision": "b"}}  # fmt: skip
    assert not a.ready(sts)[0]
    sts["status"]["currentRevision"] = "b"
    assert a.ready(sts)[0]
    # Scaled to none: stopped only once its last pod is gone (a terminating pod still counts).
    stopping = {
        "kind": "StatefulSet",
        "metadata": {"generation": 2},
        "spec": {"replicas": 0},
        "status": {"observedGeneration": 2, "replicas": 1, "currentRevision": "b", "updateRevision": "b"},
    }
    assert a.ready(stopping) == (False, "0/0 ready, 0 updated, 1 total")
    stopping["status"]["replicas"] = 0
    assert a.ready(stopping)[0]


# --------------------------------------------------------------------------- the applier


class FakeApi:
    def __init__(self, existing: list[dict]):
        self.store = {(o["kind"], o["metadata"]["name"]): copy.deepcopy(o) for o in existing}
        self.calls: list[tuple] = []
        self.events: list[tuple[str, dict]] = []

    def namespaced(self, api_version, kind):
        return kind != "Namespace"

    def list(self, api_version, kind, namespace, label_selector=None, field_selector=None):
        self.calls.append(("list", kind, label_selector))
        items = {n: copy.deepcopy(o) for (k, n), o in self.store.items() if k == kind}
        for term in (label_selector or "").split(","):
            if "=" in term:  # equality terms; the set-based ones ("x notin (a,b)") are not needed here
                key, value = term.split("=")
                items = {n: o for n, o in items.items() if o["metadata"].get("labels", {}).get(key) == value}
        return items, "500"

    def get(self, api_version, kind, name, namespace):
        self.calls.append(("get", kind, name))
        return copy.deepcopy(self.store.get((kind, name)))

    def apply(self, obj, field_manager, force, dry_run):
        self.calls.append(("apply", obj["kind"], obj["metadata"]["name"], dry_run))
        current = self.store.get((obj["kind"], obj["metadata"]["name"]))
        changed = current is None or not a.unchanged(obj, current)
        rv = str(int(current["metadata"]["resourceVersion"]) + 1) if changed and current else "1"
        new = live_of(obj, rv=rv if changed else current["metadata"]["resourceVersion"],
                      generation=(current or {}).get("metadata", {}).get("generation", 0) + (1 if changed else 0),
                      ready=not changed)  # fmt: skip
        if not dry_run:
            self.store[(obj["kind"], obj["metadata"]["name"])] = new
        return copy.deepcopy(new)

    def delete(self, api_version, kind, name, namespace, uid=None, dry_run=False):
        self.calls.append(("delete", kind, name, dry_run))
        if not dry_run:
            self.store.pop((kind, name), None)
        return True

    def watch(self, api_version, kind, namespace, resource_version, timeout, **selectors):
        self.calls.append(("watch", kind))
        while self.events:
            yield self.events.pop(0)


def test_an_unchanged_batch_costs_one_list_per_kind_and_no_patch():
    desired = [deployment("dify-api"), deployment("dify-web")]
    api = FakeApi([live_of(d) for d in desired])
    outcome = a.Applier(api, "dify_ce.kubernetes").run(desired, wait=True)
    assert outcome.changed is False
    assert [o["action"] for o in outcome.objects] == ["unchanged", "unchanged"]
    assert api.calls == [("list", "Deployment", None)]


def test_a_changed_object_is_applied_and_followed_until_ready():
    current = deployment("dify-api")
    api = FakeApi([live_of(current)])
    wanted = deployment("dify-api", image="langgenius/dify-api:1.11.5")
    rolled = live_of(wanted, rv="102", generation=2)
    api.events = [("MODIFIED", live_of(wanted, rv="101", generation=2, ready=False)), ("MODIFIED", rolled)]
    outcome = a.Applier(api, "dify_ce.kubernetes").run([wanted], wait=True)
    assert outcome.objects == [{"kind": "Deployment", "name": "dify-api", "namespace": "dify", "action": "configured"}]
    assert [c[0] for c in api.calls] == ["list", "apply", "list", "watch"]
    assert api.events == []


def test_a_rollout_that_finished_before_the_wait_started_is_not_waited_for():
    """The state is listed when the wait starts: a transition before it is never missed."""

    class FastCluster(FakeApi):
        def apply(self, obj, field_manager, force, dry_run):
            result = super().apply(obj, field_manager, force, dry_run)
            self.store[(obj["kind"], obj["metadata"]["name"])] = live_of(obj, rv="200", generation=2)  # rolled out
            return result

    api = FastCluster([live_of(deployment("dify-api"))])
    api.events = [("MODIFIED", live_of(deployment("dify-api"), ready=False))]  # must not be needed
    a.Applier(api, "dify_ce.kubernetes").run([deployment("dify-api", image="langgenius/dify-api:1.11.5")], wait=True)
    assert [c[0] for c in api.calls] == ["list", "apply", "list"]


def test_rollout_timeout_names_the_workload_and_its_state():
    clock = iter([0, 0, 0, 1000, 1000, 1000]).__next__
    api = FakeApi([])
    with pytest.raises(ApplyFailed, match=r"Deployment dify-api: 0/1 ready"):
        a.Applier(api, "dify_ce.kubernetes", monotonic=clock).run([deployment()], wait=True, timeout=5)


def test_check_mode_applies_as_dry_run_and_changes_nothing():
    namespace = {"kind": "Namespace", "metadata": {"name": "dify", "resourceVersion": "1"}}
    api = FakeApi([namespace])
    outcome = a.Applier(api, "dify_ce.kubernetes", check_mode=True).run([deployment()], wait=True)
    assert outcome.changed and outcome.objects[0]["action"] == "created"
    assert ("apply", "Deployment", "dify-api", True) in api.calls
    assert list(api.store) == [("Namespace", "dify")]


def test_check_mode_of_a_first_install_reports_objects_of_a_namespace_not_yet_there():
    # The server cannot dry-run into a namespace that does not exist: no apply is attempted.
    api = FakeApi([])
    outcome = a.Applier(api, "dify_ce.kubernetes", check_mode=True).run([deployment()], wait=True)
    assert [o["action"] for o in outcome.objects] == ["created"]
    assert api.calls == [("list", "Deployment", None), ("get", "Namespace", "dify")]
    assert api.store == {}


def test_outside_check_mode_the_namespace_is_not_looked_up():
    api = FakeApi([])
    a.Applier(api, "dify_ce.kubernetes").run([deployment()])
    assert ("get", "Namespace", "dify") not in api.calls


def test_prune_deletes_only_labelled_objects_that_were_not_rendered():
    ours = {"app.kubernetes.io/managed-by": "dify_ce.kubernetes"}
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget"}
    existing = [
        live_of(dict(pdb, metadata={"name": "dify-api", "namespace": "dify", "labels": dict(ours)}), rv="1"),
        live_of(dict(pdb, metadata={"name": "dify-web", "namespace": "dify", "labels": dict(ours)}), rv="1"),
        live_of(dict(pdb, metadata={"name": "someone-elses", "namespace": "dify", "labels": {}}), rv="1"),
    ]
    api = FakeApi(existing)
    keep = dict(pdb, metadata={"name": "dify-api", "namespace": "dify", "labels": ours})
    outcome = a.Applier(api, "dify_ce.kubernetes").run(
        [keep], prune_kinds=[{"api_version": "policy/v1", "kind": "PodDisruptionBudget"}],
        prune_selector="app.kubernetes.io/managed-by=dify_ce.kubernetes", prune_namespace="dify",
    )  # fmt: skip
    assert ("PodDisruptionBudget", "dify-web") not in api.store
    assert ("PodDisruptionBudget", "someone-elses") in api.store
    assert {
        "kind": "PodDisruptionBudget",
        "name": "dify-web",
        "namespace": "dify",
        "action": "deleted",
    } in outcome.objects


def test_cluster_scoped_objects_are_read_by_name():
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dify", "labels": {"a": "b"}}}
    api = FakeApi([live_of(namespace, rv="3")])
    outcome = a.Applier(api, "dify_ce.kubernetes").run([namespace])
    assert api.calls == [("get", "Namespace", "dify")]
    assert outcome.objects[0]["action"] == "unchanged"


def test_objects_without_kind_or_name_are_refused_before_any_request():
    api = FakeApi([])
    with pytest.raises(ApplyFailed, match=r"no metadata\.name"):
        a.Applier(api, "m").run([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}])
    assert api.calls == []


# --------------------------------------------------------------------------- several reads at once


def test_read_all_returns_each_read_in_the_shape_of_k8s_info():
    secret = {"kind": "Secret", "metadata": {"name": "dify-credentials"}, "data": {"SECRET_KEY": "eA=="}}
    classes = [{"kind": "StorageClass", "metadata": {"name": n}} for n in ("b-files", "a-volume")]
    api = FakeApi([secret, *classes])
    found = a.read_all(
        api,
        [
            {
                "id": "credentials",
                "api_version": "v1",
                "kind": "Secret",
                "namespace": "dify",
                "name": "dify-credentials",
            },
            {"id": "missing", "api_version": "v1", "kind": "PersistentVolumeClaim", "namespace": "dify", "name": "x"},
            {"id": "classes", "api_version": "storage.k8s.io/v1", "kind": "StorageClass"},
        ],
    )
    assert found["credentials"] == {"resources": [secret]}
    assert found["missing"] == {"resources": []}
    assert [o["metadata"]["name"] for o in found["classes"]["resources"]] == ["a-volume", "b-files"]
    assert api.calls == [("get", "Secret", "dify-credentials"), ("get", "PersistentVolumeClaim", "x"),
                         ("list", "StorageClass", None)]  # fmt: skip


def test_read_all_names_the_read_that_failed():
    class Forbidden(Exception):
        status = 403
        body = '{"message": "secrets \\"dify-credentials\\" is forbidden: User \\"sa\\" cannot get resource"}'

    class DenyingApi(FakeApi):
        def get(self, api_version, kind, name, namespace):
            raise Forbidden()

    read = {"id": "credentials", "api_version": "v1", "kind": "Secret", "namespace": "dify", "name": "dify-credentials"}
    with pytest.raises(ApplyFailed) as failure:
        a.read_all(DenyingApi([]), [read])
    assert str(failure.value) == (
        'reading Secret dify-credentials in namespace dify failed: secrets "dify-credentials" is forbidden: '
        'User "sa" cannot get resource'
    )
    assert failure.value.details == {"read": "credentials"}


# --------------------------------------------------------------------------- removals reach the cluster


def test_a_removed_field_is_noticed_by_the_hash_and_applied():
    """Live still holds everything rendered (contains() alone would skip it), but the rendering
    changed: a setting was removed, so the object is sent and server-side apply drops the field."""
    before = deployment()
    before["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "ai"}
    api = FakeApi([live_of(before)])
    after = deployment()  # dify_node_selector removed from the inventory
    assert a.contains(after, api.store[("Deployment", "dify-api")])
    outcome = a.Applier(api, "dify_ce.kubernetes").run([after])
    assert ("apply", "Deployment", "dify-api", False) in api.calls
    assert outcome.changed


def test_a_hand_edit_of_a_rendered_field_is_taken_back_although_the_hash_is_the_same():
    desired = deployment()
    live = live_of(desired)
    live["spec"]["replicas"] = 3  # kubectl scale / edit
    api = FakeApi([live])
    a.Applier(api, "dify_ce.kubernetes").run([desired])
    assert ("apply", "Deployment", "dify-api", False) in api.calls


def test_every_applied_object_carries_the_hash_of_its_rendered_form():
    api = FakeApi([])
    desired = deployment()
    a.Applier(api, "dify_ce.kubernetes").run([desired])
    applied = api.store[("Deployment", "dify-api")]
    assert applied["metadata"]["annotations"][names.APPLIED_HASH] == a.rendered_hash(desired)
    assert a.rendered_hash(a.stamped(desired)) == a.rendered_hash(desired)  # stamping twice changes nothing
    assert "annotations" not in desired["metadata"], "the caller's object is left alone"


def test_unchanged_needs_both_the_same_hash_and_every_field():
    desired = a.stamped(deployment())
    assert a.unchanged(desired, live_of(deployment()))
    assert not a.unchanged(desired, None)
    old = live_of(deployment())
    old["metadata"]["annotations"][names.APPLIED_HASH] = "0" * 32
    assert not a.unchanged(desired, old)


def test_prune_with_wait_goes_kind_by_kind_each_gone_before_the_next():
    ours = {"app.kubernetes.io/managed-by": "dify_ce.kubernetes"}
    objects = [  # dify-api is labelled ours by deployment()
        live_of(deployment()),
        live_of({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "dify-api", "namespace": "dify", "labels": dict(ours)}}),
    ]  # fmt: skip
    api = FakeApi(objects)
    outcome = a.Applier(api, "dify_ce.kubernetes").run(
        [], wait=True,
        prune_kinds=[{"api_version": "apps/v1", "kind": "Deployment"},
                     {"api_version": "networking.k8s.io/v1", "kind": "NetworkPolicy"}],
        prune_selector="app.kubernetes.io/managed-by=dify_ce.kubernetes", prune_namespace="dify",
    )  # fmt: skip
    assert [o["action"] for o in outcome.objects] == ["deleted", "deleted"]
    kinds = [c[1] for c in api.calls if c[0] in ("delete", "list")]
    # list+delete Deployments, list (gone), then the policies
    assert kinds == ["Deployment", "Deployment", "Deployment", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy"]
    assert api.store == {}


def test_prune_kinds_can_narrow_the_selector():
    api = FakeApi([])
    a.Applier(api, "dify_ce.kubernetes").run(
        [], prune_kinds=[{"api_version": "v1", "kind": "Service", "label_selector": "app.kubernetes.io/component=x"}],
        prune_selector="app.kubernetes.io/managed-by=dify_ce.kubernetes", prune_namespace="dify",
    )  # fmt: skip
    assert api.calls == [
        ("list", "Service", "app.kubernetes.io/managed-by=dify_ce.kubernetes,app.kubernetes.io/component=x")
    ]


def test_a_load_balancer_is_ready_once_it_has_an_address_and_the_result_says_which():
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dify-nginx", "namespace": "dify",
               "labels": {}}, "spec": {"type": "LoadBalancer"}}  # fmt: skip
    assert not a.ready(dict(service, status={}))[0]
    assert a.ready(dict(service, status={"loadBalancer": {"ingress": [{"ip": "198.18.0.1"}]}}))[0]
    assert a.ready(dict(service, spec={"type": "ClusterIP"}))[0]

    class LoadBalancer(FakeApi):
        def apply(self, obj, field_manager, force, dry_run):
            self.calls.append(("apply", obj["kind"], obj["metadata"]["name"], dry_run))
            live = live_of(obj, rv="7")
            self.store[(obj["kind"], obj["metadata"]["name"])] = live
            self.events = [("MODIFIED", dict(live, status={"loadBalancer": {"ingress": [{"ip": "198.18.0.1"}]}}))]
            return live

    api = LoadBalancer([])
    outcome = a.Applier(api, "dify_ce.kubernetes").run([service], wait=True)
    assert outcome.objects[0]["load_balancer"] == [{"ip": "198.18.0.1"}]


# --------------------------------------------------------------------------- requests in flight at once


class Recording(FakeApi):
    """Records when each apply starts and ends; ``barrier`` holds each apply until that many are
    in flight (a broken barrier, after its timeout, means they were sent one after the other)."""

    def __init__(self, existing: list[dict], barrier: threading.Barrier | None = None, fail: str = ""):
        super().__init__(existing)
        self.barrier, self.fail = barrier, fail
        self.log: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def apply(self, obj, field_manager, force, dry_run):
        name = obj["metadata"]["name"]
        with self.lock:
            self.log.append(("start", obj["kind"]))
        if self.barrier and obj["kind"] == "Deployment":
            self.barrier.wait()
        try:
            if name == self.fail:
                raise ApplyFailed(f"applying Deployment {name}: the apiserver said no")
            with self.lock:
                return super().apply(obj, field_manager, force, dry_run)
        finally:
            with self.lock:
                self.log.append(("end", obj["kind"]))


def test_objects_of_one_kind_are_sent_together_and_reported_in_their_order():
    desired = [deployment(f"dify-{n}") for n in ("api", "worker", "web", "sandbox")]
    api = Recording([], barrier=threading.Barrier(2, timeout=5))
    outcome = a.Applier(api, "dify_ce.kubernetes").run(desired)
    assert [o["name"] for o in outcome.objects] == ["dify-api", "dify-worker", "dify-web", "dify-sandbox"]
    assert all(o["action"] == "created" for o in outcome.objects)


def test_kinds_go_one_after_the_other_in_the_order_rendered():
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dify"}}
    desired = [namespace] + [deployment(f"dify-{n}") for n in ("api", "worker", "web", "sandbox")]
    api = Recording([])
    a.Applier(api, "dify_ce.kubernetes").run(desired)
    assert api.log[:2] == [("start", "Namespace"), ("end", "Namespace")]
    assert {kind for _event, kind in api.log[2:]} == {"Deployment"}


def test_a_failed_request_is_raised_once_every_request_of_its_kind_has_finished():
    desired = [deployment(f"dify-{n}") for n in ("api", "worker", "web", "sandbox")]
    api = Recording([], fail="dify-worker")
    with pytest.raises(ApplyFailed, match="dify-worker"):
        a.Applier(api, "dify_ce.kubernetes").run(desired)
    assert api.log.count(("end", "Deployment")) == 4
    assert set(api.store) == {("Deployment", "dify-api"), ("Deployment", "dify-web"), ("Deployment", "dify-sandbox")}


def test_one_at_a_time_when_asked():
    desired = [deployment(f"dify-{n}") for n in ("api", "worker")]
    api = Recording([])
    a.Applier(api, "dify_ce.kubernetes", concurrency=1).run(desired)
    assert api.log == [("start", "Deployment"), ("end", "Deployment")] * 2
