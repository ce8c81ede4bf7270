"""Adopting a running Dify: discovery from the running objects of the three fixtures (an original
NKP chart-like install, a community chart-like one, hand-made manifests), the refusals, the plan."""

from __future__ import annotations

import base64
import copy
from pathlib import Path

import pytest
import yaml
from cases import ASSETS, reader, releases
from role_settings import params

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import adopt, build
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import Settings

FIXTURES = Path(__file__).resolve().parents[4] / "integration" / "fixtures" / "adoption"
KINDS = {"Deployment": "source_deployments", "StatefulSet": "source_statefulsets", "ConfigMap": "source_configmaps",
         "Secret": "source_secrets", "Service": "source_services", "Pod": "source_pods"}  # fmt: skip


def fixture(name: str) -> dict:
    """The fixture as the API returns it: Secrets with base64 data, read by kind."""
    found: dict = {read_id: {"resources": []} for read_id in KINDS.values()}
    for item in yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())["items"]:
        item = copy.deepcopy(item)
        if item["kind"] == "Secret" and "stringData" in item:
            item["data"] = {k: base64.b64encode(str(v).encode()).decode() for k, v in item.pop("stringData").items()}
        if item["kind"] in KINDS:
            found[KINDS[item["kind"]]]["resources"].append(item)
    return found


def settings(**inventory) -> Settings:
    return Settings(params("adopt", dify_adopt_namespace="dify", dify_namespace="dify-ce", **inventory))


def test_the_original_chart_like_install_is_found_from_its_objects():
    source = adopt.discover(settings(), fixture("nkp"))
    assert source.api == "Deployment/dify-api" and source.release == "1.11.4"
    assert source.db["host"] == "dify-postgresql.dify.svc" and source.db["user"] == "dify"
    assert source.db["database"] == "dify" and source.plugin_database == "dify_plugin"
    assert source.files.claim == "dify-api-storage" and source.plugins.claim == "dify-plugin-daemon-storage"
    assert source.weaviate.claim == "weaviate-data-weaviate-0"
    assert set(source.keys) >= {"SECRET_KEY"} and source.helm_release == "dify"


def test_the_community_chart_like_install_is_found_from_its_objects():
    source = adopt.discover(settings(), fixture("community"))
    assert source.db["host"] == "dify-postgresql-primary.dify.svc" and source.db["user"] == "postgres"
    assert source.plugin_database == "dify", "its plugin daemon keeps its tables in Dify's database"
    assert source.files.claim == "dify" and source.plugins.claim == "dify-plugin-daemon"
    assert source.weaviate.claim == "weaviate-data-weaviate-0"
    assert {"SECRET_KEY", "PLUGIN_DAEMON_KEY", "INNER_API_KEY_FOR_PLUGIN", "CODE_EXECUTION_API_KEY"} <= set(source.keys)


def test_hand_made_manifests_are_found_with_var_expansion_and_a_statefulset_api():
    source = adopt.discover(settings(), fixture("handmade"))
    assert source.api == "StatefulSet/dify-api"
    assert source.db["host"] == "dify-postgres.dify.svc" and source.db["password"]
    assert source.weaviate is not None and source.helm_release == ""


def test_the_summary_holds_no_secret_value():
    source = adopt.discover(settings(), fixture("community"))
    text = repr(source.summary())
    # (Short public defaults such as the community chart's sandbox key "dify-sandbox" name workloads too.)
    for value in source.keys.values():
        assert len(value) < 16 or value not in text
    assert source.db["password"] not in text


def test_no_source_or_more_than_one_is_refused_naming_the_variable():
    empty = {read_id: {"resources": []} for read_id in KINDS.values()}
    with pytest.raises(InputError, match=r"dify_adopt_namespace dify: no Deployment or StatefulSet"):
        adopt.discover(settings(), empty)
    twice = fixture("nkp")
    api = next(o for o in twice["source_deployments"]["resources"] if o["metadata"]["name"] == "dify-api")
    other = copy.deepcopy(api)
    other["metadata"]["name"] = "dify-api-2"
    twice["source_deployments"]["resources"].append(other)
    with pytest.raises(InputError, match="more than one Dify api"):
        adopt.discover(settings(), twice)


def test_files_that_live_on_an_emptydir_are_refused():
    found = fixture("nkp")
    api = next(o for o in found["source_deployments"]["resources"] if o["metadata"]["name"] == "dify-api")
    pod = api["spec"]["template"]["spec"]
    for volume in pod["volumes"]:
        if "persistentVolumeClaim" in volume and volume["persistentVolumeClaim"]["claimName"] == "dify-api-storage":
            volume.pop("persistentVolumeClaim")
            volume["emptyDir"] = {}
    with pytest.raises(InputError, match=r"on volume storage \(emptyDir\), which cannot be read"):
        adopt.discover(settings(), found)


