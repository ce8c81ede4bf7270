# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The external vector stores (dify_vector_store: qdrant, milvus, opensearch, elasticsearch): what
Dify's pods are told, with Dify's own names (dify:api/configs/middleware/vdb/<store>_config.py@
f68cabe226, unchanged since 1.11.4), and the checks of their variables. Their secrets (API keys,
passwords) are in the Secret dify-credentials (credentials.py), never here.

And the record of the store an installation keeps its vectors in: Dify does not move vectors from
one store to another, so another dify_vector_store on an installation with data is refused unless
dify_vector_store_reindex says the new store may start empty (then `flask vdb-migrate` indexes
every knowledge base again, docs/operators.md)."""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import EXTERNAL, Component
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import DEFAULT_VECTOR_STORE, Settings

URL = re.compile(r"^https?://[^/\s]+(/.*)?$")


def _given(env: dict[str, str]) -> dict[str, str]:
    """Dify reads an empty value as given: what is not set stays out."""
    return {k: v for k, v in env.items() if v != ""}


def _bool(value: bool) -> str:
    return str(bool(value)).lower()


def _qdrant(s: Settings) -> dict[str, str]:
    return {"VECTOR_STORE": "qdrant", "QDRANT_URL": s.qdrant_url}


def _qdrant_checks(s: Settings) -> list[str]:
    if s.vector_store != "qdrant" or URL.match(s.qdrant_url or ""):
        return []
    return ["dify_vector_store is qdrant, so dify_qdrant_url (http(s)://host:port of the Qdrant server) is required."]


def _milvus(s: Settings) -> dict[str, str]:
    return _given({"VECTOR_STORE": "milvus", "MILVUS_URI": s.milvus_uri, "MILVUS_USER": s.milvus_user,
                   "MILVUS_DATABASE": s.milvus_database})  # fmt: skip


def _milvus_checks(s: Settings) -> list[str]:
    if s.vector_store != "milvus":
        return []
    return [message for ok, message in (
        (bool(URL.match(s.milvus_uri or "")), "dify_vector_store is milvus, so dify_milvus_uri (http(s)://host:port "
                                              "of the Milvus server) is required."),
        (not s.milvus_user or bool(s.milvus_password or s.credentials_secret),
         "dify_milvus_user is set, so dify_milvus_password is required (or use dify_milvus_token)."),
    ) if not ok]  # fmt: skip


def _opensearch(s: Settings) -> dict[str, str]:
    env = {
        "VECTOR_STORE": "opensearch",
        "OPENSEARCH_HOST": s.opensearch_host,
        "OPENSEARCH_PORT": str(s.opensearch_port),
        "OPENSEARCH_SECURE": _bool(s.opensearch_secure),
        "OPENSEARCH_VERIFY_CERTS": _bool(s.opensearch_verify_certs),
        "OPENSEARCH_AUTH_METHOD": s.opensearch_auth_method,
        "OPENSEARCH_USER": s.opensearch_user,
    }
    if s.opensearch_auth_method == "aws_managed_iam":
        env.update(OPENSEARCH_AWS_REGION=s.opensearch_aws_region, OPENSEARCH_AWS_SERVICE=s.opensearch_aws_service)
    return _given(env)


def _opensearch_checks(s: Settings) -> list[str]:
    if s.vector_store != "opensearch":
        return []
    return [message for ok, message in (
        (bool(s.opensearch_host), "dify_vector_store is opensearch, so dify_opensearch_host is required."),
        (not s.opensearch_user or bool(s.opensearch_password or s.credentials_secret),
         "dify_opensearch_user is set, so dify_opensearch_password is required."),
        (s.opensearch_auth_method != "aws_managed_iam" or bool(s.opensearch_aws_region),
         "dify_opensearch_auth_method is aws_managed_iam, so dify_opensearch_aws_region is required."),
    ) if not ok]  # fmt: skip


def _elasticsearch(s: Settings) -> dict[str, str]:
    env = {"VECTOR_STORE": "elasticsearch", "ELASTICSEARCH_VERIFY_CERTS": _bool(s.elasticsearch_verify_certs)}
    if s.elasticsearch_use_cloud:
        env.update(ELASTICSEARCH_USE_CLOUD="true", ELASTICSEARCH_CLOUD_URL=s.elasticsearch_cloud_url)
    else:
        env.update(ELASTICSEARCH_HOST=s.elasticsearch_host, ELASTICSEARCH_PORT=str(s.elasticsearch_port),
                   ELASTICSEARCH_USERNAME=s.elasticsearch_username)  # fmt: skip
    return _given(env)


def _elasticsearch_checks(s: Settings) -> list[str]:
    if s.vector_store != "elasticsearch":
        return []
    if not s.elasticsearch_use_cloud:
        return [] if s.elasticsearch_host else ["dify_vector_store is elasticsearch, so dify_elasticsearch_host is "
                                                "required (or dify_elasticsearch_use_cloud)."]  # fmt: skip
    return [message for ok, message in (
        (bool(URL.match(s.elasticsearch_cloud_url or "")),
         "dify_elasticsearch_use_cloud is true, so dify_elasticsearch_cloud_url (https://...) is required."),
        (bool(s.elasticsearch_api_key or s.credentials_secret),
         "dify_elasticsearch_use_cloud is true, so dify_elasticsearch_api_key is required."),
    ) if not ok]  # fmt: skip


def _external(name: str, client_env: Any, checks: Any) -> Component:
    return Component(name=name, kind=EXTERNAL, checks=checks, client_env=client_env)


QDRANT = _external("qdrant", _qdrant, _qdrant_checks)
MILVUS = _external("milvus", _milvus, _milvus_checks)
OPENSEARCH = _external("opensearch", _opensearch, _opensearch_checks)
ELASTICSEARCH = _external("elasticsearch", _elasticsearch, _elasticsearch_checks)
EXTERNAL_STORES = (QDRANT, MILVUS, OPENSEARCH, ELASTICSEARCH)


# ------------------------------------------------------------------ the store an installation keeps


def annotations(s: Settings) -> dict[str, str]:
    """What the Secret dify-credentials records of the store (nothing for Weaviate: every
    installation made before dify_vector_store keeps its vectors there)."""
    return {} if s.vector_store == DEFAULT_VECTOR_STORE else {names.VECTOR_STORE_ANNOTATION: s.vector_store}


def recorded(secret: dict[str, Any] | None) -> str:
    """The store the installation keeps its vectors in, from its Secret dify-credentials as read
    ("" without the Secret: nothing was installed, or it was removed)."""
    if secret is None:
        return ""
    found = ((secret.get("metadata") or {}).get("annotations") or {}).get(names.VECTOR_STORE_ANNOTATION)
    return found or DEFAULT_VECTOR_STORE


def check_switch(s: Settings, secret: dict[str, Any] | None, installed: bool) -> str:
    """Refuses another store on an installation with data (a migration record, or workloads that
    run), unless dify_vector_store_reindex; returns the notice of an accepted change ("" for none)."""
    was = recorded(secret)
    if not installed or not was or was == s.vector_store:
        return ""
    if not s.get("vector_store_reindex", False):
        raise InputError(
            f"Nothing was changed. dify_vector_store is {s.vector_store}, but this installation keeps its vectors in "
            f"{was} (recorded on Secret {names.CREDENTIALS}). Dify does not move vectors between stores: with "
            f"{s.vector_store} every knowledge base would search an empty index. Set dify_vector_store back to {was}, "
            "or also set dify_vector_store_reindex: true and then index the knowledge bases again with `flask "
            'vdb-migrate` (docs/operators.md, "Changing the vector store").'
        )
    return (
        f"dify_vector_store changes from {was} to {s.vector_store} (dify_vector_store_reindex): the new store starts "
        f"empty; run `kubectl -n {s.namespace} exec deploy/{names.workload('api')} -- flask vdb-migrate` once the "
        f"rollout is done. The {was} data is left where it was."
    )
