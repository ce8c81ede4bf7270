"""The components: what each declares, and what is derived from the declarations (the flows and
NetworkPolicies, the components started early, allowed on the internet, given the extra egress,
autoscaled). A worker pool declared here shows that declaring a component is all it takes."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from cases import prepare

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import components
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import api, weaviate
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    ALWAYS,
    DEPLOYMENT,
    FILES,
    INTERNET,
    NEVER,
    STATEFULSET,
    Component,
    Port,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import DATABASE, REDIS, VECTOR_STORE

POOL = Component(
    name="pool",
    kind=DEPLOYMENT,
    pod=lambda c, b: c.workload(b, env_from=api.app_env_from()),
    image="api",
    uses=(DATABASE, REDIS),
    default_resources={"requests": {"cpu": "100m"}, "limits": {"cpu": "1"}},
)


def declare(monkeypatch: pytest.MonkeyPatch, *more: Component) -> None:
    """Components declared besides the collection's (rendered after its Deployments)."""
    monkeypatch.setattr(components, "ALL", (*components.ALL, *more))


def policy(model: dict, component: str) -> dict:
    return next(o["spec"] for o in model["objects"]["config"]
                if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == names.workload(component))  # fmt: skip


def egress_to(spec: dict) -> dict[str, list[int]]:
    """Component -> ports its pods may reach (pod peers only)."""
    out = {}
    for rule in spec["egress"]:
        for peer in rule.get("to", []):
            if "podSelector" in peer:
                out[peer["podSelector"]["matchLabels"][names.LABEL_COMPONENT]] = [p["port"] for p in rule["ports"]]
    return out


