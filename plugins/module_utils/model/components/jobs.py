# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pods of the Jobs, as components: what they reach and their resources. Their pods are built
in kinds/jobs.py (from the api pod, or from PostgreSQL's: postgres.tools_pod)."""

from __future__ import annotations

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import JOB, Component
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import DATABASE, REDIS

# The migration Job (dify_migrate): exactly the api pod, with the api's resources unless
# dify_resources.migration is set (it has no default of its own).
MIGRATION = Component(name=names.MIGRATION, kind=JOB, image="api", uses=(DATABASE, REDIS), resources="migration")
# Backup, restore and password rotation: PostgreSQL's image.
DB_TOOLS = Component(
    name=names.DB_TOOLS,
    kind=JOB,
    image="postgres",
    uses=(DATABASE,),
    resources="tools",
    default_resources={"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
)
# The status playbook's probe (api image): the database and the plugin daemon, through the api.
STATUS_PROBE = Component(name=names.STATUS_PROBE, kind=JOB, image="api", uses=("api", "plugin-daemon", DATABASE),
                         resources="tools")  # fmt: skip
# Stores the OpenAI key through the console API.
PROVIDER_SETUP = Component(name=names.PROVIDER_SETUP, kind=JOB, image="api", uses=("api",), resources="tools")
JOBS = (MIGRATION, DB_TOOLS, STATUS_PROBE, PROVIDER_SETUP)
