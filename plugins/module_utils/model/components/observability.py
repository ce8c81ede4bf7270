# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Observability: Dify's OpenTelemetry settings from one variable (dify_otel_endpoint), under each
reader's own names, and what Prometheus scrapes (dify_metrics_enabled; each component declares its
metrics, components.base.Metrics).

OpenTelemetry is read by the api image (api, worker, beat, the websocket process and the Jobs of
the api image: dify:api/configs/observability/otel/otel_config.py and api/extensions/ext_otel.py
@f68cabe226, the same since 1.11.4) and by the plugin daemon 0.6 and later, which names two of them
differently (daemon:internal/types/app/config.go@0.6.3): OTEL_API_KEY for the api's OTLP_API_KEY,
and OTEL_EXPORTER_OTLP_PROTOCOL "http/protobuf" for the api's "http". The daemon reads the shared
environment (envFrom) and gets its own names in its env, which wins."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import secret_ref
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import Settings

# The images whose code reads Dify's OpenTelemetry settings: their pods export to the collector.
TELEMETRY_IMAGES = ("api", "plugin_daemon")
URL = re.compile(r"^https?://[^/\s]+(/.*)?$")


def otel(s: Settings) -> bool:
    return bool(s.get("otel_endpoint"))


def client_env(s: Settings) -> dict[str, str]:
    """The shared environment's part (the api's names; the daemon reads ENABLE_OTEL and
    OTLP_BASE_ENDPOINT under the same names)."""
    if not otel(s):
        return {}
    return {
        "ENABLE_OTEL": "true",
        "OTLP_BASE_ENDPOINT": s.otel_endpoint.rstrip("/"),
        "OTEL_EXPORTER_TYPE": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": s.otel_protocol,
        "OTEL_SAMPLING_RATE": str(s.otel_sampling_rate),
    }


def daemon_env(s: Settings) -> list[dict[str, Any]]:
    """The plugin daemon's own names (over the shared environment's)."""
    if not otel(s):
        return []
    env: list[dict[str, Any]] = [
        {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "grpc" if s.otel_protocol == "grpc" else "http/protobuf"},
        {"name": "OTEL_SAMPLING_RATE", "value": str(s.otel_sampling_rate)},
    ]
    if s.otel_api_key:
        env.append(secret_ref("OTEL_API_KEY", "OTLP_API_KEY"))
    return env


def otlp_port(s: Settings) -> int:
    """The collector's port (the endpoint's, else OTLP's default for the protocol and scheme)."""
    parts = urllib.parse.urlsplit(s.otel_endpoint)
    try:
        if parts.port:
            return parts.port
    except ValueError:
        pass
    if parts.scheme == "https":
        return 443
    return 4317 if s.otel_protocol == "grpc" else 4318


def checks(s: Settings) -> list[str]:
    found = []
    if otel(s) and not URL.match(s.otel_endpoint):
        found.append(f"dify_otel_endpoint '{s.otel_endpoint}' must be an http(s):// URL of the OTLP collector.")
    if not 0 <= s.otel_sampling_rate <= 1:
        found.append(f"dify_otel_sampling_rate must be between 0 and 1, got {s.otel_sampling_rate}.")
    return found
