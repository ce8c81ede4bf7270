"""Make the collection importable as ansible_collections.dify_ce.kubernetes, and the cluster
fixtures (tests/cluster_fixtures.py) available to every tier that needs the local cluster.

The checkout carries collections/ansible_collections/dify_ce/kubernetes -> ../../..,
the playbook-adjacent collection path that ansible-playbook and AWX also use.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / "collections"
TESTS = ROOT / "tests"
for path in (COLLECTIONS, TESTS):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# Fixtures: cluster (started on demand), namespace, pod_logs, ansible.
from cluster_fixtures import ansible, cluster, namespace, pod_logs  # noqa: E402, F401  pylint: disable=unused-import
