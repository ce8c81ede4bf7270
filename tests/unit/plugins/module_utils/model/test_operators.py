"""What operators run (docs/operators.md): the vector store, Redis Sentinel, the Gateway API,
OpenTelemetry and metrics, air-gapped sites, several plugin daemons. Each option is checked before
anything changes (naming the variable), rendered with Dify's own names for every service that reads
them, its secrets only in the Secret dify-credentials, its NetworkPolicy rules derived from what the
components declare."""

from __future__ import annotations

import base64

import pytest
from cases import prepare

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError


def objects(model: dict) -> dict[tuple[str, str], dict]:
    found = {(o["kind"], o["metadata"]["name"]): o for phase in model["objects"].values() for o in phase}
    found.update({(o["kind"], o["metadata"]["name"]): o for o in model["secrets"]})
    return found


def shared_env(model: dict) -> dict[str, str]:
    return objects(model)[("ConfigMap", names.SHARED_ENV)]["data"]


def secret(model: dict) -> dict[str, str]:
    data = objects(model)[("Secret", names.CREDENTIALS)]["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def container(model: dict, component: str, kind: str = "Deployment") -> dict:
    return objects(model)[(kind, names.workload(component))]["spec"]["template"]["spec"]["containers"][0]


def env_of(model: dict, component: str, kind: str = "Deployment") -> dict[str, str]:
    """What the container sees: envFrom (the shared ConfigMap, the Secret), then its own env."""
    c = container(model, component, kind)
    env: dict[str, str] = {}
    for source in c.get("envFrom") or []:
        if "configMapRef" in source:
            env.update(objects(model)[("ConfigMap", source["configMapRef"]["name"])]["data"])
        else:
            env.update(secret(model))
    for entry in c.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secret(model).get(ref["key"], f"<missing {ref['key']}>")
    return env


def policy(model: dict, component: str) -> dict:
    return objects(model)[("NetworkPolicy", names.workload(component))]["spec"]


def pod_peers(rules: list[dict], key: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for rule in rules:
        for peer in rule.get(key, []):
            if "podSelector" in peer and "namespaceSelector" not in peer:
                out[peer["podSelector"]["matchLabels"][names.LABEL_COMPONENT]] = [p["port"] for p in rule["ports"]]
    return out


def kinds(model: dict, phase: str) -> set[tuple[str, str]]:
    return {(o["kind"], o["metadata"]["name"]) for o in model["objects"][phase]}


INSTALLED = {
    "credentials": {"SECRET_KEY": "stored-secret-key", "DB_PASSWORD": "stored-db-password",
                    "REDIS_PASSWORD": "stored-redis-password"},
    "migration_record": {"image": "langgenius/dify-api:1.17.1", "job": "dify-db-migration", "job_uid": "u-1",
                         "completed_at": "2026-11-25T10:00:12Z", "applied_revisions": "[]"},
    "db_volume": True,
}  # fmt: skip


# --------------------------------------------------------------------------- the vector store


def test_bundled_pgvector_is_a_statefulset_of_its_own_and_dify_is_told_where():
    model = prepare("default", dify_vector_store="pgvector")
    data = kinds(model, "data")
    assert ("StatefulSet", "dify-pgvector") in data and ("StatefulSet", "dify-postgres") in data
    assert not any("weaviate" in name for _kind, name in data), "no Weaviate runs"
    for component in ("api", "worker"):
        env = env_of(model, component)
        assert env["VECTOR_STORE"] == "pgvector"
        assert (env["PGVECTOR_HOST"], env["PGVECTOR_PORT"], env["PGVECTOR_USER"], env["PGVECTOR_DATABASE"]) == (
            "dify-pgvector",
            "5432",
            "postgres",
            "dify",
        )
        assert env["PGVECTOR_PASSWORD"] == secret(model)["PGVECTOR_PASSWORD"]
        assert not any(k.startswith("WEAVIATE_ENDPOINT") for k in shared_env(model))
    # The server is initialised with that user, database and password, and the extension first.
    sts = env_of(model, "pgvector", "StatefulSet")
    assert (sts["POSTGRES_USER"], sts["POSTGRES_DB"]) == ("postgres", "dify")
    assert sts["POSTGRES_PASSWORD"] == secret(model)["PGVECTOR_PASSWORD"]
    assert "PGVECTOR_PASSWORD" not in shared_env(model), "a password never lands in a ConfigMap"
    init = objects(model)[("ConfigMap", names.PGVECTOR_INIT)]["data"]
    assert init == {"10-vector-extension.sql": "CREATE EXTENSION IF NOT EXISTS vector;\n"}
    assert container(model, "pgvector", "StatefulSet")["image"] == "pgvector/pgvector:pg16"
    # Only the clients of the vector store reach it.
    assert pod_peers(policy(model, "api")["egress"], "to")["pgvector"] == [5432]
    assert set(pod_peers(policy(model, "pgvector")["ingress"], "from")) == {"api", "worker"}
    # Nothing of Weaviate: no image, no steps, no copy; the store is recorded.
    assert "weaviate" not in model["release"]["images"]
    assert model["weaviate_steps"] == [] and not model["plan"]["weaviate_backup"]
    credentials = objects(model)[("Secret", names.CREDENTIALS)]["metadata"]
    assert credentials["annotations"] == {names.VECTOR_STORE_ANNOTATION: "pgvector"}


def test_an_external_pgvector_needs_its_host_and_password():
    with pytest.raises(InputError, match=r"dify_pgvector_host .* dify_pgvector_password"):
        prepare("default", dify_vector_store="pgvector", dify_pgvector_enabled=False)
    model = prepare("default", dify_vector_store="pgvector", dify_pgvector_enabled=False,
                    dify_pgvector_host="pg.example.com", dify_pgvector_port=5433, dify_pgvector_user="dify",
                    dify_pgvector_password="pg-given", dify_pgvector_database="vectors")  # fmt: skip
    env = env_of(model, "worker")
    assert (env["PGVECTOR_HOST"], env["PGVECTOR_PORT"], env["PGVECTOR_USER"], env["PGVECTOR_DATABASE"],
            env["PGVECTOR_PASSWORD"]) == ("pg.example.com", "5433", "dify", "vectors", "pg-given")  # fmt: skip
    assert not any(name.startswith("dify-pgvector") for _kind, name in objects(model))


def test_the_bundled_pgvector_keeps_the_password_it_was_initialised_with():
    stored = dict(INSTALLED, credentials=dict(INSTALLED["credentials"], PGVECTOR_PASSWORD="pg-stored"),
                  credentials_annotations={names.VECTOR_STORE_ANNOTATION: "pgvector"})  # fmt: skip
    model = prepare("default", existing=stored, dify_vector_store="pgvector")
    assert secret(model)["PGVECTOR_PASSWORD"] == "pg-stored"
    with pytest.raises(InputError, match="dify_pgvector_password differs"):
        prepare("default", existing=stored, dify_vector_store="pgvector", dify_pgvector_password="another")


def test_another_major_version_of_the_bundled_pgvector_is_refused():
    running = {"kind": "StatefulSet",
               "metadata": {"name": "dify-pgvector", "labels": {names.LABEL_COMPONENT: "pgvector"}},
               "spec": {"template": {"spec": {"containers": [{"image": "pgvector/pgvector:pg16"}]}}}}  # fmt: skip
    with pytest.raises(InputError, match=r"PostgreSQL 16 .*dify_pgvector_image.* PostgreSQL 17"):
        prepare("default", existing={"statefulsets": [running]}, dify_vector_store="pgvector",
                dify_pgvector_image="pgvector/pgvector:pg17")  # fmt: skip
    prepare("default", existing={"statefulsets": [running]}, dify_vector_store="pgvector",
            dify_pgvector_image="pgvector/pgvector:0.8.1-pg16")  # fmt: skip


@pytest.mark.parametrize(
    ("store", "inventory", "config", "secrets"),
    [
        ("qdrant", {"dify_qdrant_url": "https://qdrant.example.com:6333", "dify_qdrant_api_key": "qk"},
         {"QDRANT_URL": "https://qdrant.example.com:6333"}, {"QDRANT_API_KEY": "qk"}),
        ("milvus", {"dify_milvus_uri": "http://milvus.example.com:19530", "dify_milvus_user": "dify",
                    "dify_milvus_password": "mp", "dify_milvus_token": "mt"},
         {"MILVUS_URI": "http://milvus.example.com:19530", "MILVUS_USER": "dify", "MILVUS_DATABASE": "default"},
         {"MILVUS_PASSWORD": "mp", "MILVUS_TOKEN": "mt"}),
        ("opensearch", {"dify_opensearch_host": "os.example.com", "dify_opensearch_user": "admin",
                        "dify_opensearch_password": "op"},
         {"OPENSEARCH_HOST": "os.example.com", "OPENSEARCH_PORT": "9200", "OPENSEARCH_SECURE": "true",
          "OPENSEARCH_VERIFY_CERTS": "true", "OPENSEARCH_AUTH_METHOD": "basic", "OPENSEARCH_USER": "admin"},
         {"OPENSEARCH_PASSWORD": "op"}),
        ("elasticsearch", {"dify_elasticsearch_host": "https://es.example.com", "dify_elasticsearch_password": "ep"},
         {"ELASTICSEARCH_HOST": "https://es.example.com", "ELASTICSEARCH_PORT": "9200",
          "ELASTICSEARCH_USERNAME": "elastic", "ELASTICSEARCH_VERIFY_CERTS": "false"},
         {"ELASTICSEARCH_PASSWORD": "ep"}),
    ],
)  # fmt: skip
def test_an_external_store_is_told_with_difys_names_and_its_secrets_stay_in_the_secret(store, inventory, config,
                                                                                       secrets):  # fmt: skip
    model = prepare("default", dify_vector_store=store, **inventory)
    for component in ("api", "worker", "beat"):
        env = env_of(model, component)
        assert env["VECTOR_STORE"] == store
        assert {k: env[k] for k in config} == config
        assert {k: env[k] for k in secrets} == secrets
    assert not set(secrets) & set(shared_env(model)), "no secret in a ConfigMap"
    assert not any(kind == "StatefulSet" and "weaviate" in name for kind, name in objects(model))
    assert "weaviate" not in model["release"]["images"] and "pgvector" not in model["release"]["images"]


@pytest.mark.parametrize(
    ("inventory", "message"),
    [
        ({"dify_vector_store": "qdrant"}, "dify_qdrant_url"),
        ({"dify_vector_store": "milvus"}, "dify_milvus_uri"),
        ({"dify_vector_store": "milvus", "dify_milvus_uri": "http://m:19530", "dify_milvus_user": "u"},
         "dify_milvus_password"),
        ({"dify_vector_store": "opensearch"}, "dify_opensearch_host"),
        ({"dify_vector_store": "opensearch", "dify_opensearch_host": "o", "dify_opensearch_auth_method":
          "aws_managed_iam"}, "dify_opensearch_aws_region"),
        ({"dify_vector_store": "elasticsearch"}, "dify_elasticsearch_host"),
        ({"dify_vector_store": "elasticsearch", "dify_elasticsearch_use_cloud": True}, "dify_elasticsearch_cloud_url"),
    ],
)  # fmt: skip
def test_an_external_store_without_its_address_is_refused_naming_the_variable(inventory, message):
    with pytest.raises(InputError, match=message):
        prepare("default", **inventory)


def test_switching_the_store_of_an_installation_with_data_is_refused():
    # Installed before dify_vector_store (no record on the Secret): Weaviate.
    with pytest.raises(InputError, match=r"dify_vector_store is pgvector, but .* vectors in weaviate"):
        prepare("default", existing=INSTALLED, dify_vector_store="pgvector")
    # Recorded on the Secret.
    recorded = dict(INSTALLED, credentials_annotations={names.VECTOR_STORE_ANNOTATION: "qdrant"})
    with pytest.raises(InputError, match=r"vectors in qdrant .*dify_vector_store_reindex"):
        prepare("default", existing=recorded)
    # Asked for: the new store starts empty, and the run says how to index again.
    model = prepare("default", existing=INSTALLED, dify_vector_store="pgvector", dify_vector_store_reindex=True)
    assert any("flask vdb-migrate" in notice for notice in model["plan"]["notices"])
    # A first install chooses freely; the same store again is no switch.
    prepare("default", dify_vector_store="pgvector")
    prepare("default", existing=INSTALLED)


# --------------------------------------------------------------------------- Redis Sentinel

SENTINELS = {
    "dify_redis_enabled": False,
    "dify_redis_sentinels": ["sentinel-0.redis.example:26379", "sentinel-1.redis.example:26379"],
    "dify_redis_sentinel_service_name": "mymaster",
    "dify_redis_sentinel_password": "sentinel-secret",
    "dify_redis_event_bus_url": "redis://:bus-secret@redis-bus.example:6379/0",
    "dify_redis_password": "redis-secret",
}


def test_with_sentinels_every_reader_of_redis_follows_the_master():
    model = prepare("default", **SENTINELS)
    assert not any(name == "dify-redis" for _kind, name in objects(model)), "no bundled Redis"
    nodes = "sentinel-0.redis.example:26379,sentinel-1.redis.example:26379"
    for component in ("api", "worker", "beat", "plugin-daemon"):
        env = env_of(model, component)
        assert (env["REDIS_USE_SENTINEL"], env["REDIS_SENTINELS"], env["REDIS_SENTINEL_SERVICE_NAME"]) == (
            "true",
            nodes,
            "mymaster",
        ), component
        assert env["REDIS_SENTINEL_PASSWORD"] == "sentinel-secret" and env["REDIS_SENTINEL_SOCKET_TIMEOUT"] == "0.1"
    api = env_of(model, "api")
    assert (api["CELERY_USE_SENTINEL"], api["CELERY_SENTINEL_MASTER_NAME"]) == ("true", "mymaster")
    assert api["CELERY_SENTINEL_PASSWORD"] == "sentinel-secret"
    assert api["CELERY_BROKER_URL"] == ("sentinel://:redis-secret@sentinel-0.redis.example:26379/1;"
                                        "sentinel://:redis-secret@sentinel-1.redis.example:26379/1")  # fmt: skip
    # What does not follow Sentinel: the event bus, and the agent's runs (database 2) on the same Redis.
    assert api["EVENT_BUS_REDIS_URL"] == "redis://:bus-secret@redis-bus.example:6379/0"
    assert env_of(model, "agent-backend")["DIFY_AGENT_REDIS_URL"] == "redis://:bus-secret@redis-bus.example:6379/2"
    for secret_name in ("REDIS_SENTINEL_PASSWORD", "CELERY_BROKER_URL", "EVENT_BUS_REDIS_URL"):
        assert secret_name not in shared_env(model)
    # beat's probe asks the sentinels (redis.from_url does not take sentinel:// URLs).
    probe = container(model, "beat")["livenessProbe"]["exec"]["command"]
    assert probe[:2] == ["python", "-c"] and "Sentinel(" in probe[2] and "CELERY_SENTINEL_MASTER_NAME" in probe[2]


@pytest.mark.parametrize(
    ("inventory", "message"),
    [
        ({"dify_redis_sentinels": ["s:26379"]}, "set dify_redis_enabled: false"),
        ({"dify_redis_enabled": False}, "dify_redis_host .* or dify_redis_sentinels"),
        ({**SENTINELS, "dify_redis_sentinels": ["no-port"]}, "host:port"),
        ({**SENTINELS, "dify_redis_sentinel_service_name": ""}, "dify_redis_sentinel_service_name"),
        ({**SENTINELS, "dify_redis_event_bus_url": ""}, "dify_redis_event_bus_url"),
    ],
)
def test_sentinel_settings_are_checked_naming_the_variable(inventory, message):
    with pytest.raises(InputError, match=message):
        prepare("default", **inventory)


def test_before_1_13_sentinels_need_no_event_bus_url():
    model = prepare("default", dify_image_tag="1.11.4", **{**SENTINELS, "dify_redis_event_bus_url": ""})
    assert "EVENT_BUS_REDIS_URL" not in secret(model)
    assert env_of(model, "api")["REDIS_USE_SENTINEL"] == "true"


# --------------------------------------------------------------------------- Gateway API

GATEWAY = {
    "dify_expose": "gateway",
    "dify_gateway_parent_refs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
    "dify_gateway_hostnames": ["dify.example.com"],
}
GATEWAY_SERVED = {"api_versions": [{"groupVersion": "v1"}, {"groupVersion": "gateway.networking.k8s.io/v1"}]}


def test_expose_gateway_routes_every_path_to_nginx():
    model = prepare("default", existing=GATEWAY_SERVED, **GATEWAY)
    route = objects(model)[("HTTPRoute", "dify")]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1" and route in model["objects"]["expose"]
    assert route["spec"]["parentRefs"] == GATEWAY["dify_gateway_parent_refs"]
    assert route["spec"]["hostnames"] == ["dify.example.com"]
    assert route["spec"]["rules"] == [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                                       "backendRefs": [{"name": "dify-nginx", "port": 80}]}]  # fmt: skip
    service = objects(model)[("Service", "dify-nginx")]
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["ports"][0]["port"] == 80
    assert shared_env(model)["TRIGGER_URL"] == "https://dify.example.com", "TLS ends at the Gateway"
    assert {"api_version": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute"} in model["prune"]["expose"]


def test_a_route_no_longer_asked_for_is_pruned_where_the_cluster_serves_the_gateway_api():
    assert {"api_version": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute"} in prepare(
        "default", existing=GATEWAY_SERVED)["prune"]["expose"]  # fmt: skip
    assert [k["kind"] for k in prepare("default")["prune"]["expose"]] == ["Ingress"]


def test_expose_gateway_is_checked_before_anything_changes():
    with pytest.raises(InputError, match=r"does not serve gateway\.networking\.k8s\.io/v1"):
        prepare("default", **GATEWAY)
    # The manifests are written anyway (for a cluster of GitOps that has them).
    assert ("HTTPRoute", "dify") in objects(prepare("default", entry_point="manifests", **GATEWAY))
    with pytest.raises(InputError, match="dify_gateway_parent_refs"):
        prepare("default", existing=GATEWAY_SERVED, **{**GATEWAY, "dify_gateway_parent_refs": []})
    with pytest.raises(InputError, match="dify_gateway_parent_refs"):
        prepare("default", existing=GATEWAY_SERVED, **{**GATEWAY, "dify_gateway_parent_refs": [{"gateway": "x"}]})
    with pytest.raises(InputError, match="dify_gateway_hostnames"):
        prepare("default", existing=GATEWAY_SERVED, **{**GATEWAY, "dify_gateway_hostnames": ["Not a host"]})


# --------------------------------------------------------------------------- observability

MONITORING_SERVED = {"api_versions": [{"groupVersion": "v1"}, {"groupVersion": "monitoring.coreos.com/v1"}]}


def test_one_otel_endpoint_tells_the_api_and_the_daemon_in_their_own_names():
    model = prepare("default", dify_otel_endpoint="http://otel-collector.monitoring:4318", dify_otel_api_key="otk")
    api = env_of(model, "api")
    assert (api["ENABLE_OTEL"], api["OTLP_BASE_ENDPOINT"], api["OTEL_EXPORTER_OTLP_PROTOCOL"],
            api["OTEL_SAMPLING_RATE"], api["OTLP_API_KEY"]) == (
        "true", "http://otel-collector.monitoring:4318", "http", "0.1", "otk")  # fmt: skip
    daemon = env_of(model, "plugin-daemon")
    assert (daemon["ENABLE_OTEL"], daemon["OTLP_BASE_ENDPOINT"], daemon["OTEL_EXPORTER_OTLP_PROTOCOL"],
            daemon["OTEL_API_KEY"]) == ("true", "http://otel-collector.monitoring:4318", "http/protobuf",
                                        "otk")  # fmt: skip
    assert "OTLP_API_KEY" not in shared_env(model)
    # The exports may leave for the monitoring namespaces on the collector's port, from what exports.
    otlp = {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "ports": [{"protocol": "TCP", "port": 4318}]}  # fmt: skip
    for component in ("api", "worker", "beat", "plugin-daemon", names.MIGRATION):
        assert otlp in policy(model, component)["egress"], component
    for component in ("web", "sandbox", "nginx", "postgres"):
        assert otlp not in policy(model, component)["egress"], component
    with pytest.raises(InputError, match="dify_otel_endpoint"):
        prepare("default", dify_otel_endpoint="otel-collector:4318")


def test_metrics_are_scraped_where_they_are_served():
    model = prepare("default", existing=MONITORING_SERVED, dify_metrics_enabled=True,
                    dify_metrics_service_monitor_labels={"release": "kube-prometheus-stack"})  # fmt: skip
    monitors = {o["metadata"]["name"]: o for o in model["objects"]["app"] if o["kind"] == "ServiceMonitor"}
    assert set(monitors) == {"dify-plugin-daemon", "dify-weaviate"}, "the api, web and sandbox have no metrics"
    daemon = monitors["dify-plugin-daemon"]
    assert daemon["spec"]["endpoints"] == [{"port": "http", "path": "/metrics/", "interval": "30s"}]
    assert daemon["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitors["dify-weaviate"]["spec"]["endpoints"][0]["port"] == "metrics"
    weaviate = objects(model)[("StatefulSet", "dify-weaviate")]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "metrics", "containerPort": 2112, "protocol": "TCP"} in weaviate["ports"]
    assert {"name": "PROMETHEUS_MONITORING_ENABLED", "value": "true"} in weaviate["env"]
    assert {"name": "metrics", "port": 2112, "targetPort": "metrics", "protocol": "TCP"} in objects(model)[
        ("Service", "dify-weaviate")]["spec"]["ports"]  # fmt: skip
    scraper = {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
               "ports": [{"protocol": "TCP", "port": 2112}]}  # fmt: skip
    assert scraper in policy(model, "weaviate")["ingress"]
    assert {"api_version": "monitoring.coreos.com/v1", "kind": "ServiceMonitor"} in model["prune"]["app"]
    # Without the Prometheus operator: annotations on the pods instead.
    plain = prepare("default", dify_metrics_enabled=True)
    assert not any(o["kind"] == "ServiceMonitor" for o in plain["objects"]["app"])
    annotations = objects(plain)[("Deployment", "dify-plugin-daemon")]["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("5002", "/metrics/")


def test_the_plugin_daemon_has_metrics_from_0_5_7():
    model = prepare("default", existing=MONITORING_SERVED, dify_image_tag="1.13.3", dify_metrics_enabled=True)
    monitors = {o["metadata"]["name"] for o in model["objects"]["app"] if o["kind"] == "ServiceMonitor"}
    assert monitors == {"dify-weaviate"}, "the daemon of 1.13 (0.5.3) serves no /metrics/"


# --------------------------------------------------------------------------- air-gapped sites


def test_an_air_gapped_site_installs_plugin_dependencies_from_its_mirror():
    model = prepare("default", dify_pip_mirror_url="https://pypi.example.com/simple",
                    dify_pip_extra_args="--trusted-host pypi.example.com", dify_marketplace_enabled=False)  # fmt: skip
    daemon = env_of(model, "plugin-daemon")
    assert (daemon["PIP_MIRROR_URL"], daemon["PIP_MIRROR_AUTO_DETECT"], daemon["PIP_EXTRA_ARGS"]) == (
        "https://pypi.example.com/simple", "false", "--trusted-host pypi.example.com")  # fmt: skip
    assert env_of(model, "sandbox")["PIP_MIRROR_URL"] == "https://pypi.example.com/simple"
    assert env_of(model, "api")["MARKETPLACE_ENABLED"] == "false"


@pytest.mark.parametrize("inventory", [{}, {"dify_vector_store": "pgvector", "dify_image_registry": "mirror.example"},
                                       {"dify_image_tag": "1.11.4", "dify_metrics_enabled": True}])  # fmt: skip
def test_the_image_list_is_every_image_the_installation_pulls(inventory):
    listed = prepare("default", entry_point="images", **inventory)["images"]
    model = prepare("default", **inventory)
    pods = [o["spec"]["template"]["spec"] for p in model["objects"].values() for o in p
            if o["kind"] in ("Deployment", "StatefulSet")]  # fmt: skip
    pods += [job["spec"] for job in model["jobs"].values()]
    pulled = {c["image"] for spec in pods for c in spec["containers"]}
    assert [i["target"] for i in listed] == sorted(pulled)
    prefix = inventory.get("dify_image_registry", "")
    assert all(i["target"] == (prefix + "/" if prefix else "") + i["source"] for i in listed)


def test_the_image_list_of_an_upgrade_has_the_weaviate_steps():
    listed = prepare("default", entry_point="images", dify_images_upgrade_from="1.11.4")["images"]
    steps = [i["source"] for i in listed if "weaviate" in i["source"]]
    assert steps[0] == "semitechnologies/weaviate:1.28.16" and steps[-1] == "semitechnologies/weaviate:1.39.2"
    assert len(steps) == 12
    assert not any("weaviate" in i["source"] for i in prepare("default", entry_point="images",
                   dify_images_upgrade_from="1.11.4", dify_vector_store="pgvector")["images"])  # fmt: skip


# --------------------------------------------------------------------------- several plugin daemons


def test_several_plugin_daemons_share_a_read_write_many_volume():
    model = prepare("default", dify_plugin_daemon_replicas=2, dify_plugin_storage_access_mode="ReadWriteMany",
                    dify_plugin_storage_class="kwok-files")  # fmt: skip
    deployment = objects(model)[("Deployment", "dify-plugin-daemon")]
    assert deployment["spec"]["replicas"] == 2 and deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    claim = objects(model)[("PersistentVolumeClaim", names.PLUGIN_PVC)]["spec"]
    assert claim["accessModes"] == ["ReadWriteMany"] and claim["storageClassName"] == "kwok-files"
    env = env_of(model, "plugin-daemon")
    assert env["PLUGIN_WORKING_PATH"] == "/app/cwd", "each pod keeps its working directory"
    assert {"name": "cwd", "emptyDir": {}} in deployment["spec"]["template"]["spec"]["volumes"]
    # The daemons reach each other (their cluster redirects plugin calls), and a budget keeps one.
    assert pod_peers(policy(model, "plugin-daemon")["ingress"], "from")["plugin-daemon"] == [5002]
    assert pod_peers(policy(model, "plugin-daemon")["egress"], "to")["plugin-daemon"] == [5002]
    assert ("PodDisruptionBudget", "dify-plugin-daemon") in objects(model)


def test_plugin_daemons_on_s3_keep_no_volume():
    model = prepare("default", dify_ha=True, dify_plugin_storage_type="aws_s3",
                    dify_plugin_storage_oss_bucket="plugins", dify_plugin_s3_endpoint="https://objects.example.com",
                    dify_plugin_aws_access_key="ak", dify_plugin_aws_secret_key="sk")  # fmt: skip
    assert objects(model)[("Deployment", "dify-plugin-daemon")]["spec"]["replicas"] == 2, "dify_ha scales it"
    assert ("PersistentVolumeClaim", names.PLUGIN_PVC) not in objects(model)
    env = env_of(model, "plugin-daemon")
    assert (env["PLUGIN_STORAGE_TYPE"], env["PLUGIN_STORAGE_OSS_BUCKET"], env["S3_ENDPOINT"], env["S3_USE_AWS"],
            env["S3_USE_PATH_STYLE"], env["AWS_ACCESS_KEY"], env["AWS_SECRET_KEY"]) == (
        "aws_s3", "plugins", "https://objects.example.com", "false", "true", "ak", "sk")  # fmt: skip
    assert "PLUGIN_AWS_SECRET_KEY" not in shared_env(model)


def test_more_than_one_plugin_daemon_on_a_read_write_once_volume_is_refused():
    with pytest.raises(InputError, match=r"dify_plugin_daemon_replicas is 2.*ReadWriteOnce"):
        prepare("default", dify_plugin_daemon_replicas=2)
    # dify_ha alone leaves it at one there (as before).
    model = prepare("default", dify_ha=True)
    assert objects(model)[("Deployment", "dify-plugin-daemon")]["spec"]["replicas"] == 1
    with pytest.raises(InputError, match="dify_plugin_storage_oss_bucket"):
        prepare("default", dify_plugin_storage_type="aws_s3")


def test_the_plugin_volume_keeps_its_access_mode():
    claim = {"kind": "PersistentVolumeClaim", "metadata": {"name": names.PLUGIN_PVC},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "kwok-volume"}}  # fmt: skip
    with pytest.raises(InputError, match=r"dify_plugin_storage_access_mode ReadWriteMany \(it has ReadWriteOnce\)"):
        prepare("default", existing={"plugin_volume": [claim]}, dify_plugin_storage_access_mode="ReadWriteMany")
    rwx = dict(claim, spec={"accessModes": ["ReadWriteMany"], "storageClassName": "kwok-files"})
    shared = {"dify_plugin_storage_access_mode": "ReadWriteMany", "dify_plugin_storage_class": "kwok-files"}
    model = prepare("default", existing={"plugin_volume": [rwx]}, dify_plugin_daemon_replicas=2, **shared)
    assert objects(model)[("Deployment", "dify-plugin-daemon")]["spec"]["replicas"] == 2
