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

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.apply import read_all  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.args import READS_ARG_SPEC, reads_problems  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.module import DifyModule  # noqa: E402


class DifyInfo(DifyModule):
    def problems(self) -> list:
        return reads_problems(self.params)

    def execute(self) -> dict:
        return {"changed": False, "objects": read_all(self.kube, self.params["reads"])}


def main() -> None:
    DifyInfo(READS_ARG_SPEC).main()


if __name__ == "__main__":
    main()
