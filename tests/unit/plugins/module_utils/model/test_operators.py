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
    "credentials": {"SECRET_KEY": "stored-secret-key", "DB_PASSWORD": "stored-db-password"},
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
