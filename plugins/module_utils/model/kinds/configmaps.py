# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ConfigMaps: the shared environment of the api image's pods, and the configuration files of the
components that have one (each written by its component's module)."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import components
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import (
    api,
    nginx,
    observability,
    pgvector,
    postgres,
    redis,
    ssrf_proxy,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.base import BuilderBase

PROVIDER_SETUP_SCRIPT_FILE = "configure_providers.py"


class ConfigMaps(BuilderBase):
    def shared_env(self) -> dict[str, str]:
        """The ConfigMap dify-shared-env (components/api.py), with what the vector store in use
        tells its clients, and what the operators' settings add (Redis Sentinel, OpenTelemetry);
        dify_extra_env still wins."""
        store = components.vector_store(self.s)
        env = api.shared_env(self, store.client_env(self.s) if store.client_env else {})
        added = {**redis.client_env(self.s), **observability.client_env(self.s)}
        if added:
            env.update(added)
            env.update({k: str(v) for k, v in self.s.extra_env.items()})
        return env

    def config_maps(self) -> list[dict[str, Any]]:
        out = [
            self.config_map(names.SHARED_ENV, "config", self.shared_env()),
            nginx.config_map(self),
            ssrf_proxy.config_map(self),
        ]
        if ssrf_proxy.AGENT_SSRF_PROXY.runs(self.s, self.release):
            out.append(ssrf_proxy.agent_config_map(self))
        out += postgres.config_maps(self)
        out += pgvector.config_maps(self)
        if self.provider_setup:
            script = self.assets[PROVIDER_SETUP_SCRIPT_FILE]
            out.append(
                self.config_map(
                    names.PROVIDER_SETUP_SCRIPT, "provider-setup-script", {PROVIDER_SETUP_SCRIPT_FILE: script}
                )
            )
        return out

    def config_map(self, name: str, component: str, data: dict[str, str]) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": self.meta(name, component), "data": data}
