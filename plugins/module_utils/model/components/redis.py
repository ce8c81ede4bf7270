# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis: cache, Celery broker and the agent's runs (bundled with dify_redis_enabled, else
dify_redis_host)."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    STATEFULSET,
    Component,
    Port,
    Workload,
    secret_ref,
    shell,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import REDIS as SERVICE
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import Settings


def _redis(c: Component, b: Any) -> Workload:
    redis_ping = "redis-cli ping | grep -q PONG"
    return c.workload(
        b,
        command=["/bin/sh", "-c"],
        args=['exec redis-server --requirepass "$REDIS_PASSWORD" --appendonly yes --dir /data'],
        env=[
            secret_ref("REDIS_PASSWORD", "REDIS_PASSWORD"),
            secret_ref("REDISCLI_AUTH", "REDIS_PASSWORD"),
        ],
        readiness=shell(redis_ping, periodSeconds=5),
        liveness=shell(redis_ping, periodSeconds=30),
        data_path="/data",
        data_size=b.s.redis_storage_size,
        # uid 999 is "redis" in the alpine image.
        pod_security={"runAsUser": 999, "runAsGroup": 999, "fsGroup": 999, "runAsNonRoot": True},
    )


def checks(s: Settings) -> list[str]:
    """An external Redis needs its host."""
    if s.bundled(SERVICE) or s.redis_host:
        return []
    return ["dify_redis_enabled is false, so dify_redis_host (the external Redis) is required."]


REDIS = Component(
    name="redis",
    kind=STATEFULSET,
    pod=_redis,
    image="redis",
    ports=(Port("redis", 6379, SERVICE),),
    default_resources={"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
    checks=checks,
)
