# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nginx: where users come in (a LoadBalancer Service, or an Ingress in front of a ClusterIP one),
with the routes of Dify's compose to api, web, the plugin daemon's endpoints and the websocket
process (configs.nginx_conf)."""

from __future__ import annotations

import copy
import re
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import configs
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    DEPLOYMENT,
    ON_REQUEST,
    RESTRICTED,
    Component,
    Port,
    Workload,
    http,
)


def _nginx(c: Component, b: Any) -> Workload:
    return c.workload(
        b,
        readiness=http("/healthz"),
        liveness=http("/healthz", periodSeconds=30),
        volumes=[
            {"name": "config", "configMap": {"name": names.NGINX_CONFIG}},
            {"name": "tmp", "emptyDir": {}},
        ],
        mounts=[
            {"name": "config", "mountPath": "/etc/nginx/nginx.conf", "subPath": "nginx.conf"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        pod_security={"runAsUser": 101, "runAsGroup": 101, "runAsNonRoot": True},
        security=dict(copy.deepcopy(RESTRICTED), readOnlyRootFilesystem=True),
    )


# Dify routes /openapi to the api from 1.15.0 (dify#36348;
# dify:docker/nginx/conf.d/default.conf.template@3aa26fb637).
OPENAPI_SINCE = "1.15.0"


def config_map(b: Any) -> dict[str, Any]:
    conf = configs.nginx_conf(b.s, websocket=b.release.has("api-websocket"), openapi=b.release.at_least(OPENAPI_SINCE))
    return b.config_map(names.NGINX_CONFIG, "nginx", {"nginx.conf": conf})


def service(b: Any) -> dict[str, Any]:
    """The Service users reach: a LoadBalancer (MetalLB's pool and address as asked) or, behind an
    Ingress, a ClusterIP one."""
    s = b.s
    annotations = dict(s.service_annotations)
    if s.expose == "loadbalancer":
        if s.loadbalancer_pool:
            annotations["metallb.io/address-pool"] = s.loadbalancer_pool
        if s.loadbalancer_ip:
            annotations["metallb.io/loadBalancerIPs"] = s.loadbalancer_ip
    return b.service(
        "nginx",
        [{"name": "http", "port": 80, "targetPort": "http"}],
        "LoadBalancer" if s.expose == "loadbalancer" else "ClusterIP",
        annotations,
    )


def ingress(b: Any) -> dict[str, Any]:
    s = b.s
    meta = b.meta(names.INGRESS, "nginx")
    if s.ingress_annotations:
        meta["annotations"] = dict(s.ingress_annotations)
    spec: dict[str, Any] = {}
    if s.ingress_class:
        spec["ingressClassName"] = s.ingress_class
    if s.ingress_tls_secret:
        spec["tls"] = [{"hosts": [s.ingress_host], "secretName": s.ingress_tls_secret}]
    spec["rules"] = [
        {
            "host": s.ingress_host,
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": names.workload("nginx"), "port": {"name": "http"}}},
                    }
                ]
            },
        }
    ]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


GATEWAY_API = "gateway.networking.k8s.io/v1"


def http_route(b: Any) -> dict[str, Any]:
    """With dify_expose: gateway, the HTTPRoute from the Gateways named (TLS ends there) to nginx's
    Service, every path."""
    s = b.s
    spec: dict[str, Any] = {"parentRefs": [dict(ref) for ref in s.gateway_parent_refs]}
    if s.gateway_hostnames:
        spec["hostnames"] = list(s.gateway_hostnames)
    spec["rules"] = [
        {
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{"name": names.workload("nginx"), "port": 80}],
        }
    ]
    return {"apiVersion": GATEWAY_API, "kind": "HTTPRoute", "metadata": b.meta(names.HTTP_ROUTE, "nginx"), "spec": spec}


HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
PARENT_REF_KEYS = ("group", "kind", "namespace", "name", "sectionName", "port")


def checks(s: Any) -> list[str]:
    """dify_expose: gateway needs a Gateway to attach to; parent refs and host names as the API takes them."""
    if s.expose != "gateway":
        return []
    found = []
    refs = s.gateway_parent_refs
    if not refs or not all(isinstance(r, dict) and r.get("name") and set(r) <= set(PARENT_REF_KEYS) for r in refs):
        found.append(
            "dify_expose is gateway, so dify_gateway_parent_refs must name the Gateway(s) the route attaches to, e.g. "
            f"[{{name: public, namespace: gateways}}] (keys: {', '.join(PARENT_REF_KEYS)}); got {refs}."
        )
    bad = [h for h in s.gateway_hostnames if not HOSTNAME.match(str(h))]
    if bad:
        found.append(f"dify_gateway_hostnames must be DNS names (a leading *. allowed), not {bad}.")
    return found


NGINX = Component(
    name="nginx",
    kind=DEPLOYMENT,
    pod=_nginx,
    image="nginx",
    uses=("api", "web", "plugin-daemon", "api-websocket"),
    # nginx-unprivileged listens on 8080; users reach it there (dify_network_policy_ingress_cidrs).
    ports=(Port("http", 8080),),
    default_resources={"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
    replicas="nginx_replicas",
    schema_independent=True,
    internet=ON_REQUEST,
    exposed=True,
    checks=checks,
)
