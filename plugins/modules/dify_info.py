#!/usr/bin/python

# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dify_info
short_description: Read several Kubernetes objects in one module run
version_added: 0.1.0
author:
  - Dify CE Kubernetes maintainers (@dify-ce)
description:
  - Reads a list of objects or collections, each returned in the shape of
    M(kubernetes.core.k8s_info) (C(resources), empty when nothing matches), keyed by an id of
    your choice.
  - One module run with one API client instead of a C(k8s_info) task per read; the dify role
    reads the stored credentials, the database volume and the StorageClasses with it before
    anything changes.
  - Secrets are returned with their data; use C(no_log) on the task when reading them.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  reads:
    description: What to read.
    type: list
    elements: dict
    required: true
    suboptions:
      id:
        description: Key of this read in RV(objects).
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
        description: Namespace (namespaced kinds); for a list, empty means all namespaces.
        type: str
      label_selector:
        description: Label selector of a list, e.g. V(app.kubernetes.io/name=dify).
        type: str
requirements:
  - kubernetes >= 24.2.0
notes:
  - Supports check mode (it only reads).
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Read the credentials and the StorageClasses
  dify_ce.kubernetes.dify_info:
    reads:
      - {id: credentials, api_version: v1, kind: Secret, namespace: dify, name: dify-credentials}
      - {id: storage_classes, api_version: storage.k8s.io/v1, kind: StorageClass}
  register: existing
  no_log: true

- name: Show the classes
  ansible.builtin.debug:
    msg: "{{ existing.objects.storage_classes.resources | map(attribute='metadata.name') }}"
"""

RETURN = r"""
objects:
  description: For every read, by its id, the objects found (C(resources), a list).
  returned: success
  type: dict
  sample: {storage_classes: {resources: [{kind: StorageClass, metadata: {name: nutanix-volume}}]}}
"""

import traceback  # noqa: E402

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.apply import ApplyClient, ApplyError, read_all  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job_module import (  # noqa: E402
    AUTH_ARG_SPEC,
    KUBERNETES_CORE_IMPORT_ERROR,
)

ARGUMENT_SPEC = dict(
    reads={
        "type": "list",
        "elements": "dict",
        "required": True,
        "options": {
            "id": {"type": "str", "required": True},
            "api_version": {"type": "str", "required": True},
            "kind": {"type": "str", "required": True},
            "name": {"type": "str"},
            "namespace": {"type": "str"},
            "label_selector": {"type": "str"},
        },
    },
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

    module = AnsibleK8SModule(argument_spec=spec, supports_check_mode=True)
    ids = [read["id"] for read in module.params["reads"]]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        module.fail_json(msg=f"reads: ids must be unique, {duplicated} repeat")
    try:
        client = get_api_client(module=module)
        objects = read_all(ApplyClient(client.client), module.params["reads"])
    except ApplyError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    except CoreException as exc:
        module.fail_from_exception(exc)
    except Exception as exc:  # connection errors: the reason first
        module.fail_json(msg=f"Kubernetes API error: {api_message(exc)}", exception=traceback.format_exc())
    module.exit_json(changed=False, objects=objects)


if __name__ == "__main__":
    main()
