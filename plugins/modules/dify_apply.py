#!/usr/bin/python

# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dify_apply
short_description: Server-side apply a batch of objects, touching only what differs, and wait for rollouts
version_added: 0.1.0
author:
  - Dify CE Kubernetes maintainers (@dify-ce)
description:
  - Applies a list of objects with server-side apply and a field manager of its own, the way
    C(kubectl apply --server-side) does, in one module run.
  - Reads what exists with one LIST per kind and namespace. Every object is applied with a hash
    of its given form in the annotation C(dify-ce.kubernetes/applied-hash); an object whose live
    hash equals the given one and whose live state still has every given field and value is not
    sent again (no request, reported V(unchanged)). The others are applied (with
    O(force_conflicts), fields edited by hand are taken back), and server-side apply removes the
    fields this field manager set before and no longer sets - a setting removed from the
    inventory leaves the cluster. Quantities are compared by value (V(0.5) equals V(500m)).
  - With O(wait), follows Deployments, StatefulSets and DaemonSets with the watch API until their
    rollout finished, and Services of type LoadBalancer until they have an address, and fails
    naming what did not, with its conditions; objects deleted by O(prune_kinds) are waited for
    until they are gone.
  - With O(prune_kinds), first deletes objects of those kinds that carry the O(prune_selector)
    labels but are not in O(definitions) (for objects that exist only with some settings; with
    no O(definitions), everything so labelled, as an uninstall does).
  - The results name the objects and what happened to them; object contents (Secrets!) are
    never returned.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - dify_ce.kubernetes.lock_option
options:
  definitions:
    description:
      - The objects to apply, each with C(apiVersion), C(kind) and C(metadata.name) (and
        C(metadata.namespace) when namespaced).
    type: list
    elements: dict
    required: true
  field_manager:
    description: The field manager of server-side apply.
    type: str
    default: dify_ce.kubernetes
  force_conflicts:
    description: Take over fields another manager set (a hand edit) instead of failing.
    type: bool
    default: true
  wait:
    description: Wait until the Deployments, StatefulSets and DaemonSets among O(definitions) rolled out.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for the rollouts.
    type: int
    default: 600
  prune_kinds:
    description:
      - Kinds whose objects matching O(prune_selector) in O(prune_namespace) are deleted when they
        are not in O(definitions).
    type: list
    elements: dict
    default: []
    suboptions:
      api_version:
        description: API version, e.g. V(policy/v1).
        type: str
        required: true
      kind:
        description: Kind, e.g. V(PodDisruptionBudget).
        type: str
        required: true
      label_selector:
        description: More labels the objects of this kind must match (added to O(prune_selector)).
        type: str
  prune_selector:
    description:
      - Label selector of the objects that may be pruned,
        e.g. V(app.kubernetes.io/managed-by=dify_ce.kubernetes).
    type: str
  prune_namespace:
    description: Namespace of the objects that may be pruned.
    type: str
requirements:
  - kubernetes >= 24.2.0
notes:
  - Supports check mode (changed objects are applied as a server-side dry run, so the apiserver
    still validates them).
seealso:
  - module: kubernetes.core.k8s
"""

EXAMPLES = r"""
- name: Apply the application and wait for the rollout
  dify_ce.kubernetes.dify_apply:
    definitions: "{{ lookup('ansible.builtin.template', 'deployment.yaml.j2') | ansible.builtin.from_yaml_all | list }}"
    wait: true
    prune_kinds:
      - {api_version: policy/v1, kind: PodDisruptionBudget}
    prune_selector: app.kubernetes.io/managed-by=dify_ce.kubernetes
    prune_namespace: dify
"""

RETURN = r"""
objects:
  description:
    - Every object and what happened to it (V(created), V(configured), V(unchanged), V(deleted)).
    - Services of type LoadBalancer waited for have C(load_balancer), their C(status.loadBalancer.ingress).
  returned: always
  type: list
  elements: dict
  sample: [{kind: Deployment, name: dify-api, namespace: dify, action: unchanged}]
"""

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.apply import apply_with  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.args import (  # noqa: E402
    APPLY_ARG_SPEC,
    APPLY_REQUIRED_TOGETHER,
    apply_problems,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.module import DifyModule  # noqa: E402


class DifyApply(DifyModule):
    def problems(self) -> list:
        return apply_problems(self.params)

    def execute(self) -> dict:
        return apply_with(self.kube, self.params, self.check_mode)


def main() -> None:
    DifyApply(APPLY_ARG_SPEC, required_together=APPLY_REQUIRED_TOGETHER).main()


if __name__ == "__main__":
    main()
