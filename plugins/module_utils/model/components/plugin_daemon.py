# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plugin daemon: runs plugins for api and worker, with a database of its own
(dify_db_plugin_database) on the same server, the shared environment and its own volume (or
S3-compatible object storage, dify_plugin_storage_type: aws_s3).

Several replicas (dify_plugin_daemon_replicas, dify_ha) form the daemon's own cluster through
Redis and redirect plugin calls to the replica that runs the plugin (daemon:internal/cluster/
*.go@0.6.3): they share the installed packages (a ReadWriteMany volume or the bucket) and reach
each other on their port; each keeps its plugins' working directory to itself."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import observability
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.api import app_env_from
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    DEPLOYMENT,
    ON_REQUEST,
    RUNTIME_DEFAULT,
    Component,
    Metrics,
    Port,
    Workload,
    http,
    secret_ref,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import DATABASE, REDIS, Settings

# Each replica's own working directory when the storage is shared (PLUGIN_WORKING_PATH).
OWN_WORKING_PATH = "/app/cwd"


def _plugin_daemon(c: Component, b: Any) -> Workload:
    s = b.s
    w = c.workload(
        b,
        env=[
            {"name": "DB_DATABASE", "value": s.db_plugin_database},
            {"name": "SERVER_PORT", "value": "5002"},
            secret_ref("SERVER_KEY", "PLUGIN_DAEMON_KEY"),
            {"name": "DIFY_INNER_API_URL", "value": "http://dify-api:5001"},
            secret_ref("DIFY_INNER_API_KEY", "INNER_API_KEY_FOR_PLUGIN"),
            {"name": "MAX_PLUGIN_PACKAGE_SIZE", "value": "52428800"},
            {"name": "PPROF_ENABLED", "value": "false"},
            {"name": "PLUGIN_REMOTE_INSTALLING_HOST", "value": "0.0.0.0"},
            {"name": "PLUGIN_REMOTE_INSTALLING_PORT", "value": "5003"},
            {"name": "PLUGIN_WORKING_PATH", "value": "/app/storage/cwd"},
            {"name": "FORCE_VERIFYING_SIGNATURE", "value": "true"},
            {"name": "PYTHON_ENV_INIT_TIMEOUT", "value": "120"},
            {"name": "PLUGIN_MAX_EXECUTION_TIMEOUT", "value": "600"},
            {"name": "PLUGIN_STORAGE_TYPE", "value": "local"},
            {"name": "PLUGIN_STORAGE_LOCAL_ROOT", "value": "/app/storage"},
            {"name": "PLUGIN_INSTALLED_PATH", "value": "plugin"},
            {"name": "PLUGIN_PACKAGE_CACHE_PATH", "value": "plugin_packages"},
            {"name": "PLUGIN_MEDIA_CACHE_PATH", "value": "assets"},
        ],
        env_from=app_env_from(),
        readiness=http("/health/check"),
        liveness=http("/health/check", periodSeconds=30),
        startup=http("/health/check", periodSeconds=5, failureThreshold=60),
        volumes=[{"name": "storage", "persistentVolumeClaim": {"claimName": names.PLUGIN_PVC}}],
        mounts=[{"name": "storage", "mountPath": "/app/storage"}],
        security={
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": dict(RUNTIME_DEFAULT),
        },
        # The image runs as root (no USER in its Dockerfile), here without capabilities: root may
        # then write only what it owns or its group may write. fsGroup 0 makes the volume the
        # group's whoever wrote it; OnRootMismatch keeps restarts from walking every plugin file.
        pod_security={"fsGroup": 0, "fsGroupChangePolicy": "OnRootMismatch"},
        # One replica on a ReadWriteOnce volume: the old pod must go before the new one mounts it.
        strategy={"type": "Recreate"},
    )
    return _operators(b, w)


def shared(s: Settings) -> bool:
    """Whether replicas on several nodes share the installed plugins (a ReadWriteMany volume or S3)."""
    return s.get("plugin_storage_type", "local") == "aws_s3" or s.get("plugin_storage_access_mode") == "ReadWriteMany"


def _operators(b: Any, w: Workload) -> Workload:
    """The workload with what the operators' settings change (Dify's names, the daemon's own where
    they differ): shared storage (a ReadWriteMany volume with a working directory per pod, or the
    bucket with the pod's own storage root; several pods may then run side by side), the pip
    mirror, OpenTelemetry."""
    s = b.s
    changes: list[dict[str, Any]] = []
    if shared(s):
        w.strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    if shared(s) and s.plugin_storage_type == "local":
        w.volumes.append({"name": "cwd", "emptyDir": {}})
        w.mounts.append({"name": "cwd", "mountPath": OWN_WORKING_PATH})
        changes.append({"name": "PLUGIN_WORKING_PATH", "value": OWN_WORKING_PATH})
    if s.get("plugin_storage_type") == "aws_s3":
        w.volumes = [{"name": "storage", "emptyDir": {}}]
        # Dify's compose maps its PLUGIN_S3_*/PLUGIN_AWS_* onto the daemon's S3_*/AWS_* names
        # (dify:docker/docker-compose-template.yaml@59639ca9b2; daemon:.env.example@0.6.3).
        changes += [
            {"name": "PLUGIN_STORAGE_TYPE", "value": "aws_s3"},
            {"name": "PLUGIN_STORAGE_OSS_BUCKET", "value": s.plugin_storage_oss_bucket},
            {"name": "S3_USE_AWS", "value": str(s.plugin_s3_use_aws).lower()},
            {"name": "S3_ENDPOINT", "value": s.plugin_s3_endpoint},
            {"name": "S3_USE_PATH_STYLE", "value": str(s.plugin_s3_use_path_style).lower()},
            {"name": "S3_USE_AWS_MANAGED_IAM", "value": str(s.plugin_s3_use_aws_managed_iam).lower()},
            {"name": "AWS_REGION", "value": s.plugin_aws_region},
        ]
        if not s.plugin_s3_use_aws_managed_iam:
            changes += [secret_ref("AWS_ACCESS_KEY", "PLUGIN_AWS_ACCESS_KEY"),
                        secret_ref("AWS_SECRET_KEY", "PLUGIN_AWS_SECRET_KEY")]  # fmt: skip
    if s.get("pip_mirror_url"):
        # An explicit mirror, and no probing of public ones (daemon 0.6; older ones ignore it).
        changes += [{"name": "PIP_MIRROR_URL", "value": s.pip_mirror_url},
                    {"name": "PIP_MIRROR_AUTO_DETECT", "value": "false"}]  # fmt: skip
    if s.get("pip_extra_args"):
        changes.append({"name": "PIP_EXTRA_ARGS", "value": s.pip_extra_args})
    changes += observability.daemon_env(s)
    replaced = {e["name"] for e in changes}
    w.env = [e for e in w.env if e["name"] not in replaced] + changes
    return w