def test_a_source_newer_than_the_catalog_or_the_target_release_is_refused():
    found = fixture("nkp")
    api = next(o for o in found["source_deployments"]["resources"] if o["metadata"]["name"] == "dify-api")
    api["spec"]["template"]["spec"]["containers"][0]["image"] = "langgenius/dify-api:1.99.0"
    source = adopt.discover(settings(), found)
    with pytest.raises(InputError, match="newer than this collection knows"):
        adopt.check(settings(), source, releases(), None, found)
    older_target = settings(dify_image_tag="1.11.4")
    newer = adopt.discover(older_target, fixture("community"))  # 1.12.1
    with pytest.raises(InputError, match=r"dify_image_tag 1\.11\.4 is older than the Dify the source runs"):
        adopt.check(older_target, newer, releases(), None, fixture("community"))


def test_a_target_that_holds_another_dify_or_the_source_itself_is_refused():
    source = adopt.discover(settings(), fixture("nkp"))
    with pytest.raises(InputError, match="already holds another Dify"):
        adopt.check(settings(), source, releases(), {"SECRET_KEY": "another"}, fixture("nkp"))
    same = Settings(params("adopt", dify_adopt_namespace="dify", dify_namespace="dify"))
    with pytest.raises(InputError, match="dify_namespace dify is dify_adopt_namespace"):
        adopt.check(same, adopt.discover(same, fixture("nkp")), releases(), None, fixture("nkp"))


def prepare_adoption(name: str, existing: dict | None = None, **inventory) -> dict:
    found = {**fixture(name), **(existing or {})}
    base = reader({})

    def read(reads):
        out = base([r for r in reads if not r["id"].startswith("source_")])
        out.update({k: v for k, v in found.items() if k.startswith("source_") or k in (existing or {})})
        return out

    spec = params("adopt", dify_adopt_namespace="dify", dify_namespace="dify-ce",
                  dify_storage_class="kwok-volume", dify_files_storage_class="kwok-files", **inventory)  # fmt: skip
    return build.prepare(spec, "adopt", read, assets=ASSETS, releases=releases())


