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
  - Reads what exists with one LIST per kind and namespace; an object whose live state already
    has every field and value of the given one is not sent again (no request, reported
    V(unchanged)); the others are applied (with O(force_conflicts), fields edited by hand are
    taken back). Quantities are compared by value (V(0.5) equals V(500m)).
  - With O(wait), follows Deployments, StatefulSets and DaemonSets with the watch API until their
    rollout finished, and fails naming the workloads that did not, with their conditions.
  - With O(prune_kinds), first deletes objects of those kinds that carry the O(prune_selector)
    labels but are not in O(definitions) (for objects that exist only with some settings).
  - The results name the objects and what happened to them; object contents (Secrets!) are
    never returned.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
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
  description: Every object and what happened to it (V(created), V(configured), V(unchanged), V(deleted)).
  returned: always
  type: list
  elements: dict
  sample: [{kind: Deployment, name: dify-api, namespace: dify, action: unchanged}]
"""

import traceback  # noqa: E402

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.apply import Applier, ApplyClient, ApplyError  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job_module import (  # noqa: E402
    AUTH_ARG_SPEC,
    KUBERNETES_CORE_IMPORT_ERROR,
)

ARGUMENT_SPEC = dict(
    definitions={"type": "list", "elements": "dict", "required": True},
    field_manager={"type": "str", "default": "dify_ce.kubernetes"},
    force_conflicts={"type": "bool", "default": True},
    wait={"type": "bool", "default": False},
    wait_timeout={"type": "int", "default": 600},
    prune_kinds={
        "type": "list",
        "elements": "dict",
        "default": [],
        "options": {"api_version": {"type": "str", "required": True}, "kind": {"type": "str", "required": True}},
    },
    prune_selector={"type": "str"},
    prune_namespace={"type": "str"},
)


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    spec = dict(AUTH_ARG_SPEC, **ARGUMENT_SPEC)
    if KUBERNETES_CORE_IMPORT_ERROR is not None:
        AnsibleModule(argument_spec=spec).fail_json(msg="this module needs the kubernetes.core collection (>= 6.0.0)")
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

    from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job_client import api_message

    module = AnsibleK8SModule(
        argument_spec=spec,
        supports_check_mode=True,
        required_together=[("prune_selector", "prune_namespace")],
    )
    params = module.params
    if params["wait_timeout"] <= 0:
        module.fail_json(msg=f"wait_timeout must be a positive number of seconds, got {params['wait_timeout']}")
    if params["prune_kinds"] and not params["prune_selector"]:
        module.fail_json(msg="prune_kinds needs prune_selector and prune_namespace (never prune without a selector)")
    try:
        client = get_api_client(module=module)
        applier = Applier(
            ApplyClient(client.client), params["field_manager"], params["force_conflicts"], module.check_mode
        )
        outcome = applier.run(
            params["definitions"],
            wait=params["wait"],
            timeout=params["wait_timeout"],
            prune_kinds=params["prune_kinds"],
            prune_selector=params["prune_selector"],
            prune_namespace=params["prune_namespace"],
        )
    except ApplyError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except CoreException as exc:
        module.fail_from_exception(exc)
    except Exception as exc:  # API errors (validation, Forbidden, conflicts): the apiserver's own message
        module.fail_json(msg=f"Kubernetes API error: {api_message(exc)}", exception=traceback.format_exc())
    module.exit_json(changed=outcome.changed, objects=outcome.objects)


if __name__ == "__main__":
    main()
