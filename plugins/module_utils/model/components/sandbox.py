# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The code sandbox: runs user code for api and worker. Its only way out is the SSRF proxy; it
never gets direct internet access."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    DEPLOYMENT,
    NEVER,
    RUNTIME_DEFAULT,
    Component,
    Port,
    Workload,
    http,
)


def _sandbox(c: Component, b: Any) -> Workload:
    # The sandbox runs as root: it chroots and switches to its sandbox user for each run
    # (baseline Pod Security allows exactly the capabilities it needs).
    return c.workload(
        b,
        env=[
            {
                "name": "API_KEY",
                "valueFrom": {"secretKeyRef": {"name": names.CREDENTIALS, "key": "CODE_EXECUTION_API_KEY"}},
            },
            {"name": "GIN_MODE", "value": "release"},
            {"name": "WORKER_TIMEOUT", "value": "15"},
            {"name": "ENABLE_NETWORK", "value": "true"},
            {"name": "HTTP_PROXY", "value": "http://dify-ssrf-proxy:3128"},
            {"name": "HTTPS_PROXY", "value": "http://dify-ssrf-proxy:3128"},
            {"name": "SANDBOX_PORT", "value": "8194"},
            # Air-gapped sites: its dependencies from the mirror (Dify's compose passes it too).
            *([{"name": "PIP_MIRROR_URL", "value": b.s.pip_mirror_url}] if b.s.get("pip_mirror_url") else []),
        ],
        readiness=http("/health"),
        liveness=http("/health", periodSeconds=30),
        # No volume over /dependencies: the image's python-requirements.txt is there (Dify's
        # compose mounts a directory that has the file; an emptyDir would hide it). It runs user
        # code as another uid and kills it on timeout: KILL (another uid's process) besides the
        # rest; baseline Pod Security allows them all (Docker's default set, which Dify's
        # compose relies on, has them).
        security={
            "allowPrivilegeEscalation": False,
            "capabilities": {
                "drop": ["ALL"],
                "add": ["SETUID", "SETGID", "SYS_CHROOT", "CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL"],
            },
            "seccompProfile": dict(RUNTIME_DEFAULT),
        },
    )


SANDBOX = Component(
    name="sandbox",
    kind=DEPLOYMENT,
    pod=_sandbox,
    image="sandbox",
    uses=("ssrf-proxy",),
    ports=(Port("http", 8194, "sandbox"),),
    default_resources={"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    replicas="sandbox_replicas",
    autoscalable=True,
    schema_independent=True,
    internet=NEVER,
)