def test_the_new_install_carries_the_keys_over_and_plans_every_copy():
    model = prepare_adoption("community")
    source = adopt.discover(settings(), fixture("community"))
    secret = next(o for o in model["secrets"] if o["metadata"]["name"] == "dify-credentials")["data"]
    carried = {k: base64.b64decode(v).decode() for k, v in secret.items()}
    for key, value in source.keys.items():
        assert carried[key] == value, key
    assert carried["DB_PASSWORD"] != source.db["password"], "the new database gets a password of its own"
    assert model["adopt"]["to_copy"] == ["database", "files", "plugins", "weaviate"]
    jobs = model["adopt"]["jobs"]
    assert "pg_dump" in jobs["db"]["spec"]["containers"][0]["args"][0]
    sender = jobs["send_plugins"]["spec"]
    assert sender["volumes"][0]["persistentVolumeClaim"] == {"claimName": "dify-plugin-daemon", "readOnly": True}
    assert sender["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    receiver = jobs["receive_files"]["spec"]
    assert receiver["volumes"][0]["persistentVolumeClaim"]["claimName"] == "dify-files"
    assert any(o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == "data-dify-weaviate-0"
               for o in model["adopt"]["objects"])  # fmt: skip
    assert "DB_PASSWORD" not in repr(model["adopt"]["record"])


def test_a_second_run_copies_nothing_unless_forced_with_the_source_named():
    pg16 = {"dify_postgres_image": "postgres:16-alpine"}
    # The first run wrote the adoption record and the credentials of the new installation.
    first = next(o for o in prepare_adoption("nkp", **pg16)["secrets"] if o["metadata"]["name"] == "dify-credentials")
    credentials = {"kind": "Secret", "metadata": {"name": "dify-credentials"}, "data": first["data"]}
    record = {"adoption_record": {"resources": [{"kind": "ConfigMap", "metadata": {"name": "dify-adoption"},
              "data": {"source": "dify", "time": "2026-12-01T10:00:00Z"}}]},
              "credentials": {"resources": [credentials]}}  # fmt: skip
    assert prepare_adoption("nkp", record, **pg16)["adopt"]["to_copy"] == []
    with pytest.raises(InputError, match="dify_adopt_confirm"):
        prepare_adoption("nkp", record, dify_adopt_force=True, **pg16)
    forced = prepare_adoption("nkp", record, dify_adopt_force=True, dify_adopt_confirm="dify", **pg16)
    assert forced["adopt"]["to_copy"] == ["database", "files", "plugins", "weaviate"]


def test_a_source_postgresql_newer_than_the_new_one_is_refused_naming_the_image():
    source = adopt.discover(settings(), fixture("nkp"))
    assert source.db_image == "bitnamilegacy/postgresql:16.3.0-debian-12-r4", "the workload behind DB_HOST"
    assert adopt.postgres_major(source.db_image) == 16 and adopt.postgres_major("postgres:15-alpine") == 15
    assert adopt.postgres_major("postgres:latest") is None
    with pytest.raises(InputError, match=r"dify_postgres_image postgres:15-alpine is PostgreSQL 15, older .* 16"):
        prepare_adoption("nkp")
    assert prepare_adoption("nkp", dify_postgres_image="postgres:16-alpine")["adopt"]["to_copy"]
    # Older sources are read by the newer pg_dump; an unknown version is checked by the copy Job.
    adopt.check_postgres(adopt.discover(settings(), fixture("community")), "postgres:15-alpine")
    external = adopt.Source(**{**source.__dict__, "db_image": ""})
    adopt.check_postgres(external, "postgres:15-alpine")


def test_an_adoption_starts_nothing_before_the_copied_databases_are_restored():
    assert prepare_adoption("community")["early"] == []


def with_vector_store(store: dict[str, str]) -> dict:
    """The hand-made fixture's ConfigMaps with another vector store in its shared one."""
    found = fixture("handmade")
    config = next(o for o in found["source_configmaps"]["resources"] if o["metadata"]["name"] == "dify-shared-config")
    config["data"].update(store)
    return {"source_configmaps": found["source_configmaps"]}


@pytest.mark.parametrize(
    ("store", "carried"),
    [
        ({"VECTOR_STORE": "qdrant", "QDRANT_URL": "https://qdrant.example.com:6333", "QDRANT_API_KEY": "qk"},
         {"VECTOR_STORE": "qdrant", "QDRANT_URL": "https://qdrant.example.com:6333"}),
        ({"VECTOR_STORE": "pgvector", "PGVECTOR_HOST": "pg.example.com", "PGVECTOR_PORT": "5433",
          "PGVECTOR_USER": "dify", "PGVECTOR_PASSWORD": "pp", "PGVECTOR_DATABASE": "vectors"},
         {"VECTOR_STORE": "pgvector", "PGVECTOR_HOST": "pg.example.com", "PGVECTOR_PORT": "5433"}),
    ],
)  # fmt: skip
def test_an_external_qdrant_or_pgvector_is_reused(store, carried):
    model = prepare_adoption("handmade", existing=with_vector_store(store))
    env = next(o for o in model["objects"]["config"] if o["metadata"]["name"] == "dify-shared-env")["data"]
    assert {k: env[k] for k in carried} == carried
    assert "weaviate" not in model["adopt"]["to_copy"]
    assert not any(o["kind"] == "StatefulSet" and "weaviate" in o["metadata"]["name"] for o in model["objects"]["data"])
    assert any("is reused, not copied" in n for n in model["plan"]["notices"])
    secret = next(o for o in model["secrets"] if o["metadata"]["name"] == "dify-credentials")
    key = "QDRANT_API_KEY" if store["VECTOR_STORE"] == "qdrant" else "PGVECTOR_PASSWORD"
    assert base64.b64decode(secret["data"][key]).decode() == store[key]
    assert secret["metadata"]["annotations"]["dify-ce.kubernetes/vector-store"] == store["VECTOR_STORE"]


def test_a_pgvector_of_the_source_namespace_is_not_copied_and_other_stores_are_refused():
    store = {"VECTOR_STORE": "pgvector", "PGVECTOR_HOST": "dify-weaviate", "PGVECTOR_PASSWORD": "pp"}  # a Service there
    model = prepare_adoption("handmade", existing=with_vector_store(store))
    assert any(o["metadata"]["name"] == "dify-pgvector" for o in model["objects"]["data"]), "a new bundled one"
    assert any("flask vdb-migrate" in n for n in model["plan"]["notices"])
    with pytest.raises(InputError, match="keeps vectors in milvus"):
        prepare_adoption("handmade", existing=with_vector_store({"VECTOR_STORE": "milvus"}))


@pytest.mark.parametrize(
    "endpoint",
    ["http://weaviate:8080", "http://weaviate.dify:8080", "http://weaviate.dify.svc:8080",
     "http://weaviate.dify.svc.cluster.local:8080", "http://weaviate.dify.svc.k8s.example.net"],
)  # fmt: skip
def test_a_weaviate_of_the_source_namespace_is_copied_however_its_endpoint_is_written(endpoint):
    found = fixture("community")
    for cm in found["source_configmaps"]["resources"]:
        if "WEAVIATE_ENDPOINT" in (cm.get("data") or {}):
            cm["data"]["WEAVIATE_ENDPOINT"] = endpoint
    source = adopt.discover(settings(), found)
    assert source.weaviate is not None and not source.vector_store, "its volume is copied, nothing is stopped"


def test_a_weaviate_of_another_namespace_is_reused_not_copied():
    assert not adopt.in_namespace("weaviate.other", "dify", {"weaviate"})
    assert not adopt.in_namespace("weaviate.example.com", "dify", {"weaviate"})
    assert adopt.in_namespace("weaviate.dify.svc.cluster.local", "dify", {"weaviate"})


def test_the_secret_key_dify_once_published_is_carried_over_with_a_warning():
    model = prepare_adoption("community")  # the community chart's default is that key
    assert any("SECRET_KEY published in Dify's .env.example" in n for n in model["plan"]["notices"])
    nkp = prepare_adoption("nkp", dify_postgres_image="postgres:16-alpine")
    assert not any("SECRET_KEY published" in n for n in nkp["plan"]["notices"])
