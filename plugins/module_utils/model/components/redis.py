# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Redis: cache, Celery broker and the agent's runs (bundled with dify_redis_enabled, else
dify_redis_host, or the master of dify_redis_sentinels)."""

from __future__ import annotations

import re
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


NODE = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")
REDIS_URL = re.compile(r"^rediss?://[^/\s]+(/[0-9]*)?$")
# From 1.13 the api's event bus (EVENT_BUS_REDIS_URL, alias of PUBSUB_REDIS_URL) builds its one
# URL from REDIS_HOST when unset and does not follow Sentinel
# (dify:api/configs/middleware/cache/redis_pubsub_config.py@59639ca9b2 and @f68cabe226).
EVENT_BUS_SINCE = (1, 13)


def sentinel(s: Settings) -> bool:
    return bool(s.get("redis_sentinels"))


def _line(tag: str) -> tuple[int, ...]:
    match = re.match(r"^v?(\d+)\.(\d+)", tag or "")
    return (int(match.group(1)), int(match.group(2))) if match else ()


def checks(s: Settings) -> list[str]:
    """An external Redis needs its host, or its sentinels with the master's name (and, from 1.13,
    a URL for what does not follow Sentinel)."""
    if s.bundled(SERVICE):
        if sentinel(s):
            return ["dify_redis_sentinels is set, so Redis is external: set dify_redis_enabled: false."]
        return []
    if not sentinel(s):
        if s.redis_host:
            return []
        return ["dify_redis_enabled is false, so dify_redis_host (the external Redis) or dify_redis_sentinels is "
                "required."]  # fmt: skip
    bad = [node for node in s.redis_sentinels if not NODE.match(str(node))]
    return [message for ok, message in (
        (not bad, f"dify_redis_sentinels must be host:port entries (like sentinel-0.redis:26379), not {bad}."),
        (bool(s.redis_sentinel_service_name), "dify_redis_sentinels is set, so dify_redis_sentinel_service_name (the "
                                              "master the sentinels watch, e.g. mymaster) is required."),
        (s.redis_sentinel_socket_timeout > 0, "dify_redis_sentinel_socket_timeout must be a positive number of "
                                              "seconds."),
        (_line(s.image_tag) < EVENT_BUS_SINCE or bool(REDIS_URL.match(s.redis_event_bus_url or "")),
         f"dify_redis_sentinels is set: Dify {s.image_tag} (1.13 and later) connects its event bus "
         "(EVENT_BUS_REDIS_URL) to one Redis URL, which does not follow Sentinel. Set dify_redis_event_bus_url to a "
         "redis:// URL that api and worker both reach (a proxy that follows the master, or a Redis of its own); "
         "from 1.16 the agent uses it too."),
    ) if not ok]  # fmt: skip


def client_env(s: Settings) -> dict[str, str]:
    """What api, worker, beat, the Jobs of the api image and the plugin daemon are told beyond
    REDIS_HOST/REDIS_PORT (the shared environment): the sentinels, for Redis and for Celery's
    broker (dify:api/configs/middleware/cache/redis_config.py and api/configs/middleware/__init__.py
    @f68cabe226; the daemon reads the same REDIS_* names, daemon:internal/types/app/config.go@0.6.3).
    Their passwords, the broker URL and the event bus URL are in the Secret (credentials.py)."""
    if not sentinel(s):
        return {}
    timeout = str(s.redis_sentinel_socket_timeout)
    env = {
        "REDIS_USE_SENTINEL": "true",
        "REDIS_SENTINELS": ",".join(s.redis_sentinels),
        "REDIS_SENTINEL_SERVICE_NAME": s.redis_sentinel_service_name,
        "REDIS_SENTINEL_SOCKET_TIMEOUT": timeout,
        "CELERY_USE_SENTINEL": "true",
        "CELERY_SENTINEL_MASTER_NAME": s.redis_sentinel_service_name,
        "CELERY_SENTINEL_SOCKET_TIMEOUT": timeout,
    }
    if s.redis_sentinel_username:
        env["REDIS_SENTINEL_USERNAME"] = s.redis_sentinel_username
    return env


# beat's liveness probe through the sentinels: the master they name answers (its broker database).
SENTINEL_PING = """\
import os
from redis.sentinel import Sentinel
e = os.environ
nodes = [(n.rsplit(":", 1)[0], int(n.rsplit(":", 1)[1])) for n in e["REDIS_SENTINELS"].split(",")]
auth = {"username": e.get("REDIS_SENTINEL_USERNAME"), "password": e.get("CELERY_SENTINEL_PASSWORD")}
auth = {k: v for k, v in auth.items() if v}
sentinels = Sentinel(nodes, socket_timeout=5, sentinel_kwargs=dict(auth, socket_timeout=5))
name, password = e["CELERY_SENTINEL_MASTER_NAME"], e.get("REDIS_PASSWORD") or None
sentinels.master_for(name, password=password, db=1, socket_timeout=5).ping()
"""


def sentinel_liveness(s: Settings) -> dict[str, Any] | None:
    """beat's liveness probe with sentinels (its broker URL is sentinel://, which redis.from_url
    does not take); None without."""
    if not sentinel(s):
        return None
    return {"exec": {"command": ["python", "-c", SENTINEL_PING]}, "initialDelaySeconds": 30, "periodSeconds": 60,
            "timeoutSeconds": 20, "failureThreshold": 5}  # fmt: skip


REDIS = Component(
    name="redis",
    kind=STATEFULSET,
    pod=_redis,
    image="redis",
    ports=(Port("redis", 6379, SERVICE),),
    default_resources={"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
    checks=checks,
)
