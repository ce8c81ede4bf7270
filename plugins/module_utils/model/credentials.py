# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deciding every credential: a value given in a variable wins, else the one stored in the Secret
dify-credentials, else a new random one (64 hex characters, as `openssl rand -hex 32`), created
once and reused by every later run, upgrade and reinstall. Deciding changes nothing; what would
break a running installation (another database password for existing data, another SECRET_KEY)
is refused unless its rotation is asked for."""

from __future__ import annotations

import hashlib
import secrets
import string
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import (
    DATABASE,
    REDIS,
    VECTOR_STORE,
    Settings,
)

# Secret key <- variable. Keys that components must share are one key each: equal by construction.
CREDENTIAL_VARIABLES = {
    "SECRET_KEY": "secret_key",
    "DB_PASSWORD": "db_password",
    "REDIS_PASSWORD": "redis_password",
    "PLUGIN_DAEMON_KEY": "plugin_daemon_key",
    "INNER_API_KEY_FOR_PLUGIN": "plugin_inner_api_key",
    "CODE_EXECUTION_API_KEY": "sandbox_api_key",
    "WEAVIATE_API_KEY": "weaviate_api_key",
}
# The agent's keys (Dify 1.16 and later), one Secret key per pair: agent DIFY_AGENT_API_TOKEN =
# api/worker AGENT_BACKEND_API_TOKEN; agent DIFY_AGENT_SHELLCTL_AUTH_TOKEN (1.17:
# DIFY_AGENT_LOCAL_SANDBOX_AUTH_TOKEN) = local sandbox SHELLCTL_AUTH_TOKEN; the agent's own root
# secret for its stub tokens (unpadded base64url of 32 bytes, which the agent checks).
AGENT_CREDENTIAL_VARIABLES = {
    "AGENT_BACKEND_API_TOKEN": "agent_api_token",
    "AGENT_SANDBOX_AUTH_TOKEN": "agent_sandbox_token",
    "AGENT_SERVER_SECRET_KEY": "agent_server_secret_key",
}
# What data and sessions depend on: never generated while an installation exists (decide()).
STATEFUL = {"SECRET_KEY": "secret_key", "DB_PASSWORD": "db_password", "REDIS_PASSWORD": "redis_password"}
# The bundled pgvector's password (dify_vector_store: pgvector): generated once like the others,
# given for an external server, kept in the Secret from then on.
PGVECTOR_PASSWORD = "PGVECTOR_PASSWORD"
# The secrets of what operators choose to run (docs/operators.md), under Dify's own names: the key
# in dify-credentials <- (its variable, whether the settings use it). Written only when used and
# given; never generated. The api image's pods read them through envFrom, the plugin daemon
# through envFrom or a secretKeyRef under its own name (components/plugin_daemon.py).
OPERATOR_SECRET_VARIABLES: dict[str, tuple[str, Callable[[Settings], bool]]] = {
    "QDRANT_API_KEY": ("qdrant_api_key", lambda s: s.vector_store == "qdrant"),
    "MILVUS_TOKEN": ("milvus_token", lambda s: s.vector_store == "milvus"),
    "MILVUS_PASSWORD": ("milvus_password", lambda s: s.vector_store == "milvus"),
    "OPENSEARCH_PASSWORD": ("opensearch_password", lambda s: s.vector_store == "opensearch"),
    "ELASTICSEARCH_PASSWORD": ("elasticsearch_password", lambda s: s.vector_store == "elasticsearch"),
    "ELASTICSEARCH_API_KEY": ("elasticsearch_api_key", lambda s: s.vector_store == "elasticsearch"),
    "REDIS_SENTINEL_PASSWORD": ("redis_sentinel_password", lambda s: bool(s.get("redis_sentinels"))),
    "CELERY_SENTINEL_PASSWORD": ("redis_sentinel_password", lambda s: bool(s.get("redis_sentinels"))),
    "EVENT_BUS_REDIS_URL": ("redis_event_bus_url", lambda s: bool(s.get("redis_sentinels"))),
    "OTLP_API_KEY": ("otel_api_key", lambda s: bool(s.get("otel_endpoint"))),
    "PLUGIN_AWS_ACCESS_KEY": ("plugin_aws_access_key", lambda s: s.get("plugin_storage_type") == "aws_s3"),
    "PLUGIN_AWS_SECRET_KEY": ("plugin_aws_secret_key", lambda s: s.get("plugin_storage_type") == "aws_s3"),
}
# What a Secret the user manages may hold: key (as in dify-credentials) <- the variable it stands for.
USER_SECRET_KEYS = {
    **CREDENTIAL_VARIABLES,
    "S3_ACCESS_KEY": "s3_access_key",
    "S3_SECRET_KEY": "s3_secret_key",
    "OPENAI_API_KEY": "openai_api_key",
    PGVECTOR_PASSWORD: "pgvector_password",
    **{key: var for key, (var, _used) in OPERATOR_SECRET_VARIABLES.items() if key != "CELERY_SENTINEL_PASSWORD"},
}
# Entry points that write the Secret; the others only read what is stored.
WRITING_ENTRY_POINTS = ("main", "manifests", "migrate_only", "adopt")


def random_hex() -> str:
    return secrets.token_hex(32)


def random_base64url() -> str:
    """32 random bytes, unpadded base64url (what the agent backend accepts as its server key)."""
    return secrets.token_urlsafe(32)


def random_admin_password() -> str:
    # Dify wants letters and digits.
    alphabet = string.ascii_letters + string.digits
    return "Dify1-" + "".join(secrets.choice(alphabet) for _position in range(26))


@dataclass
class Credentials:
    """The decided values (never printed) and what deciding them found."""

    values: dict[str, str]
    provider: dict[str, str] = field(default_factory=dict)
    rotate_db_password: bool = False
    # For the rotation Job: the password the database has now (still in the Secret).
    notices: list[str] = field(default_factory=list)
    db_has_data: bool = False

    def secret_env(self, s: Settings, redis_host: str) -> dict[str, str]:
        """The content of the Secret dify-credentials."""
        v = self.values
        scheme = "rediss" if s.redis_use_ssl else "redis"
        password = urllib.parse.quote(v["REDIS_PASSWORD"], safe="")
        env = {
            "SECRET_KEY": v["SECRET_KEY"],
            "DB_PASSWORD": v["DB_PASSWORD"],
            "REDIS_PASSWORD": v["REDIS_PASSWORD"],
            "CELERY_BROKER_URL": f"{scheme}://:{password}@{redis_host}:{s.redis_port}/1",
            "PLUGIN_DAEMON_KEY": v["PLUGIN_DAEMON_KEY"],
            "INNER_API_KEY_FOR_PLUGIN": v["INNER_API_KEY_FOR_PLUGIN"],
            "PLUGIN_DIFY_INNER_API_KEY": v["INNER_API_KEY_FOR_PLUGIN"],
            "CODE_EXECUTION_API_KEY": v["CODE_EXECUTION_API_KEY"],
            "WEAVIATE_API_KEY": v["WEAVIATE_API_KEY"],
        }
        if s.files_storage == "s3":
            env.update(S3_ACCESS_KEY=s.s3_access_key, S3_SECRET_KEY=s.s3_secret_key)
        if "AGENT_SERVER_SECRET_KEY" in v:
            env.update({key: v[key] for key in AGENT_CREDENTIAL_VARIABLES})
            # The agent keeps its runs in Redis database 2 (Dify's default for it).
            env["AGENT_REDIS_URL"] = f"{scheme}://:{password}@{redis_host}:{s.redis_port}/2"
        if PGVECTOR_PASSWORD in v:
            env[PGVECTOR_PASSWORD] = v[PGVECTOR_PASSWORD]
        env.update(operator_secrets(s))
        if s.get("redis_sentinels"):
            # Celery's broker through the sentinels (sentinel://, one URL per sentinel joined with ";",
            # the Redis password of the master; dify:docker/.env.example@0ef8b5a0ca), and what does
            # not follow Sentinel (the agent's runs) on the event bus's Redis, database 2.
            env["CELERY_BROKER_URL"] = ";".join(f"sentinel://:{password}@{node}/1" for node in s.redis_sentinels)
            if "AGENT_REDIS_URL" in env:
                env["AGENT_REDIS_URL"] = with_database(s.redis_event_bus_url, 2)
        return env

    def provider_fingerprint(self, s: Settings) -> str:
        """Shows whether what the provider setup stores changed, not what (SECRET_KEY keys it)."""
        text = "\n".join(
            [self.values["SECRET_KEY"], s.admin_email, self.provider.get("ADMIN_PASSWORD", ""),
             self.provider.get("OPENAI_API_KEY", "")]
        )  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()


def operator_secrets(s: Settings) -> dict[str, str]:
    """The secrets of the operators' settings that are used and given (OPERATOR_SECRET_VARIABLES)."""
    out = {}
    for key, (var, used) in OPERATOR_SECRET_VARIABLES.items():
        value = s.get(var) or ""
        if value and used(s):
            out[key] = value
    return out


