# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The agent (Dify 1.16 and later, dify_agent): api and worker call the agent backend; it keeps
runs in Redis, calls the plugin daemon and the api's inner API and drives its local sandbox. The
local sandbox reaches nothing but its own SSRF proxy (ssrf_proxy.AGENT_SSRF_PROXY, 1.16.1 and
later); in 1.16.0, which has none, the agent stub, the api and the internet directly, as Dify's
compose lets it."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    DEPLOYMENT,
    DIFY_USER,
    INTERNET,
    Component,
    Port,
    Workload,
    http,
    secret_ref,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import REDIS


def _backend(c: Component, b: Any) -> Workload:
    r = b.release
    legacy = r.agent_env == "shellctl"  # 1.16 names; 1.17 renamed them (the old ones still work)
    sandbox_endpoint = "DIFY_AGENT_SHELLCTL_ENTRYPOINT" if legacy else "DIFY_AGENT_LOCAL_SANDBOX_ENDPOINT"
    sandbox_token = "DIFY_AGENT_SHELLCTL_AUTH_TOKEN" if legacy else "DIFY_AGENT_LOCAL_SANDBOX_AUTH_TOKEN"
    env = [
        secret_ref("DIFY_AGENT_REDIS_URL", "AGENT_REDIS_URL"),
        {"name": "DIFY_AGENT_PLUGIN_DAEMON_URL", "value": "http://dify-plugin-daemon:5002"},
        secret_ref("DIFY_AGENT_PLUGIN_DAEMON_API_KEY", "PLUGIN_DAEMON_KEY"),
        {"name": "DIFY_AGENT_INNER_API_URL", "value": "http://dify-api:5001"},
        secret_ref("DIFY_AGENT_INNER_API_KEY", "INNER_API_KEY_FOR_PLUGIN"),
        {"name": sandbox_endpoint, "value": "http://dify-agent-local-sandbox:5004"},
        secret_ref(sandbox_token, "AGENT_SANDBOX_AUTH_TOKEN"),
        {"name": "DIFY_AGENT_STUB_API_BASE_URL", "value": "http://dify-agent-backend:5050/agent-stub"},
        secret_ref("DIFY_AGENT_SERVER_SECRET_KEY", "AGENT_SERVER_SECRET_KEY"),
    ]
    if r.agent_api_token:
        env.append(secret_ref("DIFY_AGENT_API_TOKEN", "AGENT_BACKEND_API_TOKEN"))
    if not legacy:
        env += [
            {"name": "DIFY_AGENT_RUNTIME_BACKEND", "value": "local"},
            {"name": "DIFY_AGENT_SANDBOX_FILES_BASE_URL", "value": "http://dify-api:5001"},
        ]
    return c.workload(
        b,
        env=env,
        readiness={"tcpSocket": {"port": "http"}},
        liveness={"tcpSocket": {"port": "http"}, "periodSeconds": 30},
        # The image's user dify (uid 1001, dify-agent/Dockerfile).
        pod_security=dict(DIFY_USER),
    )


def _local_sandbox(c: Component, b: Any) -> Workload:
    r = b.release
    env = [secret_ref("SHELLCTL_AUTH_TOKEN", "AGENT_SANDBOX_AUTH_TOKEN")]
    if r.has("agent-ssrf-proxy"):
        # Its only way out: the agent SSRF proxy (which also reaches the agent stub and /files);
        # its own loopback (the shell control server's clients) not through it.
        env += [{"name": "HTTP_PROXY", "value": "http://dify-agent-ssrf-proxy:3128"},
                {"name": "HTTPS_PROXY", "value": "http://dify-agent-ssrf-proxy:3128"},
                {"name": "NO_PROXY", "value": "localhost,127.0.0.1"}]  # fmt: skip
    if r.agent_volumes:
        volumes = [
            {"name": "home", "persistentVolumeClaim": {"claimName": names.AGENT_HOME_PVC}},
            {"name": "workspace", "persistentVolumeClaim": {"claimName": names.AGENT_WORKSPACE_PVC}},
        ]
    else:  # before 1.17 the home and the workspace lived as long as the container
        volumes = [{"name": "home", "emptyDir": {}}, {"name": "workspace", "emptyDir": {}}]
    return c.workload(
        b,
        env=env,
        readiness=http("/healthz"),
        liveness=http("/healthz", periodSeconds=30),
        volumes=volumes,
        mounts=[
            {"name": "home", "mountPath": "/home/dify"},
            {"name": "workspace", "mountPath": "/workspace"},
        ],
        # The image's user dify, created first in a Debian image: uid 1000 (useradd, no fixed uid).
        pod_security={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "runAsNonRoot": True},
        strategy={"type": "Recreate"},
    )


def volume_claims(b: Any) -> list[dict[str, Any]]:
    """The local sandbox's home and workspace (1.17 and later keep them)."""
    s = b.s
    if not (LOCAL_SANDBOX.runs(s, b.release) and b.release.agent_volumes):
        return []
    return [b.claim(claim, "agent-local-sandbox", "ReadWriteOnce", s.storage_class, s.agent_storage_size)
            for claim in (names.AGENT_HOME_PVC, names.AGENT_WORKSPACE_PVC)]  # fmt: skip


BACKEND = Component(
    name="agent-backend",
    kind=DEPLOYMENT,
    pod=_backend,
    image="agent_backend",
    uses=(REDIS, "plugin-daemon", "api", "agent-local-sandbox"),
    ports=(Port("http", 5050, "agent-backend"),),
    default_resources={"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    feature="agent",
)
LOCAL_SANDBOX = Component(
    name="agent-local-sandbox",
    kind=DEPLOYMENT,
    pod=_local_sandbox,
    image="agent_local_sandbox",
    uses=("agent-ssrf-proxy",),
    # Dify 1.16.0 has no agent SSRF proxy: it puts the local sandbox on the default network, from
    # where it calls the agent stub, the api's /files and the internet itself
    # (dify:docker/docker-compose-template.yaml@5c6372d2f7, local_sandbox).
    instead={"agent-ssrf-proxy": ("agent-backend", "api", INTERNET)},
    ports=(Port("http", 5004, "agent-local-sandbox"),),
    default_resources={"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    schema_independent=True,
    feature="agent",
)