def internet(spec: dict) -> bool:
    return any(peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" for rule in spec["egress"] for peer in rule["to"])


# --------------------------------------------------------------------------- the declarations


def test_names_are_unique_and_every_use_is_served():
    assert len({c.name for c in components.ALL}) == len(components.ALL)
    for c in components.ALL:
        for service in c.uses:
            assert service == FILES or components.providers(service), f"{c.name} uses {service}, which no one serves"
        for service, instead in c.instead.items():
            assert service in c.uses, f"{c.name}: instead of {service}, which it does not use"
            assert all(u == INTERNET or components.providers(u) for u in instead), (c.name, instead)


def test_what_a_component_uses_instead_counts_only_where_nothing_serves_the_use():
    sandbox = components.named("agent-local-sandbox")
    without_proxy = ["agent-local-sandbox", "agent-backend", "api"]
    assert components.uses(sandbox, without_proxy) == ("agent-ssrf-proxy", "agent-backend", "api")
    assert components.direct_internet(without_proxy) == ("agent-local-sandbox",)
    with_proxy = [*without_proxy, "agent-ssrf-proxy"]
    assert components.uses(sandbox, with_proxy) == ("agent-ssrf-proxy",) == components.uses(sandbox)
    assert components.direct_internet(with_proxy) == ()
    assert components.direct_internet(["agent-backend", "api"]) == (), "not running: nothing to reach"


def test_every_flow_is_a_use_and_every_use_a_flow():
    flows = components.flows()
    for flow in flows:
        for source in flow.sources:
            assert set(components.named(source).uses) & set(components.named(flow.to).serves), (source, flow.to)
    for c in components.ALL:
        for service in c.uses:
            for provider in components.providers(service):
                assert any(f.to == provider.name and c.name in f.sources and f.ports == provider.port_numbers(service)
                           for f in flows), (c.name, service)  # fmt: skip


def test_what_the_declarations_say_today():
    """The lists the model used to spell out, now derived (api-websocket, a client of the database,
    gets the extra egress too)."""
    assert components.autoscalable() == ("api", "worker", "web", "sandbox")
    assert set(components.schema_independent()) == {"web", "sandbox", "ssrf-proxy", "nginx", "plugin-daemon",
                                                    "agent-local-sandbox", "agent-ssrf-proxy"}  # fmt: skip
    assert components.internet_capable() == ("api", "worker", "beat", "web", "plugin-daemon", "nginx")
    assert components.internet_always() == ("ssrf-proxy", "agent-ssrf-proxy")
    assert components.data_clients() == ("api", "worker", "beat", "plugin-daemon", "api-websocket", names.MIGRATION,
                                         names.DB_TOOLS, names.STATUS_PROBE)  # fmt: skip
    assert components.data_components() == ("postgres", "redis", "weaviate", "pgvector")
    assert components.vector_store_kinds() == ("weaviate", "pgvector", "qdrant", "milvus", "opensearch",
                                               "elasticsearch")  # fmt: skip
    assert components.job_components() == (names.MIGRATION, names.DB_TOOLS, names.STATUS_PROBE, names.PROVIDER_SETUP)
    assert set(components.resource_keys()) == {
        "api", "worker", "beat", "web", "sandbox", "plugin_daemon", "ssrf_proxy", "nginx", "postgres", "redis",
        "weaviate", "pgvector", "migration", "tools", "agent_backend", "agent_local_sandbox",
    }  # fmt: skip
    assert set(components.default_resources()) == set(components.resource_keys()) - {"migration"}


def test_a_second_vector_store_kind_is_reached_by_the_vector_stores_clients(monkeypatch):
    store = Component(name="chroma", kind=STATEFULSET, image="chroma", ports=(Port("http", 8000, VECTOR_STORE),))
    declare(monkeypatch, store)
    to_store = [f for f in components.flows() if f.to == "chroma"]
    assert to_store == [components.Flow("chroma", (8000,), ("api", "worker"))]
    assert [c.name for c in components.providers(VECTOR_STORE)] == ["weaviate", "pgvector", "chroma"]
    assert store.data_service == VECTOR_STORE


# --------------------------------------------------------------------------- derived, rendered


def test_a_component_that_uses_the_database_gets_its_flows(monkeypatch):
    declare(monkeypatch, POOL)
    model = prepare("default", dify_network_policy_extra_egress=[{"cidr": "10.20.0.5/32", "ports": [5432]}])
    assert ("Deployment", "dify-pool") in {(o["kind"], o["metadata"]["name"]) for o in model["objects"]["app"]}
    pool = policy(model, "pool")
    assert egress_to(pool) == {"postgres": [5432], "redis": [6379]}
    assert {"ipBlock": {"cidr": "10.20.0.5/32"}} in [peer for rule in pool["egress"] for peer in rule["to"]]
    assert "ingress" not in pool, "it serves nothing"
    sources = [peer["podSelector"]["matchLabels"][names.LABEL_COMPONENT]
               for rule in policy(model, "postgres")["ingress"] for peer in rule["from"]]  # fmt: skip
    assert "pool" in sources
    assert not internet(pool)


def test_a_component_that_uses_nothing_reaches_only_dns(monkeypatch):
    declare(monkeypatch, dataclasses.replace(POOL, uses=()))
    pool = policy(prepare("default"), "pool")
    assert len(pool["egress"]) == 1 and {p["port"] for p in pool["egress"][0]["ports"]} == {53}


@pytest.mark.parametrize("early", [True, False])
def test_a_schema_independent_component_starts_during_a_first_install(monkeypatch, early):
    declare(monkeypatch, dataclasses.replace(POOL, schema_independent=early))
    started = {o["metadata"]["name"] for o in prepare("default")["early"] if o["kind"] == "Deployment"}
    assert ("dify-pool" in started) == early
    running = {c.name for c in components.ALL if c.kind == DEPLOYMENT and c.feature in ("", "agent")}
    assert started == {names.workload(name) for name in running & set(components.schema_independent())}


def test_only_components_declaring_internet_access_get_it():
    model = prepare("default", dify_network_policy_internet_egress=list(components.internet_capable()))
    policies = [o for o in model["objects"]["config"] if o["kind"] == "NetworkPolicy"][1:]  # after the default deny
    assert len(policies) > 15
    for obj in policies:
        component = components.named(obj["metadata"]["name"][len("dify-") :])
        assert internet(obj["spec"]) == (component.internet != NEVER), component.name
    assert not internet(policy(prepare("default"), "beat")), "on request only"
    assert internet(policy(prepare("default", dify_network_policy_internet_egress=[]), "ssrf-proxy"))


def test_a_component_not_declaring_internet_access_cannot_be_given_it(monkeypatch):
    declare(monkeypatch, POOL)
    with pytest.raises(InputError, match=r"dify_network_policy_internet_egress may name .*not \['pool'\]"):
        prepare("default", dify_network_policy_internet_egress=["pool"])
    declare(monkeypatch, dataclasses.replace(POOL, name="pool2", internet=ALWAYS))
    assert internet(policy(prepare("default"), "pool2"))


def test_an_autoscalable_component_gets_an_autoscaler_and_its_resources(monkeypatch):
    declare(monkeypatch, dataclasses.replace(POOL, autoscalable=True))
    model = prepare("default", dify_autoscaling=True, dify_resources={"pool": {"limits": {"cpu": "3"}}})
    kinds = {(o["kind"], o["metadata"]["name"]) for o in model["objects"]["app"]}
    assert {("HorizontalPodAutoscaler", "dify-pool"), ("PodDisruptionBudget", "dify-pool")} <= kinds
    deployment = next(o for o in model["objects"]["app"] if o["kind"] == "Deployment" and o["metadata"]["name"]
                      == "dify-pool")  # fmt: skip
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "100m"}, "limits": {"cpu": "3"}}  # fmt: skip


