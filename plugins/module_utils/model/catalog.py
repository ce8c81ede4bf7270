# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release: which images an installation of a Dify version runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import Settings

# Companion images a variable may set (component -> variable).
IMAGE_VARIABLES = {
    "sandbox": "sandbox_image",
    "plugin_daemon": "plugin_daemon_image",
    "ssrf_proxy": "ssrf_proxy_image",
    "nginx": "nginx_image",
    "postgres": "postgres_image",
    "redis": "redis_image",
    "weaviate": "weaviate_image",
}


@dataclass
class Release:
    version: str
    line: str
    images: dict[str, str]
    notices: list[str] = field(default_factory=list)


def line_of(version: str) -> str:
    parts = version.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 else version


def resolve(s: Settings, releases: dict[str, Any], record: dict[str, str] | None) -> Release:
    """The images of dify_image_tag: api and web of that tag, the companions as set."""
    version = s.image_tag
    images = {"api": f"langgenius/dify-api:{version}", "web": f"langgenius/dify-web:{version}"}
    for component, var in IMAGE_VARIABLES.items():
        images[component] = s.get(var)
    return Release(version=version, line=line_of(version), images=images)
