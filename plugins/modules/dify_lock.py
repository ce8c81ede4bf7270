#!/usr/bin/python

# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dify_lock
short_description: One run per namespace at a time, with a Kubernetes Lease
version_added: 0.3.0
author:
  - Dify CE Kubernetes maintainers (@dify-ce)
description:
  - Takes (or gives up) the Lease C(dify-lock) of a namespace, as Kubernetes' own controllers
    elect a leader. The dify role takes it after validating its inputs and before its first
    change, every module of the collection renews it while it waits, and the role gives it up
    at the end.
  - A second run fails at once naming the holder (the AWX job or user, host and process) and how
    long ago it renewed, or waits up to O(wait) seconds. A holder that died is taken over once its
    lease expired (120 s after its last renewal), or at once when it ran on this host and its
    process is gone.
  - With O(basis_reads) and O(basis), it also says whether what the run decided on changed while
    it waited (RV(stale)); the role then prepares again, under the lock.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  namespace:
    description: The namespace to take.
    type: str
    required: true
  state:
    description: V(acquired) takes the namespace (again, when this run holds it); V(released) gives it up.
    type: str
    choices: [acquired, released]
    default: acquired
  wait:
    description: Seconds to wait for another run to finish before failing.
    type: int
    default: 0
  holder:
    description: Who runs (default, named on the controller, the AWX job or user, host and process).
    type: str
  details:
    description: More about the run, kept as annotations of the Lease (for example the entry point).
    type: dict
    default: {}
  namespace_definition:
    description: The Namespace object to create when the namespace does not exist yet (the Lease lives in it).
    type: dict
  basis_reads:
    description: The reads whose objects the run decided on (as in M(dify_ce.kubernetes.dify_info)).
    type: list
    elements: dict
    default: []
    suboptions:
      id:
        description: Key of this read.
        type: str
        required: true
      api_version:
        description: API version, e.g. V(v1).
        type: str
        required: true
      kind:
        description: Kind, e.g. V(Secret).
        type: str
        required: true
      name:
        description: Name of one object (a GET). Without it the kind is listed.
        type: str
      namespace:
        description: Namespace.
        type: str
      label_selector:
        description: Label selector of a list.
        type: str
  basis:
    description: The fingerprint of those objects when the run read them (its prepare step's C(basis)).
    type: str
notes:
  - Supports check mode (takes nothing).
  - Taking and releasing the Lease is bookkeeping of the runs, not a change of the installation
    (RV(ignore:changed=false)); creating the namespace it lives in is a change.
"""

EXAMPLES = r"""
- name: One run at a time
  dify_ce.kubernetes.dify_lock:
    namespace: dify
    wait: 300
  register: lock

- name: Give the namespace up
  dify_ce.kubernetes.dify_lock:
    namespace: dify
    state: released
"""

RETURN = r"""
lease:
  description: The namespace and the holder (what the collection's modules take as their lock option to renew it).
  returned: always
  type: dict
waited:
  description: Seconds waited for another run.
  returned: when acquired
  type: float
took_over:
  description: The holder whose expired (or dead) lease was taken over, if any.
  returned: when acquired
  type: str
stale:
  description: Whether the objects of O(basis_reads) changed since O(basis) was taken.
  returned: when acquired
  type: bool
"""

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.args import LOCK_ARG_SPEC  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.coordination import lock_with  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.lock import identity  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.module import DifyModule  # noqa: E402


class DifyLock(DifyModule):
    def execute(self) -> dict:
        params = dict(self.params, holder=self.params["holder"] or identity())
        return lock_with(self.kube, params, self.check_mode)


def main() -> None:
    DifyLock(LOCK_ARG_SPEC).main()


if __name__ == "__main__":
    main()
