# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgvector, a vector store (dify_vector_store: pgvector): bundled with dify_pgvector_enabled, else
the external server at dify_pgvector_host.

The bundled one is a StatefulSet of its own with the pgvector image (Dify's compose runs it as a
separate service too: dify:docker/docker-compose-template.yaml@0ef8b5a0ca, service pgvector,
pgvector/pgvector:pg16), never the bundled PostgreSQL: that one runs the alpine image, and a
Debian image on its data directory would sort text by another C library's collation (indexes
silently out of order). Its user is the superuser of its own server, so Dify may create the
vector extension itself; the init script creates it first anyway (CREATE EXTENSION needs a
superuser: pgvector's control file is not trusted)."""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import postgres
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components.base import (
    STATEFULSET,
    Component,
    Port,
    Workload,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import VECTOR_STORE, Settings

KIND = "pgvector"  # Dify's VECTOR_STORE value, and the component's name
DATA_PATH = "/var/lib/postgresql/data"
# uid 999 is "postgres" in the Debian-based postgres images pgvector's image builds on.
PGVECTOR_USER = {"runAsUser": 999, "runAsGroup": 999, "fsGroup": 999, "runAsNonRoot": True}
INIT_SQL = "CREATE EXTENSION IF NOT EXISTS vector;\n"


def _pgvector(c: Component, b: Any) -> Workload:
    s = b.s
    return postgres.server(c, b, user=s.pgvector_user, password_key="PGVECTOR_PASSWORD", database=s.pgvector_database,
                           init=names.PGVECTOR_INIT, storage_size=s.pgvector_storage_size,
                           pod_security=PGVECTOR_USER, data_path=DATA_PATH)  # fmt: skip


def config_maps(b: Any) -> list[dict[str, Any]]:
    """Runs once, when the data volume is initialised, in PGVECTOR_DATABASE: the vector extension."""
    if not PGVECTOR.runs(b.s, b.release):
        return []
    return [b.config_map(names.PGVECTOR_INIT, KIND, {"10-vector-extension.sql": INIT_SQL})]


def client_env(s: Settings) -> dict[str, str]:
    """What Dify's pods are told (dify:api/configs/middleware/vdb/pgvector_config.py@f68cabe226; the
    code's default port is 5433, so it is always given). PGVECTOR_PASSWORD is in the credentials."""
    if s.bundled(VECTOR_STORE):
        host, port = names.workload(KIND), "5432"
    else:
        host, port = s.pgvector_host, str(s.pgvector_port)
    return {
        "VECTOR_STORE": KIND,
        "PGVECTOR_HOST": host,
        "PGVECTOR_PORT": port,
        "PGVECTOR_USER": s.pgvector_user,
        "PGVECTOR_DATABASE": s.pgvector_database,
    }


def checks(s: Settings) -> list[str]:
    """An external pgvector needs its host and password (or a Secret of yours that holds it)."""
    if s.vector_store != KIND or s.bundled(VECTOR_STORE):
        return []
    return [message for ok, message in (
        (bool(s.pgvector_host), "dify_vector_store is pgvector and dify_pgvector_enabled is false, so "
                                "dify_pgvector_host (the external server) is required."),
        (bool(s.pgvector_password or s.credentials_secret),
         "dify_vector_store is pgvector and dify_pgvector_enabled is false, so dify_pgvector_password (the external "
         "server's password) is required."),
    ) if not ok]  # fmt: skip


PGVECTOR = Component(
    name=KIND,
    kind=STATEFULSET,
    pod=_pgvector,
    image="pgvector",
    ports=(Port("postgres", 5432, VECTOR_STORE),),
    default_resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    checks=checks,
    client_env=client_env,
)


def major(image: str) -> str:
    """The PostgreSQL major version of a pgvector image tag (pg16, 0.8.0-pg16 -> "16"; "" unknown)."""
    match = re.search(r"(?:^|[-_.])pg(\d+)(?:$|[-_.])", image.rsplit("/", 1)[-1].partition(":")[2])
    return match.group(1) if match else ""


def check_image(running: str, wanted: str) -> None:
    """PostgreSQL opens only the data directory of its own major version: another major version of
    the bundled pgvector is refused before anything changes."""
    have, want = major(running), major(wanted)
    if have and want and have != want:
        raise InputError(
            f"Nothing was changed. The bundled pgvector runs PostgreSQL {have} ({running}); {wanted} "
            f"(dify_pgvector_image) is PostgreSQL {want}, which cannot open that data directory. Keep a pg{have} "
            "image, or move the vectors yourself (pg_upgrade, or a new store and flask vdb-migrate: docs/operators.md)."
        )
