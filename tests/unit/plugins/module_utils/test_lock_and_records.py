"""The lock (one run per namespace, a Lease) and the records, over a fake API with optimistic
concurrency (every write carries the resourceVersion it read; a stale one is a Conflict)."""

from __future__ import annotations

import copy
import os
import socket

import pytest

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import lock, names, records
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import Conflict, NotFound


class FakeApi:
    """Objects by (kind, namespace, name); create/replace/delete as the apiserver does them."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.version = 0
        self.writes = 0
        self.before_write = None  # called before each write (another writer getting in between)

    def get(self, api_version, kind, name, namespace=None):
        obj = self.objects.get((kind, namespace or "", name))
        return copy.deepcopy(obj)

    def _store(self, obj: dict) -> dict:
        self.version += 1
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def create(self, obj):
        if self.before_write:
            self.before_write()
        self.writes += 1
        key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if key in self.objects:
            raise Conflict("already exists", status=409)
        return self._store(obj)

    def replace(self, obj):
        if self.before_write:
            self.before_write()
        self.writes += 1
        key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if key not in self.objects:
            raise NotFound("not found", status=404)
        if obj["metadata"].get("resourceVersion") != self.objects[key]["metadata"]["resourceVersion"]:
            raise Conflict("the object has been modified", status=409)
        return self._store(obj)

    def delete(self, api_version, kind, name, namespace=None, **options):
        if self.objects.pop((kind, namespace or "", name), None) is None:
            raise NotFound("not found", status=404)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


# --------------------------------------------------------------------------- records


def test_a_record_is_created_merged_and_labelled_so_that_no_prune_selects_it():
    api = FakeApi()
    store = records.Records(api, "dify")
    store.write("backups", {"b1": {"from": "1.11.4", "to": "1.11.5"}})
    store.write("backups", {"b2": {"from": "1.11.5", "to": "1.12.1"}, "b1": None})
    cm = api.get("v1", "ConfigMap", names.BACKUP_RECORD, "dify")
    assert records.backup_entries(cm["data"]) == {"b2": {"from": "1.11.5", "to": "1.12.1"}}
    assert cm["metadata"]["labels"][names.RECORD_LABEL] == "backups"
    assert cm["metadata"]["labels"][names.LABEL_COMPONENT] == "backups"
    # The prunes' selector excludes every record by its label, and older records by their component.
    assert records.NOT_A_RECORD.startswith(f"!{names.RECORD_LABEL},")
    for kind, (_name, component) in records.KINDS.items():
        assert component in records.NOT_A_RECORD, kind


def test_a_record_written_meanwhile_by_another_writer_is_read_again_not_overwritten():
    api = FakeApi()
    store = records.Records(api, "dify")
    store.write("backups", {"b1": "x"})
    raced = []

    def other_writer():
        if not raced:
            raced.append(True)
            current = api.get("v1", "ConfigMap", names.BACKUP_RECORD, "dify")
            current["data"]["b-other"] = "y"
            api.before_write = None
            api.replace(current)
            api.before_write = other_writer

    api.before_write = other_writer
    store.write("backups", {"b2": "z"})
    assert api.get("v1", "ConfigMap", names.BACKUP_RECORD, "dify")["data"] == {"b1": "x", "b-other": "y", "b2": "z"}


def test_reports_are_the_last_marker_line_of_json():
    text = 'pg_dump: ...\nDIFY_REPORT {"backup": "a"}\nnoise\nDIFY_REPORT {"backup": "b", "removed": []}\n'
    assert records.parse_report(text) == {"backup": "b", "removed": []}
    assert records.parse_report("no report\nDIFY_REPORT not json") is None
    assert records.parse_report("") is None


# --------------------------------------------------------------------------- the lock


def a_lock(api: FakeApi, holder: str, clock: Clock) -> lock.NamespaceLock:
    return lock.NamespaceLock(api, "dify", holder, clock=clock, sleep=clock.sleep)


def test_one_run_at_a_time_the_second_is_named_the_holder_and_when_it_renewed():
    api, clock = FakeApi(), Clock()
    first = a_lock(api, "AWX job 42 (admin), ansible-playbook pid 1 on awx-task-0", clock)
    assert first.acquire()["took_over"] == ""
    clock.now += 7
    with pytest.raises(lock.LockHeld) as held:
        a_lock(api, "ops@laptop, ansible-playbook pid 9 on laptop", clock).acquire()
    message = str(held.value)
    assert "AWX job 42 (admin)" in message and "renewed 7s ago" in message and "dify_lock_wait" in message
    assert message.startswith("Nothing was changed.")
    # The same run takes it again (re-entrant: restore.yml runs the role twice).
    assert first.acquire()["holder"] == first.holder


def test_a_second_run_that_waits_goes_on_when_the_first_releases():
    api, clock = FakeApi(), Clock()
    first, second = a_lock(api, "run-1", clock), a_lock(api, "run-2", clock)
    first.acquire()
    released_at = []

    def sleep(seconds):
        clock.now += seconds
        if clock.now - 1_800_000_000.0 >= 10 and not released_at:
            released_at.append(clock.now)
            first.release()

    second.sleep = sleep
    taken = second.acquire(wait=60)
    assert 10 <= taken["waited"] <= 12 and taken["took_over"] == ""
    assert api.get("coordination.k8s.io/v1", "Lease", names.LOCK, "dify")["spec"]["holderIdentity"] == "run-2"


def test_an_expired_holder_is_taken_over_and_a_dead_one_of_this_host_at_once():
    api, clock = FakeApi(), Clock()
    a_lock(api, "run-1", clock).acquire()
    clock.now += lock.LEASE_SECONDS - 1
    with pytest.raises(lock.LockHeld):
        a_lock(api, "run-2", clock).acquire()
    clock.now += 2
    assert a_lock(api, "run-2", clock).acquire()["took_over"] == "run-1"
    lease = api.get("coordination.k8s.io/v1", "Lease", names.LOCK, "dify")
    assert lease["spec"]["leaseTransitions"] == 1
    # A holder of this host whose process has ended: no need to wait for the lease to expire.
    dead = f"me@{socket.gethostname()}, ansible-playbook pid {2**22 + 7} on {socket.gethostname()}"
    api2 = FakeApi()
    a_lock(api2, dead, clock).acquire()
    assert a_lock(api2, "run-3", clock).acquire()["took_over"] == dead
    alive = f"me@{socket.gethostname()}, ansible-playbook pid {os.getpid()} on {socket.gethostname()}"
    api3 = FakeApi()
    a_lock(api3, alive, clock).acquire()
    with pytest.raises(lock.LockHeld):
        a_lock(api3, "run-4", clock).acquire()


def test_two_runs_racing_for_a_free_namespace_end_with_one_holder():
    api, clock = FakeApi(), Clock()
    second = a_lock(api, "run-2", clock)

    def first_gets_in():
        api.before_write = None
        a_lock(api, "run-1", clock).acquire()

    api.before_write = first_gets_in
    with pytest.raises(lock.LockHeld, match="run-1"):
        second.acquire()


def test_renewing_keeps_the_lease_and_a_lost_one_stops_the_run():
    api, clock = FakeApi(), Clock()
    mine = a_lock(api, "run-1", clock)
    mine.acquire()
    clock.now += 100
    mine.renew()
    clock.now += 100  # 200 s after taking it, 100 s after renewing: still ours
    with pytest.raises(lock.LockHeld):
        a_lock(api, "run-2", clock).acquire()
    clock.now += lock.LEASE_SECONDS + 1
    a_lock(api, "run-2", clock).acquire()
    with pytest.raises(lock.LockLost, match="held by run-2"):
        mine.renew()
    assert mine.release() is False  # not ours any more: left alone


def test_the_heartbeat_renews_only_when_due_and_not_without_a_lock():
    api, clock = FakeApi(), Clock()
    mine = a_lock(api, "run-1", clock)
    mine.acquire()
    ticks = Clock(0)
    beat = lock.Heartbeat(mine, clock=ticks)
    writes = api.writes
    beat()
    assert api.writes == writes
    ticks.now += lock.RENEW_AFTER + 1
    beat()
    assert api.writes == writes + 1
    lock.Heartbeat()()  # nothing to renew, nothing happens


def test_the_basis_changes_when_an_object_read_changes_not_otherwise():
    found = {"credentials": {"resources": [{"metadata": {"name": "dify-credentials", "resourceVersion": "5"}}]},
             "migration_record": {"resources": []}}  # fmt: skip
    same = copy.deepcopy(found)
    assert lock.basis_of(found) == lock.basis_of(same)
    same["migration_record"]["resources"].append({"metadata": {"name": "dify-db-migration", "resourceVersion": "9"}})
    assert lock.basis_of(found) != lock.basis_of(same)
