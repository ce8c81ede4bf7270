# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's variables, validated and typed by its argument spec (``Variables``, generated from
it), as the model reads them, and what is derived from them in one place: the vector store, and
for each data service whether it runs here (bundled) or outside (external)."""

from __future__ import annotations

from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.variables import Variables

PREFIX = "dify_"

# The data services Dify's pods use, each either bundled (a StatefulSet of the component that
# provides it, switched on by dify_<component>_enabled) or external (its host or endpoint given).
DATABASE = "database"
REDIS = "redis"
VECTOR_STORE = "vector-store"
DATA_SERVICES = (DATABASE, REDIS, VECTOR_STORE)
# The vector store kind (dify_vector_store): each kind is a component module (components/); Weaviate
# and pgvector may be bundled, the others are external.
DEFAULT_VECTOR_STORE = "weaviate"


class Settings(Variables):
    """``settings.namespace`` is the variable ``dify_namespace`` (after argument-spec validation)."""

    def __init__(self, params: dict[str, Any]) -> None:
        self._params = dict(params)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._params[PREFIX + name]
        except KeyError:
            raise AttributeError(f"no variable {PREFIX}{name}") from None

    def get(self, name: str, default: Any = None) -> Any:
        return self._params.get(PREFIX + name, default)

    def with_values(self, **changes: Any) -> Settings:
        """A copy with some variables changed (by their short name)."""
        params = dict(self._params)
        params.update({PREFIX + key: value for key, value in changes.items()})
        return Settings(params)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._params)

    # ------------------------------------------------------------------ derived
    @property
    def vector_store(self) -> str:
        """The kind of vector store Dify uses (its VECTOR_STORE, dify_vector_store)."""
        return str(self.get("vector_store") or DEFAULT_VECTOR_STORE)

    def provider(self, service: str) -> str:
        """The component that provides a data service when it is bundled."""
        return {DATABASE: "postgres", REDIS: "redis", VECTOR_STORE: self.vector_store}[service]

    def bundled(self, service: str) -> bool:
        """Whether a data service runs in the namespace (else Dify uses an external one)."""
        return bool(self.get(self.provider(service) + "_enabled", False))

    @property
    def bundled_components(self) -> tuple[str, ...]:
        """The components of the bundled data services (their StatefulSets), in service order."""
        return tuple(self.provider(service) for service in DATA_SERVICES if self.bundled(service))
