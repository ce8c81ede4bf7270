# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What dify_lock and dify_record do with their validated options (their modules and action
plugins share it)."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import lock, records
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.apply import read_all
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import Conflict
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.k8s import Kube


def lock_with(kube: Kube, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Take or give up the namespace's lock. Taking it: the namespace first when it is missing and
    its definition is given (the Lease lives in it), then the Lease; ``stale`` when what prepare
    read (``basis_reads``) changed since, so the run prepares again under the lock."""
    namespace, holder = params["namespace"], params["holder"]
    the_lock = lock.NamespaceLock(kube, namespace, holder, details=params["details"])
    lease = {"namespace": namespace, "holder": holder}
    # The Lease is the runs' bookkeeping, not part of the installation: taking and releasing it is no
    # change (a second run reports changed=0); creating the namespace for it is one.
    if params["state"] == "released":
        released = False if check_mode else the_lock.release()
        return {"changed": False, "released": released, "lease": lease}
    if check_mode:
        return {"changed": False, "lease": lease, "stale": False, "waited": 0, "took_over": ""}
    created_namespace = False
    definition = params.get("namespace_definition")
    if definition and kube.get("v1", "Namespace", namespace) is None:
        try:
            kube.create(definition)
            created_namespace = True
        except Conflict:
            pass  # another run created it first: the Lease decides who goes on
    taken = the_lock.acquire(wait=params["wait"])
    stale = False
    if params["basis_reads"] and params.get("basis"):
        stale = lock.basis_of(read_all(kube, params["basis_reads"])) != params["basis"]
    return {"changed": created_namespace, "lease": lease, "stale": stale, "created_namespace": created_namespace,
            **taken}  # fmt: skip


def record_with(kube: Kube, params: dict[str, Any], check_mode: bool) -> dict[str, Any]:
    """Write (merge) or delete one record."""
    heartbeat = lock.from_option(kube, params.get("lock"))
    store = records.Records(kube, params["namespace"])
    before = store.read(params["kind"])
    if params["state"] == "absent":
        if before is not None and not check_mode:
            store.delete(params["kind"])
        return {"changed": before is not None, "record": None}
    heartbeat()
    wanted = {} if params["replace"] or before is None else dict(before)
    for key, value in params["data"].items():
        if value is None:
            wanted.pop(key, None)
        else:
            wanted[key] = records.encode(value)
    if wanted == before:
        return {"changed": False, "record": before}
    written = wanted if check_mode else store.write(params["kind"], params["data"], replace=params["replace"])
    return {"changed": True, "record": written}
