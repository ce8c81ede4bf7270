# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SSRF proxies (squid): the way out of user code and of HTTP nodes and tools (ssrf-proxy,
with a reverse-proxy port to the sandbox), and the agent's local sandbox's only way out
(agent-ssrf-proxy, 1.16.1). Going to the internet is their purpose: they always may (never to
dify_private_cidrs nor link-local); what they allow is their squid.conf (configs.py)."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import configs
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    ALWAYS,
    DEPLOYMENT,
    RUNTIME_DEFAULT,
    Component,
    Port,
    Workload,
)


def _squid(c: Component, b: Any, config: str) -> Workload:
    """squid, with its configuration from the ConfigMap ``config``; it starts as root and drops
    to its proxy user."""
    return c.workload(
        b,
        # squid logs to files (configs.SQUID_LOGGING); the command prints them as the container's
        # output, squid stays the first process (signals, exit code).
        command=list(configs.SQUID_COMMAND),
        readiness={"tcpSocket": {"port": "proxy"}},
        liveness={"tcpSocket": {"port": "proxy"}, "periodSeconds": 30},
        volumes=[
            {"name": "config", "configMap": {"name": config}},
            {"name": "spool", "emptyDir": {}},
            {"name": "logs", "emptyDir": {}},
        ],
        mounts=[
            {"name": "config", "mountPath": "/etc/squid/squid.conf", "subPath": "squid.conf"},
            {"name": "spool", "mountPath": "/var/spool/squid"},
            {"name": "logs", "mountPath": "/var/log/squid"},
        ],
        security={
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["SETUID", "SETGID", "CHOWN", "DAC_OVERRIDE", "FOWNER"]},
            "seccompProfile": dict(RUNTIME_DEFAULT),
        },
    )


def config_map(b: Any) -> dict[str, Any]:
    sandbox_port = bool(SSRF_PROXY.port_numbers("sandbox-via-ssrf-proxy", b.release))
    return b.config_map(names.SSRF_PROXY_CONFIG, "ssrf-proxy",
                        {"squid.conf": configs.squid_conf(b.s, sandbox_port)})  # fmt: skip


def agent_config_map(b: Any) -> dict[str, Any]:
    return b.config_map(names.AGENT_SSRF_PROXY_CONFIG, "agent-ssrf-proxy",
                        {"squid.conf": configs.agent_squid_conf(b.s)})  # fmt: skip


SSRF_PROXY = Component(
    name="ssrf-proxy",
    kind=DEPLOYMENT,
    pod=lambda c, b: _squid(c, b, names.SSRF_PROXY_CONFIG),
    image="ssrf_proxy",
    uses=("sandbox",),
    # 3128 for requests out; up to 1.14, 8194 reverse-proxies to the sandbox (Dify's
    # docker/ssrf_proxy/squid.conf.template; 1.15.0 dropped it: its template listens on 3128 only,
    # dify:docker/ssrf_proxy/squid.conf.template@3aa26fb637).
    ports=(Port("proxy", 3128, "ssrf-proxy"), Port("sandbox", 8194, "sandbox-via-ssrf-proxy", until="1.15.0")),
    default_resources={"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    replicas="ssrf_proxy_replicas",
    schema_independent=True,
    internet=ALWAYS,
)
# It reaches the agent stub and the api's /files (and the internet) for the local sandbox.
AGENT_SSRF_PROXY = Component(
    name="agent-ssrf-proxy",
    kind=DEPLOYMENT,
    pod=lambda c, b: _squid(c, b, names.AGENT_SSRF_PROXY_CONFIG),
    image="ssrf_proxy",
    uses=("agent-backend", "api"),
    ports=(Port("proxy", 3128, "agent-ssrf-proxy"),),
    resources="ssrf_proxy",
    schema_independent=True,
    internet=ALWAYS,
    feature="agent",
)
