# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""web: Dify's Next.js frontend. It calls the api (server-side rendering) and nothing else."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    DEPLOYMENT,
    DIFY_USER,
    ON_REQUEST,
    Component,
    Port,
    Workload,
    http,
)

# What Dify's compose gives web, by release (dify:docker/docker-compose-template.yaml, web):
# - SERVER_CONSOLE_API_URL from 1.15.0 (dify#36958): where the server side (rendering) calls the
#   console API, inside the cluster; before, it used CONSOLE_API_URL (the public URL).
SERVER_CONSOLE_API_SINCE = "1.15.0"
# - PM2_INSTANCES up to 1.13.0: the entrypoint ran pm2 -i $PM2_INSTANCES; 1.13.1 runs node alone
#   (dify#30252, dify:web/docker/entrypoint.sh).
PM2_UNTIL = "1.13.1"


def socket_url(b: Any) -> str:
    """NEXT_PUBLIC_SOCKET_URL: where browsers open the collaboration socket, the origin users
    reach Dify at with ws:// or wss:// (nginx routes /socket.io/ there); Dify's compose default,
    ws://localhost, without a public URL, Ingress host or fixed address."""
    scheme, _sep, rest = b.external_url.partition("://")
    return ("wss" if scheme == "https" else "ws") + "://" + rest.split("/", 1)[0]


def _web(c: Component, b: Any) -> Workload:
    r = b.release
    env = [
        {"name": "CONSOLE_API_URL", "value": b.public_url},
        {"name": "APP_API_URL", "value": b.public_url},
    ]
    if r.at_least(SERVER_CONSOLE_API_SINCE):
        # Server-side rendering stays in the cluster (web's NetworkPolicy allows the api only).
        env.append({"name": "SERVER_CONSOLE_API_URL", "value": "http://dify-api:5001"})
    if r.has("api-websocket"):
        env.append({"name": "NEXT_PUBLIC_SOCKET_URL", "value": socket_url(b)})
    if r.has("agent-backend"):
        # The new agent's UI (web's entrypoint defaults it to false; Dify's compose sets it true
        # from 1.16.0, where the agent runs).
        env.append({"name": "NEXT_PUBLIC_ENABLE_AGENT_V2", "value": "true"})
    env += [
        {"name": "MARKETPLACE_API_URL", "value": "https://marketplace.dify.ai"},
        {"name": "MARKETPLACE_URL", "value": "https://marketplace.dify.ai"},
        {"name": "NEXT_TELEMETRY_DISABLED", "value": "1"},
        {"name": "TEXT_GENERATION_TIMEOUT_MS", "value": "60000"},
    ]
    if not r.at_least(PM2_UNTIL):
        env.append({"name": "PM2_INSTANCES", "value": "2"})
    return c.workload(
        b,
        env=env,
        # Next.js has no health endpoint; /apps answers (with a redirect to sign-in) once it serves.
        readiness=http("/apps"),
        liveness=http("/apps", periodSeconds=30, timeoutSeconds=10),
        startup=http("/apps", periodSeconds=5, failureThreshold=60),
        pod_security=dict(DIFY_USER),
    )


WEB = Component(
    name="web",
    kind=DEPLOYMENT,
    pod=_web,
    image="web",
    uses=("api",),
    ports=(Port("http", 3000, "web"),),
    default_resources={"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    replicas="web_replicas",
    autoscalable=True,
    schema_independent=True,
    internet=ON_REQUEST,
)
