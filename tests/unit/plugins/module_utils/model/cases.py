"""Inventories and cluster states the model is pinned for (golden files), shared by the tests."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import yaml

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import build

ASSETS = {"configure_providers.py": "# the provider setup script (tests: a stand-in)\n"}
LOCAL = {"dify_storage_class": "kwok-volume", "dify_files_storage_class": "kwok-files"}

# The group versions a cluster with the Gateway API and the Prometheus operator serves.
SERVED = ("v1", "gateway.networking.k8s.io/v1", "monitoring.coreos.com/v1")
CASES: dict[str, dict[str, Any]] = {
    # A first install with the defaults (the newest release; the local cluster's storage classes).
    "default": {"inventory": {}, "existing": {}},
    # The release of the original deploy script, as it installed before the catalog.
    "release-1.11": {"inventory": {"dify_image_tag": "1.11.4"}, "existing": {}},
    # 1.16.0: the agent without its SSRF proxy and API token (1.16.1 brought them): its local sandbox
    # reaches the agent stub, the api and the internet itself; with collaboration (the default).
    "release-1.16.0": {"inventory": {"dify_image_tag": "1.16.0", "dify_collaboration": True}, "existing": {}},
    # High availability, autoscaling, an Ingress with TLS and a public URL.
    "ha": {
        "inventory": {
            "dify_ha": True,
            "dify_autoscaling": True,
            "dify_expose": "ingress",
            "dify_ingress_host": "dify.example.com",
            "dify_ingress_class": "nginx",
            "dify_ingress_tls_secret": "dify-tls",
            "dify_ingress_annotations": {"a.example/b": "c"},
            "dify_public_url": "https://dify.example.com/",
            "dify_network_policy_ingress_cidrs": ["10.1.0.0/16"],
        },
        "existing": {},
    },
    # External PostgreSQL, Redis (TLS), Weaviate, S3 files, a private registry, a namespaced-only
    # ServiceAccount, the provider setup, node placement and extra settings.
    "external": {
        "inventory": {
            "dify_postgres_enabled": False,
            "dify_db_host": "10.20.0.5",
            "dify_db_port": 5433,
            "dify_db_password": "db-password-given",
            "dify_redis_enabled": False,
            "dify_redis_host": "redis.example.com",
            "dify_redis_use_ssl": True,
            "dify_weaviate_enabled": False,
            "dify_weaviate_endpoint": "http://weaviate.example.com:8080",
            "dify_weaviate_grpc_endpoint": "grpc://weaviate.example.com:50051",
            "dify_files_storage": "s3",
            "dify_s3_endpoint": "https://objects.example.com",
            "dify_s3_bucket": "dify",
            "dify_s3_access_key": "AKIA0000",
            "dify_s3_secret_key": "s3-secret-given",
            "dify_extra_env": {"LOG_LEVEL": "DEBUG"},
            "dify_node_selector": {"pool": "ai"},
            "dify_tolerations": [{"key": "ai", "operator": "Exists", "effect": "NoSchedule"}],
            "dify_image_registry": "registry.example.com/mirror/",
            "dify_image_pull_secrets": ["regcred"],
            "dify_openai_api_key": "sk-openai-given",
            "dify_admin_email": "ops@example.com",
            "dify_cluster_scoped_access": False,
            "dify_network_policy_extra_egress": [{"cidr": "10.20.0.5/32", "ports": [5433]}],
            "dify_service_annotations": {"x.example/y": "z"},
            "dify_loadbalancer_pool": "pool-a",
            "dify_loadbalancer_ip": "192.168.1.10",
            "dify_resources": {"api": {"limits": {"memory": "4Gi"}}, "migration": {"limits": {"memory": "3Gi"}}},
        },
        "existing": {},
    },
    # What operators run (docs/operators.md): the bundled pgvector, a Gateway API route, OpenTelemetry,
    # ServiceMonitors, an air-gapped site's pip mirror, two plugin daemons on a ReadWriteMany volume.
    "operators": {
        "inventory": {
            "dify_vector_store": "pgvector",
            "dify_expose": "gateway",
            "dify_gateway_parent_refs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
            "dify_gateway_hostnames": ["dify.example.com"],
            "dify_otel_endpoint": "http://otel-collector.monitoring:4318",
            "dify_otel_api_key": "otel-key-given",
            "dify_metrics_enabled": True,
            "dify_metrics_service_monitor_labels": {"release": "kube-prometheus-stack"},
            "dify_pip_mirror_url": "https://pypi.example.com/simple",
            "dify_marketplace_enabled": False,
            "dify_image_registry": "registry.example.com/mirror",
            "dify_plugin_daemon_replicas": 2,
            "dify_plugin_storage_access_mode": "ReadWriteMany",
            "dify_plugin_storage_class": "kwok-files",
        },
        "existing": {"api_versions": [{"groupVersion": v} for v in SERVED]},
    },
    # External services: Qdrant, Redis Sentinel, the plugin daemon on S3, metrics without the
    # Prometheus operator (pod annotations).
    "operators-external": {
        "inventory": {
            "dify_vector_store": "qdrant",
            "dify_qdrant_url": "https://qdrant.example.com:6333",
            "dify_qdrant_api_key": "qdrant-key-given",
            "dify_redis_enabled": False,
            "dify_redis_sentinels": ["sentinel-0.redis.example:26379", "sentinel-1.redis.example:26379"],
            "dify_redis_sentinel_service_name": "mymaster",
            "dify_redis_sentinel_password": "sentinel-password-given",
            "dify_redis_event_bus_url": "redis://:bus-password-given@redis-bus.example:6379/0",
            "dify_plugin_storage_type": "aws_s3",
            "dify_plugin_storage_oss_bucket": "dify-plugins",
            "dify_plugin_s3_endpoint": "https://objects.example.com",
            "dify_plugin_aws_access_key": "AKIA0001",
            "dify_plugin_aws_secret_key": "plugin-s3-secret-given",
            "dify_ha": True,
            "dify_metrics_enabled": True,
        },
        "existing": {},
    },
    # An upgrade of an installation of 1.11.4: stored credentials, the database volume, the record.
    "upgrade": {
        "inventory": {"dify_image_tag": "1.11.5"},
        "existing": {
            "credentials": {
                "SECRET_KEY": "stored-secret-key",
                "DB_PASSWORD": "stored-db-password",
                "REDIS_PASSWORD": "stored-redis-password",
                "PLUGIN_DAEMON_KEY": "stored-daemon-key",
                "INNER_API_KEY_FOR_PLUGIN": "stored-inner-key",
                "CODE_EXECUTION_API_KEY": "stored-sandbox-key",
                "WEAVIATE_API_KEY": "stored-weaviate-key",
            },
            "db_volume": True,
            "migration_record": {
                "image": "langgenius/dify-api:1.11.4",
                "job": "dify-db-migration",
                "job_uid": "u-1",
                "completed_at": "2026-11-25T10:00:12Z",
                "applied_revisions": "[]",
            },
        },
    },
}


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"kind": "Secret", "metadata": {"name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}  # fmt: skip


def reader(existing: dict[str, Any], classes: tuple[str, ...] = ("kwok-volume", "kwok-files")) -> Any:
    """What the cluster answers to the prepare step's reads, and the reads it was asked."""
    asked: list[dict[str, Any]] = []

    def read(reads: list[dict[str, Any]]) -> dict[str, Any]:
        asked.extend(reads)
        found: dict[str, Any] = {}
        for r in reads:
            obj: Any = existing.get(r["id"])
            if r["id"] == "storage_classes":
                found[r["id"]] = {"resources": [{"metadata": {"name": c}} for c in classes]}
                continue
            if r["id"] in ("credentials", "provider_keys") and obj is not None:
                obj = secret(r["name"], obj)
                if r["id"] == "credentials" and existing.get("credentials_annotations"):
                    obj["metadata"]["annotations"] = dict(existing["credentials_annotations"])
            elif (
                r["id"]
                in (
                    "migration_record",
                    "provider_record",
                    "backup_record",
                    "upgrade_steps",
                    "adoption_record",
                    "operation",
                )
                and obj is not None
            ):
                obj = {"kind": "ConfigMap", "metadata": {"name": r["name"]}, "data": obj}
            elif obj is True:
                obj = {"kind": r["kind"], "metadata": {"name": r["name"]}}
            found[r["id"]] = {"resources": [obj] if isinstance(obj, dict) else list(obj or [])}
        return found

    read.asked = asked  # type: ignore[attr-defined]
    return read


def counter() -> Any:
    """Generated secrets that differ from each other and are the same every test run."""
    numbers = itertools.count(1)
    return lambda: f"generated-{next(numbers):04d}-" + "0" * 48


def releases() -> dict[str, Any]:
    """The release catalog the role ships."""
    from role_settings import ROLE

    return yaml.safe_load((ROLE / "files" / "releases.yml").read_text())


def prepare(case: str, entry_point: str = "main", existing: dict[str, Any] | None = None, **more: Any) -> dict:
    """The model of a case, with more variables or more of the cluster's state."""
    from role_settings import params

    spec = CASES[case]
    inventory = {**LOCAL, **spec["inventory"], **more}
    return build.prepare(
        params(entry_point, **inventory),
        entry_point,
        reader({**spec["existing"], **(existing or {})}),
        assets=ASSETS,
        releases=releases(),
        new_secret=counter(),
        new_agent_key=lambda: "generated-agent-key-" + "A" * 23,
        new_admin_password=lambda: "Dify1-generated-admin-password",
        now=lambda: 1796112000.0,  # 2026-12-01T08:00:00Z
    )
