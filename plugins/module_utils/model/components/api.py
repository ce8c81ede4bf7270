# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The api pod family: api, worker, beat and the websocket process run Dify's api image with the
shared environment (the ConfigMap dify-shared-env next to the Secret dify-credentials).

The api pod is built once (``pod``): the api, worker and beat Deployments and every Job that runs
the api image (migration, status probe, provider setup) start from it.
"""

from __future__ import annotations

import copy
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    DEPLOYMENT,
    DIFY_USER,
    FILES,
    ON_REQUEST,
    Component,
    Port,
    Workload,
    http,
    shell,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.redis import sentinel_liveness
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import DATABASE, REDIS, VECTOR_STORE

# The api's own variables (Dify's compose sets them on the api only): what Dify shows for remote
# plugin debugging, the plugin daemon's debug port (kubectl port-forward svc/dify-plugin-daemon 5003).
API_ONLY_ENV = [
    {"name": "PLUGIN_REMOTE_INSTALL_HOST", "value": "localhost"},
    {"name": "PLUGIN_REMOTE_INSTALL_PORT", "value": "5003"},
]
FILES_PATH = "/app/api/storage"


def http_probes() -> dict[str, Any]:
    """The probes of the api's HTTP servers (new dicts for every pod)."""
    return {
        "readiness": http("/health"),
        "liveness": http("/health", periodSeconds=30, timeoutSeconds=10),
        "startup": http("/health", periodSeconds=5, failureThreshold=60),
    }


def app_env_from() -> list[dict[str, Any]]:
    """envFrom of every container that runs Dify's api image."""
    return [{"configMapRef": {"name": names.SHARED_ENV}}, {"secretRef": {"name": names.CREDENTIALS}}]


