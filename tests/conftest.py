"""Make the collection importable as ansible_collections.dify_ce.kubernetes.

The checkout carries collections/ansible_collections/dify_ce/kubernetes -> ../../..,
the playbook-adjacent collection path that ansible-playbook and AWX also use.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
