# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secrets: the credentials and the provider keys. Keys Dify's components must share are written
from the same value."""

from __future__ import annotations

import base64
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import vector_stores
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.base import BuilderBase


class Secrets(BuilderBase):
    def secret_values(self) -> dict[str, tuple[str, dict[str, str]]]:
        """Every Secret the installation writes: name -> (component, values). The pods' config
        hashes read the same values (kinds/workloads.py)."""
        out = {names.CREDENTIALS: ("credentials", self.secret_env)}
        if self.creds.provider.get("OPENAI_API_KEY"):
            out[names.PROVIDER_KEYS] = ("provider-keys", self.creds.provider)
        return out

    def secrets(self) -> list[dict[str, Any]]:
        """The Secrets; dify-credentials also records the vector store the vectors are kept in."""
        recorded = {names.CREDENTIALS: vector_stores.annotations(self.s)}
        out = []
        for name, (component, data) in self.secret_values().items():
            meta = self.meta(name, component)
            if recorded.get(name):
                meta["annotations"] = dict(recorded[name])
            out.append({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta,
                "type": "Opaque",
                "data": {k: base64.b64encode(str(v).encode()).decode() for k, v in sorted(data.items())},
            })  # fmt: skip
        return out
