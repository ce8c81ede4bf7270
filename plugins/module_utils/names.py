# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every name the collection gives to objects, labels and annotations, in one place."""

from __future__ import annotations

MANAGED_BY = "dify_ce.kubernetes"
FIELD_MANAGER = "dify_ce.kubernetes"
ANNOTATION_PREFIX = "dify-ce.kubernetes/"
# Hash of the rendered object, on every object we apply: unchanged hash + live object still
# holding every rendered field = nothing to send.
APPLIED_HASH = ANNOTATION_PREFIX + "applied-hash"
# Pod template annotation: a pod restarts exactly when the configuration it reads changes.
CONFIG_HASH = ANNOTATION_PREFIX + "config-hash"
# The image a Job runs (the record compares it).
JOB_IMAGE = ANNOTATION_PREFIX + "image"
# Every record (migration, backups, provider setup, adoption, the operation under way) carries it,
# and no prune selects it (records.py).
RECORD_LABEL = ANNOTATION_PREFIX + "record"
# The hash of the pod a Job runs: a Job started with another pod (a fixed pull secret, other
# resources) is replaced, never attached to.
JOB_POD_HASH = ANNOTATION_PREFIX + "pod-hash"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VERSION = "app.kubernetes.io/version"

APP = "dify"
MANAGED_SELECTOR = f"{LABEL_MANAGED_BY}={MANAGED_BY}"


def common_labels() -> dict[str, str]:
    """The labels of every object of the installation."""
    return {LABEL_NAME: APP, LABEL_PART_OF: APP, LABEL_MANAGED_BY: MANAGED_BY}


def labels(component: str) -> dict[str, str]:
    """The labels of every object of a component."""
    return dict(common_labels(), **{LABEL_COMPONENT: component})


def selector(component: str) -> dict[str, str]:
    """The labels that select the pods of a component (Services, NetworkPolicies, budgets)."""
    return {LABEL_NAME: APP, LABEL_COMPONENT: component}


def workload(component: str) -> str:
    """Deployment, StatefulSet and Service name of a component: dify-<component>."""
    return f"{APP}-{component}"


# ConfigMaps, Secrets, volumes and Jobs.
SHARED_ENV = "dify-shared-env"
CREDENTIALS = "dify-credentials"
PROVIDER_KEYS = "dify-provider-keys"
FILES_PVC = "dify-files"
PLUGIN_PVC = "dify-plugin-daemon"
BACKUPS_PVC = "dify-backups"
NGINX_CONFIG = "dify-nginx"
SSRF_PROXY_CONFIG = "dify-ssrf-proxy"
AGENT_SSRF_PROXY_CONFIG = "dify-agent-ssrf-proxy"
AGENT_HOME_PVC = "dify-agent-local-sandbox-home"
AGENT_WORKSPACE_PVC = "dify-agent-local-sandbox-workspace"
POSTGRES_INIT = "dify-postgres-init"
PGVECTOR_INIT = "dify-pgvector-init"
INGRESS = "dify"
HTTP_ROUTE = "dify"
# On the Secret dify-credentials: the vector store the installation keeps its vectors in (none:
# Weaviate, the only store before dify_vector_store). A change is refused unless asked for.
VECTOR_STORE_ANNOTATION = ANNOTATION_PREFIX + "vector-store"
DEFAULT_DENY_POLICY = "dify-default-deny"

MIGRATION_JOB = "dify-db-migration"
# The migration record: a ConfigMap named like the Job (`kubectl get cm,job dify-db-migration`).
MIGRATION_RECORD = MIGRATION_JOB
BACKUP_JOB = "dify-db-backup"
# The backups made before upgrades (name -> from, to, time, files), data instead of file names.
BACKUP_RECORD = "dify-backups"
RESTORE_JOB = "dify-db-restore"
# Checks both dumps of the backup before a restore stops anything.
RESTORE_CHECK_JOB = "dify-db-restore-check"
# The copy of Weaviate's volume before its image changes (in dify-backups, under weaviate/).
WEAVIATE_BACKUP_JOB = "dify-weaviate-backup"
STATUS_JOB = "dify-status-probe"
ROTATION_JOB = "dify-db-password-rotation"
ROTATION_SECRET = "dify-db-password-rotation"
PROVIDER_SETUP_JOB = "dify-provider-setup"
PROVIDER_SETUP_SCRIPT = "dify-provider-setup-script"
PROVIDER_SETUP_RECORD = "dify-provider-setup"
# Adopting a running Dify: the record (source, time, what was copied), the Secret that hands the
# source database's password to the copy Job, and the copy Jobs.
ADOPTION_RECORD = "dify-adoption"
ADOPT_SOURCE_SECRET = "dify-adopt-source"
ADOPT_DB_JOB = "dify-adopt-db"
# The release-specific upgrade steps (catalog upgrade_steps): pending before they run, done after.
UPGRADE_STEPS_RECORD = "dify-upgrade-steps"
UPGRADE_STEP_JOB_PREFIX = "dify-upgrade-"
# A multi-step operation under way (a restore): what it is about to do and what ran before it.
OPERATION_RECORD = "dify-operation"
# The Lease of the run that works on the namespace (lock.py).
LOCK = "dify-lock"
ADOPT_DB = "adopt-db"
ADOPT_RECEIVE = "adopt-receive"
ADOPT_SEND = "adopt-send"


def statefulset_claim(component: str) -> str:
    """The volume claim a StatefulSet's template "data" creates for pod 0."""
    return f"data-{workload(component)}-0"


# Components of Jobs (their pods get NetworkPolicies of their own).
MIGRATION = "db-migration"
DB_TOOLS = "db-tools"
WEAVIATE_BACKUP = "weaviate-backup"
STATUS_PROBE = "status-probe"
PROVIDER_SETUP = "provider-setup"


# The container of each Job: named after what it does, so that `kubectl logs job/<name>` reads as
# what it is, and a Job's output can be told apart by its container (the local cluster simulates
# each one's output by this name: tests/cluster/simulated-output/).
class JobContainer:
    MIGRATE = "migrate"
    STATUS_PROBE = "status-probe"
    BACKUP = "backup"
    RESTORE = "restore"
    RESTORE_CHECK = "restore-check"
    UPGRADE_STEP = "upgrade-step"
    ROTATE_PASSWORD = "rotate-password"
    PROVIDER_SETUP = "provider-setup"
    WEAVIATE_BACKUP = "weaviate-backup"
    ADOPT_DB = "adopt-db"
    ADOPT_RECEIVE = "adopt-receive"
    ADOPT_SEND = "adopt-send"