def files_volume(b: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The files volume (none with object storage)."""
    if b.s.files_storage != "pvc":
        return [], []
    return (
        [{"name": "files", "persistentVolumeClaim": {"claimName": names.FILES_PVC}}],
        [{"name": "files", "mountPath": FILES_PATH}],
    )


def _app(c: Component, b: Any, serving: bool = True, **fields: Any) -> Workload:
    """A pod of the api image: the shared environment, and the files volume where it uses them."""
    volumes, mounts = files_volume(b) if FILES in c.uses else ([], [])
    base: dict[str, Any] = dict(env_from=app_env_from(), volumes=volumes, mounts=mounts, pod_security=dict(DIFY_USER))
    base.update(fields)
    if serving:
        return c.workload(b, **base)
    return Workload(name=c.name, image=b.images[c.image], resources=c.resources_key, **base)


def pod(b: Any) -> dict[str, Any]:
    """The pod every Job of the api image starts from: the api Deployment's pod without what
    serves traffic (ports, probes, spreading) and without MODE (Jobs set their command)."""
    w = _app(API, b, serving=False, env=copy.deepcopy(API_ONLY_ENV))
    return {
        "metadata": {"labels": names.labels("api")},
        "spec": b.pod_spec(w.pod_security, [b.container(w)], w.volumes),
    }


def _api(c: Component, b: Any) -> Workload:
    return _app(c, b, env=[{"name": "MODE", "value": "api"}, *API_ONLY_ENV], **http_probes())


def _worker(c: Component, b: Any) -> Workload:
    return _app(
        c,
        b,
        env=[{"name": "MODE", "value": "worker"}],
        # A worker that stops answering its broker's ping is stuck; restart it. With Dify's light
        # check where the image has it (api/celery_healthcheck.py, what Dify's compose uses: the
        # broker settings without importing the whole app), else through celery_entrypoint.
        liveness=shell(
            "app=celery_entrypoint; [ -f celery_healthcheck.py ] && app=celery_healthcheck; "
            'exec celery -A "$app.celery" inspect ping -d "celery@$HOSTNAME" --timeout 20',
            initialDelaySeconds=60,
            periodSeconds=60,
            timeoutSeconds=40,
            failureThreshold=5,
        ),
    )


def _beat(c: Component, b: Any) -> Workload:
    return _app(
        c,
        b,
        env=[{"name": "MODE", "value": "beat"}],
        # beat is useless without its broker; report (and after a while restart) when unreachable.
        liveness=sentinel_liveness(b.s)
        or shell(
            "python -c \"import os, redis; redis.Redis.from_url(os.environ['CELERY_BROKER_URL'], "
            'socket_timeout=5).ping()"',
            initialDelaySeconds=30,
            periodSeconds=60,
            timeoutSeconds=20,
            failureThreshold=5,
        ),
        # Exactly one beat: two would schedule every periodic task twice.
        strategy={"type": "Recreate"},
    )


def _websocket(c: Component, b: Any) -> Workload:
    # Dify's compose service api_websocket (dify:docker/docker-compose-template.yaml@7f392b6950 and
    # later): one gunicorn worker of the websocket class with 1000 connections (the entrypoint's
    # default would be 10). Up to 1.15 the Socket.IO server keeps its rooms in memory: one replica
    # (1.16.0 shares them through Redis, dify#38242; the collection still runs one).
    return _app(
        c,
        b,
        env=[
            {"name": "MODE", "value": "api"},
            {"name": "SERVER_WORKER_AMOUNT", "value": "1"},
            {"name": "SERVER_WORKER_CLASS", "value": "geventwebsocket.gunicorn.workers.GeventWebSocketWorker"},
            {"name": "SERVER_WORKER_CONNECTIONS", "value": "1000"},
            {"name": "GUNICORN_TIMEOUT", "value": "360"},
        ],
        **http_probes(),
    )


# What api and worker call: the plugin daemon, the sandbox (directly and through the SSRF proxy's
# reverse-proxy port), the SSRF proxy for HTTP nodes and tools, the data, the agent backend.
APP_USES = ("plugin-daemon", "sandbox", "ssrf-proxy", "sandbox-via-ssrf-proxy", DATABASE, REDIS, VECTOR_STORE,
            "agent-backend", FILES)  # fmt: skip
API = Component(
    name="api",
    kind=DEPLOYMENT,
    pod=_api,
    image="api",
    uses=APP_USES,
    ports=(Port("http", 5001, "api"),),
    default_resources={"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    replicas="api_replicas",
    autoscalable=True,
    internet=ON_REQUEST,
)
WORKER = Component(
    name="worker",
    kind=DEPLOYMENT,
    pod=_worker,
    image="api",
    uses=APP_USES,
    default_resources={"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    replicas="worker_replicas",
    autoscalable=True,
    internet=ON_REQUEST,
)
BEAT = Component(
    name="beat",
    kind=DEPLOYMENT,
    pod=_beat,
    image="api",
    uses=(DATABASE, REDIS),
    default_resources={"requests": {"cpu": "50m", "memory": "256Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
    internet=ON_REQUEST,
)
# The websocket process (workflow collaboration, 1.14.1 and later unless dify_collaboration is
# false): users through nginx; its data like the api's; the api's resources.
WEBSOCKET = Component(
    name="api-websocket",
    kind=DEPLOYMENT,
    pod=_websocket,
    image="api",
    uses=(DATABASE, REDIS),
    ports=(Port("http", 5001, "api-websocket"),),
    resources="api",
    feature="collaboration",
)


def shared_env(b: Any, vector_store: dict[str, str]) -> dict[str, str]:
    """The environment of api, worker, beat, the Jobs of the api image and the plugin daemon
    (Dify's compose shares it through the x-shared-env anchor): the ConfigMap dify-shared-env.
    Secret values live in the Secret dify-credentials, next to it in envFrom. ``vector_store``:
    what the vector store in use (bundled or external) tells its clients."""
    s, url = b.s, b.public_url
    env = {
        "MIGRATION_ENABLED": "false",
        "LOG_LEVEL": "INFO",
        "CONSOLE_API_URL": url,
        "CONSOLE_WEB_URL": url,
        "SERVICE_API_URL": url,
        "APP_API_URL": url,
        "APP_WEB_URL": url,
        "FILES_URL": url,
        "TRIGGER_URL": b.external_url,
        "INTERNAL_FILES_URL": "http://dify-api:5001",
        "DB_TYPE": "postgresql",
        "DB_USERNAME": s.db_username,
        "DB_HOST": b.db_host,
        "DB_PORT": str(s.db_port),
        "DB_DATABASE": s.db_database,
        "DB_PLUGIN_DATABASE": s.db_plugin_database,
        "REDIS_HOST": b.redis_host,
        "REDIS_PORT": str(s.redis_port),
        "REDIS_USERNAME": "",
        "REDIS_USE_SSL": str(s.redis_use_ssl).lower(),
        "REDIS_DB": "0",
        "CELERY_BACKEND": "redis",
        "BROKER_USE_SSL": str(s.redis_use_ssl).lower(),
        **vector_store,
        "CODE_EXECUTION_ENDPOINT": "http://dify-sandbox:8194",
        "SSRF_PROXY_HTTP_URL": "http://dify-ssrf-proxy:3128",
        "SSRF_PROXY_HTTPS_URL": "http://dify-ssrf-proxy:3128",
        "PLUGIN_DAEMON_URL": "http://dify-plugin-daemon:5002",
        "PLUGIN_DIFY_INNER_API_URL": "http://dify-api:5001",
        "PLUGIN_MAX_PACKAGE_SIZE": "52428800",
        "ENDPOINT_URL_TEMPLATE": b.external_url + "/e/{hook_id}",
        # Dify's compose values (the api entrypoint would fall back to 200 s and one worker).
        "GUNICORN_TIMEOUT": "360",
        "CELERY_WORKER_AMOUNT": "4",
        "MARKETPLACE_ENABLED": str(s.marketplace_enabled).lower(),
        "MARKETPLACE_API_URL": "https://marketplace.dify.ai",
    }
    if s.files_storage == "pvc":
        env.update(STORAGE_TYPE="opendal", OPENDAL_SCHEME="fs", OPENDAL_FS_ROOT="storage")
    else:
        env.update(
            STORAGE_TYPE="s3",
            S3_ENDPOINT=s.s3_endpoint,
            S3_BUCKET_NAME=s.s3_bucket,
            S3_REGION=s.s3_region,
            S3_USE_AWS_MANAGED_IAM=str(s.s3_use_aws_managed_iam).lower(),
        )
    if b.release.has("agent-backend"):
        env["AGENT_BACKEND_BASE_URL"] = "http://dify-agent-backend:5050"
    # Workflow collaboration: Dify's api turns it on by default from 1.14.1 (dify#35981); the
    # websocket process serves it. Switched off (dify_collaboration: false), the api is told so
    # (else the web would open a socket nothing serves).
    if b.release.has("api-websocket"):
        env["ENABLE_COLLABORATION_MODE"] = "true"
    elif b.release.offers("api-websocket"):
        env["ENABLE_COLLABORATION_MODE"] = "false"
    env.update({k: str(v) for k, v in s.extra_env.items()})
    return env
