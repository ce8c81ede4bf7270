# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plugin daemon: runs plugins for api and worker, with a database of its own
(dify_db_plugin_database) on the same server, the shared environment and its own volume."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.api import app_env_from
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    DEPLOYMENT,
    ON_REQUEST,
    RUNTIME_DEFAULT,
    Component,
    Port,
    Workload,
    http,
    secret_ref,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import DATABASE, REDIS


def _plugin_daemon(c: Component, b: Any) -> Workload:
    s = b.s
    return c.workload(
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


def volume_claim(b: Any) -> dict[str, Any]:
    s = b.s
    return b.claim(names.PLUGIN_PVC, "plugin-daemon", "ReadWriteOnce", s.storage_class, s.plugin_storage_size)


PLUGIN_DAEMON = Component(
    name="plugin-daemon",
    kind=DEPLOYMENT,
    pod=_plugin_daemon,
    image="plugin_daemon",
    uses=("api", DATABASE, REDIS, "ssrf-proxy"),
    # The debug port serves no one in the namespace: kubectl port-forward svc/dify-plugin-daemon 5003.
    ports=(Port("http", 5002, "plugin-daemon"), Port("debug", 5003)),
    default_resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    schema_independent=True,
    internet=ON_REQUEST,
)