def with_database(url: str, database: int) -> str:
    """A redis:// URL with another database number."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{database}"))


def provider_setup_enabled(s: Settings) -> bool:
    """The OpenAI key is stored in Dify when an admin account to sign in with is named."""
    return bool(s.openai_api_key) and bool(s.admin_email)


def decide(
    s: Settings,
    stored: dict[str, str] | None,
    stored_provider: dict[str, str] | None,
    db_volume_exists: bool,
    entry_point: str = "main",
    new_secret: Callable[[], str] = random_hex,
    new_admin_password: Callable[[], str] = random_admin_password,
    agent: bool = False,
    new_agent_key: Callable[[], str] = random_base64url,
    evidence: list[str] | tuple[str, ...] = (),
    pending_rotation: str = "",
) -> Credentials:
    """Every credential, from the variables and the Secrets read before (decoded). The agent's keys
    are decided for releases that run the agent (and kept in the Secret from then on).

    ``evidence``: what shows that the namespace holds an installation (its records, its database
    volume, its Deployments). Then the values that data and sessions depend on (SECRET_KEY, the
    database and Redis passwords) are never generated: without the Secret they must be given.
    ``pending_rotation``: the new database password of a rotation cut short (its Secret)."""
    stored = stored or {}
    stored_provider = stored_provider or {}
    writing = entry_point in WRITING_ENTRY_POINTS
    values: dict[str, str] = {}
    wanted = dict(CREDENTIAL_VARIABLES)
    if agent or any(key in stored for key in AGENT_CREDENTIAL_VARIABLES):
        wanted.update(AGENT_CREDENTIAL_VARIABLES)
    pgvector_bundled = s.vector_store == "pgvector" and s.bundled(VECTOR_STORE)
    if s.vector_store == "pgvector" and not pgvector_bundled and writing:
        # An external server's password is given (or the one kept), never made up.
        values[PGVECTOR_PASSWORD] = s.get("pgvector_password") or stored.get(PGVECTOR_PASSWORD, "")
    elif pgvector_bundled or PGVECTOR_PASSWORD in stored:
        wanted[PGVECTOR_PASSWORD] = "pgvector_password"
    for key, var in wanted.items():
        if key == "AGENT_SERVER_SECRET_KEY" and writing:
            values[key] = s.get(var) or stored.get(key) or new_agent_key()
            continue
        given = s.get(var) or ""
        if not writing:
            values[key] = stored.get(key, "")
        else:
            values[key] = given or stored.get(key) or new_secret()
    creds = Credentials(values, db_has_data=s.bundled(DATABASE) and db_volume_exists)
    if not writing:
        return creds

    stateful = STATEFUL
    lost = [f"dify_{var}" for key, var in stateful.items() if key not in stored and not s.get(var)
            and (key != "REDIS_PASSWORD" or s.bundled(REDIS))]  # fmt: skip
    if evidence and lost:
        what = (
            "is missing (deleted?)"
            if not stored
            else "lacks " + ", ".join(key for key, var in stateful.items() if f"dify_{var}" in lost)
        )
        raise InputError(
            f"Nothing was changed. Secret {names.CREDENTIALS} {what}, but namespace {s.namespace} holds an "
            f"installation ({', '.join(evidence)}). New values would sign every user out, make what Dify encrypted "
            "with SECRET_KEY unreadable and lock the pods out of existing data. Give back the values it ran with: "
            f"{', '.join(lost)} (or dify_credentials_secret). The other keys, shared only between the pods this run "
            "restarts, are made anew.",
            missing=lost,
        )
    if evidence and "SECRET_KEY" not in stored:
        creds.notices.append(
            f"Secret {names.CREDENTIALS} was missing: it is written again with the values given; the keys shared "
            "only between Dify's own pods (plugin daemon, sandbox, Weaviate, agent) are new."
        )
    if pending_rotation and pending_rotation != stored.get("DB_PASSWORD"):
        # A rotation was cut short: the database may have the new password already. Finish it: the
        # rotation Job tries the new password first, and the Secret follows.
        if s.db_password and s.db_password not in (pending_rotation, stored.get("DB_PASSWORD")):
            raise InputError(
                "Nothing was changed. A rotation of the database password to another value is under way "
                f"(Secret {names.ROTATION_SECRET}): run site.yml with that one first (or without dify_db_password "
                "to finish it), then rotate again."
            )
        if entry_point != "main":
            raise InputError(
                "Nothing was changed. A rotation of the database password was cut short (Secret "
                f"{names.ROTATION_SECRET}): the database may have the new password already. Run site.yml to finish "
                "it first."
            )
        if entry_point == "main":
            values["DB_PASSWORD"] = pending_rotation
            creds.rotate_db_password = True
            creds.notices.append("A rotation of the database password was cut short: this run finishes it.")
            s = s.with_values(db_password=pending_rotation, rotate_db_password=True)

    claim = names.statefulset_claim("postgres")
    db_changes = (creds.db_has_data and bool(s.db_password) and "DB_PASSWORD" in stored
                  and s.db_password != stored["DB_PASSWORD"])  # fmt: skip
    if db_changes and not s.rotate_db_password:
        raise InputError(
            f"dify_db_password differs from the password in Secret {names.CREDENTIALS}, which the existing "
            f"database (volume {claim}) was initialised with. PostgreSQL keeps that password: applying another "
            "one would lock api and plugin daemon out (28P01). Nothing was changed. Either remove "
            "dify_db_password to keep the current password, or also set dify_rotate_db_password=true to change "
            "it in the database first (then in the Secret, then restart the pods that use it)."
        )
    if db_changes and entry_point != "main":
        # Only site.yml runs the rotation Job; anything else keeps what the database has.
        values["DB_PASSWORD"] = stored["DB_PASSWORD"]
        creds.notices.append(
            "dify_rotate_db_password: only site.yml changes the database password (ALTER USER first, then the "
            "Secret); these objects keep the current password."
        )
    else:
        creds.rotate_db_password = db_changes
    if (
        pgvector_bundled
        and s.get("pgvector_password")
        and s.pgvector_password != stored.get(PGVECTOR_PASSWORD, s.pgvector_password)
    ):
        raise InputError(
            f"dify_pgvector_password differs from the password in Secret {names.CREDENTIALS}, which the bundled "
            "pgvector was initialised with: PostgreSQL keeps it, and Dify would be locked out of its vectors. Nothing "
            "was changed. Remove dify_pgvector_password to keep the current one (changing it is ALTER USER in the "
            "pgvector server first, then this variable)."
        )
    redis_changes = bool(s.redis_password) and s.redis_password != stored.get("REDIS_PASSWORD", s.redis_password)
    if redis_changes and not s.rotate_redis_password:
        raise InputError(
            f"dify_redis_password differs from the password in Secret {names.CREDENTIALS}. Nothing was changed. "
            "Remove dify_redis_password to keep the current one, or also set dify_rotate_redis_password=true: "
            "Redis and every Dify pod then restart with the new password (a short interruption)."
        )
    if s.secret_key and "SECRET_KEY" in stored and s.secret_key != stored["SECRET_KEY"]:
        if not s.rotate_secret_key:
            raise InputError(
                f"dify_secret_key differs from the SECRET_KEY in Secret {names.CREDENTIALS}. Changing it signs "
                "every user out and makes data encrypted with it unreadable. Remove dify_secret_key to keep the "
                "current key, or also set dify_rotate_secret_key=true to change it on purpose."
            )
        creds.notices.append(
            "dify_rotate_secret_key: SECRET_KEY changes now. Every user session ends (everyone signs in again)."
        )

    if provider_setup_enabled(s):
        creds.provider = {
            "OPENAI_API_KEY": s.openai_api_key,
            "ADMIN_PASSWORD": s.admin_password or stored_provider.get("ADMIN_PASSWORD") or new_admin_password(),
        }
    elif s.openai_api_key:
        creds.provider = {"OPENAI_API_KEY": s.openai_api_key}
    return creds


def from_user_secret(s: Settings, secret: dict[str, Any] | None) -> Settings:
    """The settings with the credentials of dify_credentials_secret (read as the API returned it),
    as if they were given in variables: decide() then applies the same guards. The Secret itself is
    never written; its values are copied into dify-credentials, which the pods read, so a change in
    it takes effect at the next run (and only through those guards)."""
    name = s.get("credentials_secret") or ""
    if not name:
        return s
    where = f"dify_credentials_secret {name}"
    if name in (names.CREDENTIALS, names.PROVIDER_KEYS):
        raise InputError(f"Nothing was changed. {where} is a Secret this collection writes: name your own.")
    if secret is None:
        raise InputError(
            f"Nothing was changed. {where}: no such Secret in namespace {s.namespace}. It is read, never written: "
            "create it first (or have your secrets operator sync it)."
        )
    data = {k: v for k, v in (decode(secret) or {}).items() if v}
    mapping: dict[str, str] = dict(s.get("credentials_secret_keys") or {})
    unknown = sorted(set(mapping) - set(USER_SECRET_KEYS))
    if unknown:
        raise InputError(
            f"Nothing was changed. dify_credentials_secret_keys: {', '.join(unknown)} are not credentials it can "
            f"take; these are: {', '.join(USER_SECRET_KEYS)}."
        )
    if mapping:
        missing = [f"{ref} (for {key}, dify_credentials_secret_keys)" for key, ref in mapping.items()
                   if ref not in data]  # fmt: skip
    else:
        mapping = {key: key for key in USER_SECRET_KEYS if key in data}
        missing = [] if "SECRET_KEY" in data else ["SECRET_KEY"]
    if missing:
        raise InputError(f"Nothing was changed. {where} has no (or an empty) key {', '.join(missing)}.")
    changes = {}
    for key, ref in mapping.items():
        var = USER_SECRET_KEYS[key]
        given = s.get(var) or ""
        if given and given != data[ref]:
            raise InputError(
                f"Nothing was changed. dify_{var} (given, or carried over from an adopted Dify) and key {ref} of "
                f"{where} differ: keep one of them."
            )
        changes[var] = data[ref]
    return s.with_values(**changes)


def decode(secret: dict[str, Any] | None) -> dict[str, str] | None:
    """The data of a Secret as read from the API (base64), decoded; None when it does not exist."""
    import base64

    if secret is None:
        return None
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