def test_the_vector_store_settings_come_from_its_component():
    bundled = shared_env(prepare("default"))
    assert {k: bundled[k] for k in ("VECTOR_STORE", "WEAVIATE_ENDPOINT", "WEAVIATE_GRPC_ENDPOINT")} == {
        "VECTOR_STORE": "weaviate", "WEAVIATE_ENDPOINT": "http://dify-weaviate:8080",
        "WEAVIATE_GRPC_ENDPOINT": "grpc://dify-weaviate:50051"}  # fmt: skip
    external = shared_env(prepare("external"))
    assert external["WEAVIATE_ENDPOINT"] == "http://weaviate.example.com:8080"
    assert weaviate.external("e", "g", "k") == {"weaviate_enabled": False, "weaviate_endpoint": "e",
                                                "weaviate_grpc_endpoint": "g", "weaviate_api_key": "k"}  # fmt: skip


# --------------------------------------------------------------------------- config hash


def hash_of(model: dict, name: str) -> str:
    deployment = next(o for o in model["objects"]["app"] if o["kind"] == "Deployment"
                      and o["metadata"]["name"] == name)  # fmt: skip
    return deployment["spec"]["template"]["metadata"]["annotations"][names.CONFIG_HASH]


def test_a_pod_restarts_when_any_secret_it_references_changes_and_the_hash_shows_no_value(monkeypatch):
    key = {"secretKeyRef": {"name": names.PROVIDER_KEYS, "key": "OPENAI_API_KEY"}}
    reads_keys = dataclasses.replace(POOL, pod=lambda c, b: c.workload(b, env=[{"name": "KEY", "valueFrom": key}]))
    declare(monkeypatch, reads_keys)
    one, other = prepare("external"), prepare("external", dify_openai_api_key="sk-openai-other")
    assert hash_of(one, "dify-pool") != hash_of(other, "dify-pool")
    assert hash_of(one, "dify-api") == hash_of(other, "dify-api"), "the api does not read the provider keys"
    # Keyed with SECRET_KEY: the same values under another key give another hash.
    rekeyed = prepare("external", dify_secret_key="f" * 64)
    assert hash_of(one, "dify-pool") != hash_of(rekeyed, "dify-pool")
    for value in ("sk-openai-given", base64.b64encode(b"sk-openai-given").decode()):
        assert value not in hash_of(one, "dify-pool")


def test_a_secret_mounted_as_a_volume_counts_too(monkeypatch):
    volume = [{"name": "keys", "secret": {"secretName": names.PROVIDER_KEYS}}]
    declare(monkeypatch, dataclasses.replace(POOL, pod=lambda c, b: c.workload(b, volumes=volume)))
    one, other = prepare("external"), prepare("external", dify_openai_api_key="sk-openai-other")
    assert hash_of(one, "dify-pool") != hash_of(other, "dify-pool")


# --------------------------------------------------------------------------- helpers


def shared_env(model: dict) -> dict[str, str]:
    return next(o["data"] for o in model["objects"]["config"] if o["metadata"]["name"] == names.SHARED_ENV)
