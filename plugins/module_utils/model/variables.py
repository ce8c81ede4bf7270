# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Generated from roles/dify/meta/argument_specs.yml by tests/unit/plugins/module_utils/model/test_settings.py:
# do not edit; DIFY_CE_UPDATE_GOLDEN=1 pytest tests/unit/plugins/module_utils/model rewrites it.
"""The role's variables with the types its argument spec gives them (after validation), as
``Settings`` reads them: ``settings.namespace`` is ``dify_namespace``."""

from __future__ import annotations

from typing import Any, Literal


class Variables:
    """Every variable of every entry point; those of one entry point only say which."""

    cluster_scoped_access: bool
    namespace: str
    namespace_labels: dict[str, Any]
    image_tag: str
    allow_unlisted_release: bool
    image_registry: str
    image_pull_secrets: list[str]
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"]
    sandbox_image: str
    plugin_daemon_image: str
    ssrf_proxy_image: str
    nginx_image: str
    postgres_image: str
    redis_image: str
    weaviate_image: str
    agent_backend_image: str
    agent_local_sandbox_image: str
    agent: bool
    agent_storage_size: str
    collaboration: bool
    credentials_secret: str
    credentials_secret_keys: dict[str, Any]
    secret_key: str
    db_password: str
    redis_password: str
    plugin_daemon_key: str
    plugin_inner_api_key: str
    sandbox_api_key: str
    weaviate_api_key: str
    agent_api_token: str
    agent_sandbox_token: str
    agent_server_secret_key: str
    openai_api_key: str
    admin_email: str
    admin_name: str
    admin_password: str
    public_url: str
    storage_class: str
    files_storage: Literal["pvc", "s3"]
    files_storage_class: str
    files_access_mode: Literal["ReadWriteMany", "ReadWriteOnce"]
    files_storage_size: str
    s3_endpoint: str
    s3_bucket: str
    s3_region: str
    s3_access_key: str
    s3_secret_key: str
    s3_use_aws_managed_iam: bool
    postgres_enabled: bool
    db_host: str
    db_port: int
    db_username: str
    db_database: str
    db_plugin_database: str
    postgres_storage_size: str
    postgres_max_connections: int
    redis_enabled: bool
    redis_host: str
    redis_port: int
    redis_use_ssl: bool
    redis_storage_size: str
    weaviate_enabled: bool
    weaviate_endpoint: str
    weaviate_grpc_endpoint: str
    weaviate_storage_size: str
    plugin_storage_size: str
    vector_store: Literal["weaviate", "pgvector", "qdrant", "milvus", "opensearch", "elasticsearch"]
    vector_store_reindex: bool
    pgvector_enabled: bool
    pgvector_host: str
    pgvector_port: int
    pgvector_user: str
    pgvector_password: str
    pgvector_database: str
    pgvector_storage_size: str
    pgvector_image: str
    qdrant_url: str
    qdrant_api_key: str
    milvus_uri: str
    milvus_token: str
    milvus_user: str
    milvus_password: str
    milvus_database: str
    opensearch_host: str
    opensearch_port: int
    opensearch_secure: bool
    opensearch_verify_certs: bool
    opensearch_auth_method: Literal["basic", "aws_managed_iam"]
    opensearch_user: str
    opensearch_password: str
    opensearch_aws_region: str
    opensearch_aws_service: Literal["es", "aoss"]
    elasticsearch_host: str
    elasticsearch_port: int
    elasticsearch_username: str
    elasticsearch_password: str
    elasticsearch_verify_certs: bool
    elasticsearch_use_cloud: bool
    elasticsearch_cloud_url: str
    elasticsearch_api_key: str
    redis_sentinels: list[str]
    redis_sentinel_service_name: str
    redis_sentinel_username: str
    redis_sentinel_password: str
    redis_sentinel_socket_timeout: float
    redis_event_bus_url: str
    otel_endpoint: str
    otel_protocol: Literal["http", "grpc"]
    otel_api_key: str
    otel_sampling_rate: float
    metrics_enabled: bool
    metrics_service_monitor_labels: dict[str, Any]
    network_policy_monitoring_namespaces: list[str]
    pip_mirror_url: str
    pip_extra_args: str
    plugin_daemon_replicas: int
    plugin_storage_type: Literal["local", "aws_s3"]
    plugin_storage_access_mode: Literal["ReadWriteOnce", "ReadWriteMany"]
    plugin_storage_class: str
    plugin_storage_oss_bucket: str
    plugin_s3_endpoint: str
    plugin_s3_use_aws: bool
    plugin_s3_use_path_style: bool
    plugin_s3_use_aws_managed_iam: bool
    plugin_aws_region: str
    plugin_aws_access_key: str
    plugin_aws_secret_key: str
    api_replicas: int
    worker_replicas: int
    web_replicas: int
    sandbox_replicas: int
    nginx_replicas: int
    ssrf_proxy_replicas: int
    resources: dict[str, Any]
    node_selector: dict[str, Any]
    tolerations: list[dict[str, Any]]
    extra_env: dict[str, Any]
    marketplace_enabled: bool
    ssrf_proxy_denied_cidrs: list[str]
    ssrf_proxy_allowed_ports: list[str]
    expose: Literal["loadbalancer", "ingress", "gateway", "clusterip"]
    loadbalancer_pool: str
    loadbalancer_ip: str
    service_annotations: dict[str, Any]
    ingress_host: str
    ingress_class: str
    ingress_tls_secret: str
    ingress_annotations: dict[str, Any]
    gateway_parent_refs: list[dict[str, Any]]
    gateway_hostnames: list[str]
    loadbalancer_timeout: int
    migration_timeout: int
    migration_pod_annotations: dict[str, Any]
    provider_setup_timeout: int
    provider_setup_pod_annotations: dict[str, Any]
    migration_force: bool
    wait_timeout: int
    lock_wait: int
    rotate_secret_key: bool
    network_policies: bool
    private_cidrs: list[str]
    network_policy_internet_egress: list[str]
    network_policy_extra_egress: list[dict[str, Any]]
    network_policy_ingress_cidrs: list[str]
    pod_security_level: Literal["baseline", "privileged"]
    ha: bool
    autoscaling: bool
    autoscaling_max_replicas: int
    autoscaling_cpu_percent: int
    network_policy_dns_namespaces: list[str]
    network_policy_dns_cidrs: list[str]
    backup_enabled: bool
    backup_storage_size: str
    backup_keep: int
    backup_weaviate: bool
    backup_pod_annotations: dict[str, Any]
    tools_pod_annotations: dict[str, Any]
    rotate_db_password: bool
    rotate_redis_password: bool
    manifests_dir: str  # manifests only
    images_upgrade_from: str  # images only
    images_file: str  # images only
    restore_backup: str  # restore only
    restore_confirm: str  # restore only
    restore_image_tag: str  # restore only
    adopt_namespace: str  # adopt only
    adopt_allow_same_namespace: bool  # adopt only
    adopt_stop_source: bool  # adopt only
    adopt_force: bool  # adopt only
    adopt_confirm: str  # adopt only
    adopt_timeout: int  # adopt only
    purge_data: bool  # uninstall only
    purge_confirm: str  # uninstall only