def volume_claim(b: Any) -> dict[str, Any] | None:
    """Its volume (none with S3): ReadWriteOnce, or ReadWriteMany for several replicas."""
    s = b.s
    if s.get("plugin_storage_type", "local") == "aws_s3":
        return None
    mode = s.get("plugin_storage_access_mode") or "ReadWriteOnce"
    return b.claim(names.PLUGIN_PVC, "plugin-daemon", mode, s.get("plugin_storage_class") or s.storage_class,
                   s.plugin_storage_size)  # fmt: skip


def checks(s: Settings) -> list[str]:
    """Several replicas need shared storage; S3 needs its bucket and keys."""
    found = []
    if s.plugin_daemon_replicas > 1 and not shared(s):
        found.append(
            f"dify_plugin_daemon_replicas is {s.plugin_daemon_replicas}, but the plugin volume is ReadWriteOnce "
            "(dify_plugin_storage_access_mode): a second pod on another node could not mount it. Use "
            "dify_plugin_storage_access_mode: ReadWriteMany with a class that offers it (dify_plugin_storage_class, "
            "e.g. Nutanix Files), or dify_plugin_storage_type: aws_s3, or one replica."
        )
    if s.plugin_storage_type == "aws_s3":
        keys = s.plugin_s3_use_aws_managed_iam or (
            bool(s.plugin_aws_access_key and s.plugin_aws_secret_key) or bool(s.credentials_secret)
        )
        if not s.plugin_storage_oss_bucket or not keys or not (s.plugin_s3_endpoint or s.plugin_s3_use_aws):
            found.append(
                "dify_plugin_storage_type is aws_s3, so dify_plugin_storage_oss_bucket, dify_plugin_s3_endpoint (or "
                "dify_plugin_s3_use_aws) and dify_plugin_aws_access_key/dify_plugin_aws_secret_key (or "
                "dify_plugin_s3_use_aws_managed_iam) are required."
            )
    return found


PLUGIN_DAEMON = Component(
    name="plugin-daemon",
    kind=DEPLOYMENT,
    pod=_plugin_daemon,
    image="plugin_daemon",
    uses=("api", DATABASE, REDIS, "ssrf-proxy"),
    # The debug port serves no one in the namespace: kubectl port-forward svc/dify-plugin-daemon 5003.
    ports=(Port("http", 5002, "plugin-daemon"), Port("debug", 5003)),
    default_resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    replicas="plugin_daemon_replicas",
    schema_independent=True,
    internet=ON_REQUEST,
    checks=checks,
    # GET /metrics/ on its port, PROMETHEUS_ENABLED (default true) from daemon 0.5.7 (daemon PR #567;
    # daemon:internal/server/http_server.go@0.6.3): Dify 1.14 and later.
    metrics=Metrics(Port("http", 5002, "plugin-daemon"), "/metrics/", (("PROMETHEUS_ENABLED", "true"),), (0, 5, 7)),
    peers=True,
    scales=shared,
)


def check_volume(s: Settings, claim: dict[str, Any] | None) -> None:
    """A volume claim's access mode and class cannot change: another one than the plugin volume
    has is refused before anything changes (read only when a setting asks for something else
    than the default)."""
    if not claim or s.get("plugin_storage_type", "local") != "local":
        return
    spec = claim.get("spec") or {}
    have_mode = (spec.get("accessModes") or ["ReadWriteOnce"])[0]
    want_class = s.get("plugin_storage_class") or s.storage_class
    differs = []
    if have_mode != s.plugin_storage_access_mode:
        differs.append(f"dify_plugin_storage_access_mode {s.plugin_storage_access_mode} (it has {have_mode})")
    if want_class and spec.get("storageClassName") and spec["storageClassName"] != want_class:
        differs.append(f"dify_plugin_storage_class {want_class} (it has {spec['storageClassName']})")
    if differs:
        raise InputError(
            f"Nothing was changed. The plugin volume {names.PLUGIN_PVC} exists, and a volume claim's access mode and "
            f"class cannot change: {'; '.join(differs)}. Copy the plugins to a new volume first (or reinstall the "
            'plugins), or keep the volume as it is (docs/operators.md, "Several plugin daemons").'
        )
