# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every kind of object is built from: the settings, the images, the decided credentials and
the release, and what follows from them once (replicas, resources, addresses)."""

from __future__ import annotations

import copy
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import components
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.catalog import Release
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import Workload
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.credentials import (
    Credentials,
    provider_setup_enabled,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.inputs import replicas
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import DATABASE, REDIS, Settings


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge of dicts (``combine(recursive=True)``)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _name_part(tag: str) -> str:
    """A tag as one part of a copy's name: parts are separated by "_", which a tag may contain."""
    return tag.replace("_", "-") or "none"


class BuilderBase:
    """The inputs of one installation's objects."""

    def __init__(
        self,
        s: Settings,
        images: dict[str, str],
        credentials: Credentials,
        assets: dict[str, str] | None = None,
        previous_tag: str = "",
        release: Release | None = None,
        stamp: str = "",
    ) -> None:
        self.s = s
        self.previous_tag = previous_tag
        # When this run takes its copies (UTC, YYYYmmddTHHMMSSZ): part of the names it gives them.
        self.stamp = stamp
        self.release = release or Release(version=s.image_tag, line="", images=images)
        self.images = images
        self.creds = credentials
        self.assets = assets or {}
        self.namespace = s.namespace
        self.replicas = replicas(s)
        self.autoscaled = list(components.autoscalable()) if s.autoscaling else []
        self.resources = merge(components.default_resources(), s.resources)
        self.public_url = s.public_url.rstrip("/")
        # Where users reach Dify, for the URLs Dify hands out to be called from outside (webhook
        # triggers, plugin endpoints): the public URL, else the Ingress host, else the fixed
        # LoadBalancer address, else what Dify's compose defaults to (http://localhost).
        if self.public_url:
            self.external_url = self.public_url
        elif s.expose == "ingress" and s.ingress_host:
            self.external_url = ("https://" if s.ingress_tls_secret else "http://") + s.ingress_host
        elif s.expose == "gateway" and s.get("gateway_hostnames"):
            # TLS ends at the Gateway.
            self.external_url = "https://" + s.gateway_hostnames[0]
        elif s.expose == "loadbalancer" and s.loadbalancer_ip:
            self.external_url = f"http://{s.loadbalancer_ip}"
        else:
            self.external_url = "http://localhost"
        self.db_host = names.workload(s.provider(DATABASE)) if s.bundled(DATABASE) else s.db_host
        self.redis_host = names.workload(s.provider(REDIS)) if s.bundled(REDIS) else s.redis_host
        self.provider_setup = provider_setup_enabled(s)
        self.secret_env = credentials.secret_env(s, self.redis_host)
        # The API groups/versions the cluster serves (prepare reads the discovery once): the kinds
        # of CRDs it may apply and prune (HTTPRoute, ServiceMonitor).
        self.api_versions: set[str] = set()

    def serves(self, api_version: str) -> bool:
        return api_version in self.api_versions

    @property
    def backup_name(self) -> str:
        """The backup of this run's upgrade: dify_<from>_to_<to>_<time>, decided here and recorded
        by the role, so that what is recorded is exactly what the Job wrote."""
        return f"dify_{_name_part(self.previous_tag)}_to_{_name_part(self.s.image_tag)}_{self.stamp}"

    def weaviate_backup_name(self, running_image: str) -> str:
        return f"weaviate_{_name_part(running_image.rsplit(':', 1)[-1])}_{self.stamp}"

    def meta(self, name: str, component: str, namespaced: bool = True, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name}
        if namespaced:
            out["namespace"] = self.namespace
        out["labels"] = names.labels(component)
        out.update(extra)
        return out

    # What one kind builds and others (and the components' modules) use; the kinds implement them.
    def pod_spec(self, pod_security: dict[str, Any], containers: list[dict[str, Any]],
                 volumes: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
        raise NotImplementedError

    def container(self, w: Workload) -> dict[str, Any]:
        raise NotImplementedError

    def api_pod(self) -> dict[str, Any]:
        raise NotImplementedError

    def postgres_pod(self) -> dict[str, Any]:
        raise NotImplementedError

    def secret_values(self) -> dict[str, tuple[str, dict[str, str]]]:
        raise NotImplementedError

    def scrape_annotations(self, w: Workload) -> dict[str, str]:
        raise NotImplementedError

    def config_map(self, name: str, component: str, data: dict[str, str]) -> dict[str, Any]:
        raise NotImplementedError

    def claim(self, name: str, component: str, mode: str, storage_class: str, size: str) -> dict[str, Any]:
        raise NotImplementedError

    def service(self, name: str, ports: list[dict[str, Any]], type_: str = "ClusterIP",
                annotations: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
        raise NotImplementedError
