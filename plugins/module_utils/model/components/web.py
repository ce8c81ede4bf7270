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


def _web(c: Component, b: Any) -> Workload:
    return c.workload(
        b,
        env=[
            {"name": "CONSOLE_API_URL", "value": b.public_url},
            {"name": "APP_API_URL", "value": b.public_url},
            {"name": "MARKETPLACE_API_URL", "value": "https://marketplace.dify.ai"},
            {"name": "MARKETPLACE_URL", "value": "https://marketplace.dify.ai"},
            {"name": "NEXT_TELEMETRY_DISABLED", "value": "1"},
            {"name": "TEXT_GENERATION_TIMEOUT_MS", "value": "60000"},
            {"name": "PM2_INSTANCES", "value": "2"},
        ],
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
