#!/usr/bin/python

# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: dify_record
short_description: Write one of the dify role's records
version_added: 0.3.0
author:
  - Dify CE Kubernetes maintainers (@dify-ce)
description:
  - The records are ConfigMaps that describe the data (the migration, the backups, the provider
    setup, the adoption, the operation under way). This writes one, merging O(data) into it (a
    null value removes a key), with optimistic concurrency and the label
    C(dify-ce.kubernetes/record), which no prune of the role selects.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - dify_ce.kubernetes.lock_option
options:
  namespace:
    description: Namespace of the installation.
    type: str
    required: true
  kind:
    description: Which record.
    type: str
    required: true
    choices: [migration, backups, provider-setup, adoption, operation, upgrade-steps]
  data:
    description: Keys to set (strings; other values are stored as JSON); null removes a key.
    type: dict
    default: {}
  replace:
    description: Drop the keys not in O(data).
    type: bool
    default: false
  state:
    description: V(absent) deletes the record.
    type: str
    choices: [present, absent]
    default: present
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Record a backup
  dify_ce.kubernetes.dify_record:
    namespace: dify
    kind: backups
    data:
      dify_1.11.4_to_1.11.5_20261201T080000Z: {from: 1.11.4, to: 1.11.5}
"""

RETURN = r"""
record:
  description: The record's data as written (null when deleted).
  returned: always
  type: dict
"""

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.args import RECORD_ARG_SPEC  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.coordination import record_with  # noqa: E402
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.module import DifyModule  # noqa: E402


class DifyRecord(DifyModule):
    def execute(self) -> dict:
        return record_with(self.kube, self.params, self.check_mode)


def main() -> None:
    DifyRecord(RECORD_ARG_SPEC).main()


if __name__ == "__main__":
    main()
