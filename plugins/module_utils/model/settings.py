# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The role's variables, validated and typed by its argument spec, as the model reads them."""

from __future__ import annotations

from typing import Any

PREFIX = "dify_"


class Settings:
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
