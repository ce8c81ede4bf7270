"""The model of an installation: one api pod, credentials decided once, the plan of the phases,
and checks that name the variable. No cluster; the whole file runs in well under a second."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from cases import CASES, prepare, reader, releases
from role_settings import params

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names, records
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError, JobFailed
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.job import JobSpec, build_job
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.migration import CONTAINER_NAME, DEFAULT_COMMAND
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import build
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import Settings


def objects(model: dict, phase: str | None = None) -> dict[tuple[str, str], dict]:
    phases = [phase] if phase else list(model["objects"])
    found = {(o["kind"], o["metadata"]["name"]): o for p in phases for o in model["objects"][p]}
    found.update({(o["kind"], o["metadata"]["name"]): o for o in model["secrets"]})
    return found


def pod(model: dict, name: str) -> dict:
    return objects(model)[("Deployment", name)]["spec"]["template"]


SIMULATED_OUTPUT = Path(__file__).resolve().parents[5] / "tests" / "cluster" / "simulated-output"


# --------------------------------------------------------------------------- one api pod


def migration_job(model: dict) -> dict:
    """The Job dify_migrate makes of the model's migration pod (with its own command)."""
    template = copy.deepcopy(model["jobs"]["migration"])
    template["spec"]["containers"][0]["command"] = list(DEFAULT_COMMAND)
    return build_job(JobSpec(namespace="dify", template=template))


@pytest.mark.parametrize("case", ["default", "external", "ha"])
def test_the_migration_job_runs_exactly_the_api_pod(case):
    model = prepare(case)
    job_pod = migration_job(model)["spec"]["template"]["spec"]
    api_pod = copy.deepcopy(pod(model, "dify-api")["spec"])
    # What only a server has: ports, probes, MODE (the Job sets its command), spreading replicas.
    container = api_pod["containers"][0]
    for key in ("ports", "readinessProbe", "livenessProbe", "startupProbe"):
        container.pop(key)
    container["env"] = [e for e in container["env"] if e["name"] != "MODE"]
    api_pod.pop("topologySpreadConstraints")
    # What only the Job has.
    job_container = job_pod["containers"][0]
    assert job_container.pop("command") == DEFAULT_COMMAND
    assert job_container["name"] == "migrate"  # named after what it does
    job_container["name"] = container["name"]
    assert job_pod.pop("restartPolicy") == "Never"
    if case == "external":  # dify_resources.migration is set there
        assert job_container.pop("resources") == {"limits": {"cpu": "2", "memory": "3Gi"},
                                                  "requests": {"cpu": "250m", "memory": "1Gi"}}  # fmt: skip
        container.pop("resources")
    assert job_pod == api_pod


def test_the_job_pods_of_the_api_image_start_from_the_api_pod():
    model = prepare("external")
    api = model["jobs"]["migration"]["spec"]
    for job in ("status_probe", "provider_setup"):
        spec = model["jobs"][job]["spec"]
        for key in ("automountServiceAccountToken", "enableServiceLinks", "securityContext", "imagePullSecrets",
                    "nodeSelector", "tolerations"):  # fmt: skip
            assert spec[key] == api[key], (job, key)
        container, base = spec["containers"][0], api["containers"][0]
        assert container["image"] == base["image"] and container["securityContext"] == base["securityContext"]
        assert container["envFrom"] == base["envFrom"]
    setup = model["jobs"]["provider_setup"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in setup["env"] if "valueFrom" in e}
    assert refs == {"OPENAI_API_KEY": {"name": "dify-provider-keys", "key": "OPENAI_API_KEY"},
                    "DIFY_ADMIN_PASSWORD": {"name": "dify-provider-keys", "key": "ADMIN_PASSWORD"}}  # fmt: skip


def test_job_pods_never_match_the_api_service():
    model = prepare("default")
    service = objects(model)[("Service", "dify-api")]["spec"]["selector"]
    job = migration_job(model)["spec"]["template"]["metadata"]["labels"]
    assert job[names.LABEL_COMPONENT] == names.MIGRATION
    assert not all(job.get(k) == v for k, v in service.items())
    assert job[names.LABEL_PART_OF] == "dify"


def test_each_job_container_is_named_after_what_it_does():
    """`kubectl logs job/...` reads as what the Job does, and the local cluster tells the Jobs'
    simulated output apart by these names (tests/cluster/simulated-output/)."""
    jobs = prepare("external")["jobs"]
    named = {job: pod["spec"]["containers"][0]["name"] for job, pod in jobs.items()}
    assert named == {"migration": "migrate", "status_probe": "status-probe", "backup": "backup", "restore": "restore",
                     "restore_check": "restore-check", "rotation": "rotate-password",
                     "provider_setup": "provider-setup"}  # fmt: skip
    assert CONTAINER_NAME == "migrate"  # dify_migrate's own pod, without a template
    simulated = {f.stem for f in SIMULATED_OUTPUT.glob("*.log")}
    assert set(named.values()) <= simulated


# --------------------------------------------------------------------------- credentials


def test_generated_credentials_are_64_hex_like_openssl_and_stored_ones_are_kept():
    first = prepare("default")
    secret = objects(first)[("Secret", "dify-credentials")]["data"]
    upgrade = prepare("upgrade")
    stored = objects(upgrade)[("Secret", "dify-credentials")]["data"]
    import base64

    decoded = {k: base64.b64decode(v).decode() for k, v in stored.items()}
    assert decoded["SECRET_KEY"] == "stored-secret-key" and decoded["DB_PASSWORD"] == "stored-db-password"
    assert decoded["PLUGIN_DIFY_INNER_API_KEY"] == decoded["INNER_API_KEY_FOR_PLUGIN"] == "stored-inner-key"
    assert decoded["CELERY_BROKER_URL"] == "redis://:stored-redis-password@dify-redis:6379/1"
    assert len({base64.b64decode(secret[k]) for k in ("SECRET_KEY", "DB_PASSWORD", "REDIS_PASSWORD")}) == 3


def test_a_different_database_password_for_existing_data_is_refused_naming_the_variable():
    with pytest.raises(InputError, match=r"dify_db_password differs .* dify_rotate_db_password"):
        prepare("upgrade", dify_db_password="another-one")
    model = prepare("upgrade", dify_db_password="another-one", dify_rotate_db_password=True)
    assert model["plan"]["rotate_db_password"] is True
    assert model["rotation_secret"]["metadata"]["name"] == names.ROTATION_SECRET


def test_manifests_never_plan_a_rotation_and_keep_the_password_the_database_has():
    model = prepare("upgrade", entry_point="manifests", dify_db_password="another-one", dify_rotate_db_password=True)
    assert model["plan"]["rotate_db_password"] is False and "rotation_secret" not in model
    import base64

    data = objects(model)[("Secret", "dify-credentials")]["data"]
    assert base64.b64decode(data["DB_PASSWORD"]).decode() == "stored-db-password"
    assert any("only site.yml" in n for n in model["plan"]["notices"])


@pytest.mark.parametrize(
    ("existing", "inventory", "missing"),
    [
        ({"db_volume": True}, {}, "dify_secret_key, dify_db_password, dify_redis_password"),
        ({"migration_record": {"image": "langgenius/dify-api:1.17.1"}}, {},
         "dify_secret_key, dify_db_password, dify_redis_password"),
        ({"backup_record": {}},
         {"dify_postgres_enabled": False, "dify_db_host": "db.example.com", "dify_db_password": "given"},
         "dify_secret_key, dify_redis_password"),
        ({"adoption_record": {"source": "dify"}}, {"dify_secret_key": "k" * 64},
         "dify_db_password, dify_redis_password"),
    ],
)  # fmt: skip
def test_credentials_are_never_made_anew_while_an_installation_exists(existing, inventory, missing):
    spec = params(**{"dify_storage_class": "kwok-volume", "dify_files_storage_class": "kwok-files", **inventory})
    with pytest.raises(InputError, match="Secret dify-credentials is missing") as refused:
        build.prepare(spec, "main", reader(existing), releases=releases())
    assert f"Give back the values it ran with: {missing} (" in str(refused.value)


def test_credentials_given_back_are_taken_and_nothing_else_is_refused():
    given = {"dify_secret_key": "k" * 64, "dify_db_password": "db-pass", "dify_redis_password": "redis-pass"}
    spec = params(**{"dify_storage_class": "kwok-volume", "dify_files_storage_class": "kwok-files", **given})
    model = build.prepare(spec, "main", reader({"db_volume": True, "migration_record": {"image": "x:1.17.1"}}),
                          releases=releases(), new_secret=lambda: "n" * 64)  # fmt: skip
    import base64

    stored = {
        k: base64.b64decode(v).decode() for k, v in objects(model)[("Secret", "dify-credentials")]["data"].items()
    }
    assert (stored["SECRET_KEY"], stored["DB_PASSWORD"], stored["REDIS_PASSWORD"]) == (
        "k" * 64,
        "db-pass",
        "redis-pass",
    )
    assert any("Secret dify-credentials was missing" in n for n in model["plan"]["notices"])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"dify_redis_password": "x"}, "dify_rotate_redis_password"),
        ({"dify_secret_key": "f" * 64}, "dify_rotate_secret_key"),
    ],
)
def test_redis_password_and_secret_key_changes_need_their_flag(change, words):
    with pytest.raises(InputError, match=words):
        prepare("upgrade", **change)
    flag = "dify_rotate_redis_password" if "dify_redis_password" in change else "dify_rotate_secret_key"
    prepare("upgrade", **change, **{flag: True})


def stored_credentials(model: dict) -> dict[str, str]:
    import base64

    return {k: base64.b64decode(v).decode() for k, v in objects(model)[("Secret", "dify-credentials")]["data"].items()}


def test_credentials_come_from_a_secret_the_user_manages_which_is_only_read():
    from cases import secret

    mine = {"user_credentials": secret("vault-dify", {"SECRET_KEY": "k" * 64, "DB_PASSWORD": "from-vault"})}
    model = prepare("default", existing=mine, dify_credentials_secret="vault-dify")
    values = stored_credentials(model)
    assert values["SECRET_KEY"] == "k" * 64 and values["DB_PASSWORD"] == "from-vault"
    assert values["REDIS_PASSWORD"].startswith("generated-"), "what it does not hold is generated as usual"
    written = [o["metadata"]["name"] for phase in model["objects"].values() for o in phase] + [
        o["metadata"]["name"] for o in model["secrets"]
    ]
    assert "vault-dify" not in written, "the user's Secret is never written"
    # Keys named per credential; each named one is required.
    renamed = {"user_credentials": secret("vault-dify", {"secret-key": "k" * 64})}
    model = prepare("default", existing=renamed, dify_credentials_secret="vault-dify",
                    dify_credentials_secret_keys={"SECRET_KEY": "secret-key"})  # fmt: skip
    assert stored_credentials(model)["SECRET_KEY"] == "k" * 64
    with pytest.raises(InputError, match=r"vault-dify has no \(or an empty\) key db-password \(for DB_PASSWORD"):
        prepare("default", existing=renamed, dify_credentials_secret="vault-dify",
                dify_credentials_secret_keys={"SECRET_KEY": "secret-key", "DB_PASSWORD": "db-password"})  # fmt: skip


@pytest.mark.parametrize(
    ("existing", "more", "words"),
    [
        ({}, {}, r"dify_credentials_secret vault-dify: no such Secret in namespace dify"),
        ({"DB_PASSWORD": "x"}, {}, r"vault-dify has no \(or an empty\) key SECRET_KEY"),
        ({"SECRET_KEY": "k"}, {"dify_credentials_secret_keys": {"SECRET": "k"}}, r"SECRET are not credentials"),
        ({"SECRET_KEY": "k"}, {"dify_secret_key": "other"}, r"dify_secret_key .* and key SECRET_KEY of .* differ"),
        ({"SECRET_KEY": "k"}, {"dify_credentials_secret": "dify-credentials"}, r"a Secret this collection writes"),
    ],
)
def test_a_user_managed_secret_that_cannot_be_used_is_refused_naming_it(existing, more, words):
    from cases import secret

    found = {"user_credentials": secret("vault-dify", existing)} if existing else {}
    with pytest.raises(InputError, match=words):
        prepare("default", existing=found, **{"dify_credentials_secret": "vault-dify", **more})


def test_a_user_managed_secret_passes_the_guards_of_existing_data():
    from cases import secret

    changed = {"user_credentials": secret("vault-dify", {"SECRET_KEY": "stored-secret-key", "DB_PASSWORD": "new"})}
    with pytest.raises(InputError, match="dify_db_password differs"):
        prepare("upgrade", existing=changed, dify_credentials_secret="vault-dify")
    same = {"user_credentials": secret("vault-dify", {"SECRET_KEY": "stored-secret-key"})}
    assert (
        stored_credentials(prepare("upgrade", existing=same, dify_credentials_secret="vault-dify"))["DB_PASSWORD"]
        == "stored-db-password"
    )


def test_read_only_entry_points_generate_nothing():
    model = prepare("default", entry_point="status")
    import base64

    data = objects(model)[("Secret", "dify-credentials")]["data"]
    assert base64.b64decode(data["SECRET_KEY"]).decode() == ""


# --------------------------------------------------------------------------- the plan


def test_a_first_install_starts_what_does_not_use_the_schema_during_the_migration():
    early = {(o["kind"], o["metadata"]["labels"]["app.kubernetes.io/component"]) for o in prepare("default")["early"]}
    deployments = {component for kind, component in early if kind == "Deployment"}
    assert deployments == {"web", "sandbox", "ssrf-proxy", "nginx", "plugin-daemon", "agent-local-sandbox",
                           "agent-ssrf-proxy"}  # fmt: skip
    assert not deployments & {"api", "worker", "beat", "agent-backend"}, "these wait for the migration"
    assert ("Service", "api") in early, "nginx resolves every upstream when it starts"
    # Anything running or ever migrated here: everything waits for the migration, as on every upgrade.
    assert prepare("upgrade")["early"] == []


def test_an_image_that_already_migrated_plans_no_migration_unless_forced():
    model = prepare("upgrade", dify_image_tag="1.11.4")
    assert model["plan"]["migration"] == "skip" and model["plan"]["backup"] is False
    forced = prepare("upgrade", dify_image_tag="1.11.4", dify_migration_force=True)
    assert forced["plan"]["migration"] == "run" and forced["plan"]["backup"] is True


def test_an_upgrade_backs_up_first_and_a_first_install_does_not():
    assert prepare("upgrade")["plan"]["backup"] is True
    assert prepare("default")["plan"]["backup"] is False
    backup = prepare("upgrade")["jobs"]["backup"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in backup["env"]}
    assert env["BACKUP_NAME"] == "dify_1.11.4_to_1.11.5_20261201T080000Z" and env["PGPASSWORD"] is None
    assert prepare("upgrade")["plan"]["backup_name"] == env["BACKUP_NAME"]  # what the role records


def test_a_tag_with_an_underscore_still_gives_a_backup_name_restore_accepts():
    model = prepare("upgrade", dify_image_tag="1.11.5_hotfix", dify_allow_unknown_release=True)
    name = model["plan"]["backup_name"]
    assert name == "dify_1.11.4_to_1.11.5-hotfix_20261201T080000Z"
    assert build.BACKUP_NAME.match(name)


def migration_job_of(image: str, pod_phase: str | None = None) -> tuple[dict, list[dict]]:
    """A migration Job for image as the cluster shows it, and its pod (in that phase)."""
    meta = {"name": "dify-db-migration", "uid": "u-2", "annotations": {names.JOB_IMAGE: image}}
    found = {"kind": "Job", "metadata": meta, "spec": {"backoffLimit": 0}, "status": {}}
    pods = []
    if pod_phase:
        status = {"phase": pod_phase}
        if pod_phase == "Succeeded":
            status["containerStatuses"] = [{"name": "migrate", "state": {"terminated": {"exitCode": 0}}}]
        pods.append({"metadata": {"name": "dify-db-migration-abcde", "labels": {
            "batch.kubernetes.io/controller-uid": "u-2"}}, "status": status})  # fmt: skip
    return found, pods


def test_the_plan_takes_the_modules_decision_on_the_job_and_its_pods():
    image = "langgenius/dify-api:1.11.5"
    record = dict(CASES["upgrade"]["existing"]["migration_record"])
    job, pods = migration_job_of(image, "Running")
    running = prepare("upgrade", existing={"migration_job": job, "migration_pods": pods})["plan"]
    assert running["migration"] == "attach" and running["backup"] is False  # it may have changed the data
    job, pods = migration_job_of(image, "Succeeded")
    # The pod succeeded and the record was written: finished, though the Job controller has not said so yet.
    done = dict(record, image=image, job_uid="u-2")
    plan = prepare("upgrade", existing={"migration_job": job, "migration_pods": pods, "migration_record": done})["plan"]
    assert plan["migration"] == "skip"
    assert prepare("upgrade", existing={"migration_job": job, "migration_pods": pods, "migration_record": done},
                   dify_migration_force=True)["plan"]["migration"] == "run"  # fmt: skip


def test_a_migration_running_for_another_image_is_refused_before_anything_changes():
    job, pods = migration_job_of("langgenius/dify-api:1.11.4", "Running")
    with pytest.raises(JobFailed, match=r"Nothing was changed: migration Job .* still running for image"):
        prepare("upgrade", existing={"migration_job": job, "migration_pods": pods})


def test_the_provider_setup_runs_when_what_it_stores_changed():
    model = prepare("external")
    assert model["plan"]["provider_setup"] is True
    fingerprint = model["plan"]["provider_fingerprint"]
    again = prepare("external", existing={"provider_record": {"fingerprint": fingerprint}})
    assert again["plan"]["provider_setup"] is False
    other_key = prepare("external", existing={"provider_record": {"fingerprint": fingerprint}},
                        dify_openai_api_key="sk-openai-new")  # fmt: skip
    assert other_key["plan"]["provider_setup"] is True


def test_the_prepare_step_reads_the_cluster_once():
    spec = params(dify_storage_class="kwok-volume", dify_files_storage_class="kwok-files")
    calls = []

    def read(reads):
        calls.append(reads)
        return reader({})(reads)

    build.prepare(spec, "main", read, releases=releases())
    assert len(calls) == 1
    wanted = {"credentials", "migration_record", "migration_job", "migration_pods", "db_volume", "weaviate_volume",
              "storage_classes", "deployments", "statefulsets", "backup_record", "adoption_record",
              "rotation_pending", "adopt_source_secret", "operation", "api_versions", "upgrade_steps"}  # fmt: skip
    assert {r["id"] for r in calls[0]} == wanted


def test_uninstall_reads_nothing_and_keeps_data_unless_purged():
    spec = params("uninstall", dify_namespace="dify")
    model = build.prepare(spec, "uninstall", lambda reads: pytest.fail("uninstall must not read"))
    kinds = [k["kind"] for k in model["uninstall"]["prune_kinds"]]
    assert "PersistentVolumeClaim" not in kinds and "Secret" not in kinds and kinds[-1] == "NetworkPolicy"
    configmaps = next(k for k in model["uninstall"]["prune_kinds"] if k["kind"] == "ConfigMap")
    assert "db-migration" in configmaps["label_selector"] and "notin" in configmaps["label_selector"]
    assert configmaps["label_selector"] == records.NOT_A_RECORD  # every record stays, the adoption's too
    with pytest.raises(InputError, match="Set dify_purge_confirm to the namespace"):
        build.prepare(params("uninstall", dify_purge_data=True), "uninstall", lambda reads: {})
    purged = build.prepare(params("uninstall", dify_purge_data=True, dify_purge_confirm="dify"), "uninstall",
                           lambda reads: {})  # fmt: skip
    assert {"PersistentVolumeClaim", "Secret", "Lease"} <= {k["kind"] for k in purged["uninstall"]["prune_kinds"]}


def test_restore_needs_a_recorded_backup_and_the_namespace_to_confirm():
    name = "dify_1.11.4_to_1.11.5_20261125T101500Z"
    with pytest.raises(InputError, match="dify_restore_confirm"):
        prepare("default", entry_point="restore", dify_restore_backup=name)
    with pytest.raises(InputError, match=r"not in the backup record .* dify_restore_image_tag"):
        prepare("default", entry_point="restore", dify_restore_backup=name, dify_restore_confirm="dify")
    override = prepare("default", entry_point="restore", dify_restore_backup=name, dify_restore_confirm="dify",
                       dify_restore_image_tag="1.11.4")  # fmt: skip
    assert override["restore"]["version"] == "1.11.4"


# --------------------------------------------------------------------------- what reaches the objects


def test_removing_a_setting_removes_it_from_the_rendered_objects():
    """The rendering has no trace of a setting once it is gone (the applier's hash then differs)."""
    with_settings = prepare(
        "default", dify_extra_env={"FOO": "1"}, dify_service_annotations={"a.example/b": "c"},
        dify_node_selector={"pool": "ai"}, dify_tolerations=[{"key": "ai", "operator": "Exists"}],
        dify_resources={"api": {"limits": {"memory": "3Gi"}}},
    )  # fmt: skip
    without = prepare("default")
    assert "FOO" in objects(with_settings)[("ConfigMap", "dify-shared-env")]["data"]
    assert "FOO" not in objects(without)[("ConfigMap", "dify-shared-env")]["data"]
    assert "annotations" not in objects(without)[("Service", "dify-nginx")]["metadata"]
    assert (
        "nodeSelector" not in pod(without, "dify-api")["spec"] and "tolerations" not in pod(without, "dify-api")["spec"]
    )
    assert pod(without, "dify-api")["spec"]["containers"][0]["resources"]["limits"]["memory"] == "2Gi"


def test_a_pod_restarts_exactly_when_the_configuration_it_reads_changes():
    base, debug = prepare("default"), prepare("default", dify_extra_env={"LOG_LEVEL": "DEBUG"})

    def hash_of(model, name):
        return pod(model, name)["metadata"]["annotations"][names.CONFIG_HASH]

    assert hash_of(base, "dify-api") != hash_of(debug, "dify-api")  # reads dify-shared-env
    assert hash_of(base, "dify-nginx") == hash_of(debug, "dify-nginx")  # does not
    assert hash_of(base, "dify-sandbox") == hash_of(debug, "dify-sandbox")
    nginx = prepare("default", dify_ssrf_proxy_denied_cidrs=["169.254.0.0/16", "100.100.100.200/32"])
    assert hash_of(base, "dify-ssrf-proxy") != hash_of(nginx, "dify-ssrf-proxy")


def test_every_object_of_a_phase_has_our_labels():
    for obj in objects(prepare("ha")).values():
        labels = obj["metadata"].get("labels") or {}
        assert labels.get(names.LABEL_MANAGED_BY) == names.MANAGED_BY, obj["metadata"]["name"]


# --------------------------------------------------------------------------- inputs


BAD = [
    ({"dify_image_tag": "latest"}, "dify_image_tag"),
    ({"dify_api_replicas": -1}, "dify_api_replicas=-1"),
    ({"dify_files_access_mode": "ReadWriteOnce", "dify_api_replicas": 2}, "dify_files_access_mode"),
    ({"dify_files_storage": "s3"}, "dify_s3_bucket"),
    ({"dify_postgres_enabled": False}, "dify_db_host"),
    ({"dify_expose": "ingress"}, "dify_ingress_host"),
    ({"dify_loadbalancer_ip": "300.1.1.1"}, "dify_loadbalancer_ip"),
    ({"dify_public_url": "ftp://x"}, "dify_public_url"),
    ({"dify_ssrf_proxy_denied_cidrs": ["x"]}, "dify_ssrf_proxy_denied_cidrs"),
    ({"dify_ssrf_proxy_denied_cidrs": ["::ffff:0:0/96"]}, "dify_ssrf_proxy_denied_cidrs must not list IPv4-mapped"),
    ({"dify_ssrf_proxy_allowed_ports": ["80", "http"]}, "dify_ssrf_proxy_allowed_ports must list ports"),
    ({"dify_ssrf_proxy_allowed_ports": ["65535-1025"]}, "dify_ssrf_proxy_allowed_ports must list ports"),
    ({"dify_ssrf_proxy_allowed_ports": []}, "dify_ssrf_proxy_allowed_ports must list ports"),
    ({"dify_resources": {"apii": {}}}, "dify_resources has unknown components"),
    ({"dify_postgres_storage_size": "twenty gigs"}, "dify_postgres_storage_size=twenty gigs"),
    ({"dify_network_policy_internet_egress": ["sandbox"]}, "dify_network_policy_internet_egress"),
    ({"dify_admin_password": "password"}, "dify_admin_password is too weak"),
    ({"dify_extra_env": {"SECRET_KEY": "x"}}, "dify_extra_env must not set ['SECRET_KEY']"),
    ({"dify_node_selector": {"zone": 1}}, "dify_node_selector"),
    ({"dify_storage_class": "no-such"}, "dify_storage_class 'no-such' is not a StorageClass"),
]


@pytest.mark.parametrize(("change", "words"), BAD, ids=[w.split()[0] for _c, w in BAD])
def test_bad_input_is_refused_before_the_cluster_is_read_naming_the_variable(change, words):
    asked = []

    def read(reads):
        asked.append(reads)
        return reader({})(reads)

    with pytest.raises(InputError) as failure:
        build.prepare(params(**{"dify_files_storage_class": "kwok-files", **change}), "main", read, releases=releases())
    assert words in str(failure.value) and "Nothing was changed" in str(failure.value)
    if "StorageClass" not in words:
        assert asked == [], "inputs are checked before the first read"


def test_settings_read_the_variables_without_their_prefix():
    s = Settings({"dify_namespace": "x"})
    assert s.namespace == "x" and s.get("missing", 1) == 1
    with pytest.raises(AttributeError, match="dify_missing"):
        s.missing  # noqa: B018


# --------------------------------------------------------------------------- what each release renders


def env_of(model: dict, name: str) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in pod(model, name)["spec"]["containers"][0].get("env", [])}


def config(model: dict, name: str, key: str) -> str:
    return objects(model)[("ConfigMap", name)]["data"][key]


def egress_to(model: dict, component: str) -> dict[str, list[int]]:
    spec = objects(model)[("NetworkPolicy", names.workload(component))]["spec"]
    out: dict[str, list[int]] = {}
    for rule in spec["egress"]:
        for peer in rule.get("to", []):
            if "podSelector" in peer:
                out[peer["podSelector"]["matchLabels"][names.LABEL_COMPONENT]] = [p["port"] for p in rule["ports"]]
            elif peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0":
                out["internet"] = []
    return out


@pytest.mark.parametrize(
    ("version", "has"),
    # (1.14.0 had no websocket process and collaboration off by default.)
    [("1.13.0", {"pm2"}), ("1.13.3", set()), ("1.14.0", set()), ("1.14.2", {"socket"}),
     ("1.15.0", {"socket", "openapi", "server-console"}),
     ("1.16.1", {"socket", "openapi", "server-console", "agent-v2"})],
)  # fmt: skip
def test_web_and_nginx_get_what_difys_compose_gives_that_release(version, has):
    model = prepare("default", dify_image_tag=version, dify_public_url="https://dify.example.com/")
    web = env_of(model, "dify-web")
    nginx = config(model, names.NGINX_CONFIG, "nginx.conf")
    shared = objects(model)[("ConfigMap", names.SHARED_ENV)]
    assert ("PM2_INSTANCES" in web) == ("pm2" in has)
    assert (web.get("NEXT_PUBLIC_SOCKET_URL") == "wss://dify.example.com") == ("socket" in has)
    assert ("location /socket.io/" in nginx) == ("socket" in has)
    assert (("Deployment", "dify-api-websocket") in objects(model)) == ("socket" in has)
    assert shared["data"].get("ENABLE_COLLABORATION_MODE") == ("true" if "socket" in has else None)
    assert ("location /openapi" in nginx) == ("openapi" in has)
    assert (web.get("SERVER_CONSOLE_API_URL") == "http://dify-api:5001") == ("server-console" in has)
    assert (web.get("NEXT_PUBLIC_ENABLE_AGENT_V2") == "true") == ("agent-v2" in has)


def test_collaboration_switched_off_is_said_to_the_api_and_runs_no_websocket():
    model = prepare("default", dify_collaboration=False)
    found = objects(model)
    assert found[("ConfigMap", names.SHARED_ENV)]["data"]["ENABLE_COLLABORATION_MODE"] == "false"
    assert ("Deployment", "dify-api-websocket") not in found and ("Service", "dify-api-websocket") not in found
    assert ("NetworkPolicy", "dify-api-websocket") not in found
    assert "socket.io" not in config(model, names.NGINX_CONFIG, "nginx.conf")
    assert "NEXT_PUBLIC_SOCKET_URL" not in env_of(model, "dify-web")
    # Nothing of it on a release without collaboration.
    old = prepare("default", dify_image_tag="1.13.3", dify_collaboration=False)
    assert "ENABLE_COLLABORATION_MODE" not in objects(old)[("ConfigMap", names.SHARED_ENV)]["data"]


def test_the_socket_url_is_the_origin_users_reach_dify_at():
    web = env_of(prepare("default", dify_public_url="http://dify.example.com:8080/sub/"), "dify-web")
    assert web["NEXT_PUBLIC_SOCKET_URL"] == "ws://dify.example.com:8080"
    ingress = {"dify_expose": "ingress", "dify_ingress_host": "dify.example.com", "dify_ingress_tls_secret": "tls"}
    assert env_of(prepare("default", **ingress), "dify-web")["NEXT_PUBLIC_SOCKET_URL"] == "wss://dify.example.com"
    assert env_of(prepare("default"), "dify-web")["NEXT_PUBLIC_SOCKET_URL"] == "ws://localhost"


def test_the_websocket_process_runs_as_difys_compose_runs_it():
    env = env_of(prepare("default"), "dify-api-websocket")
    assert env["SERVER_WORKER_CONNECTIONS"] == "1000" and env["SERVER_WORKER_AMOUNT"] == "1"
    assert objects(prepare("default", dify_ha=True))[("Deployment", "dify-api-websocket")]["spec"]["replicas"] == 1


@pytest.mark.parametrize(("version", "sandbox_port"), [("1.11.4", True), ("1.14.2", True), ("1.15.0", False),
                                                       ("1.17.1", False)])  # fmt: skip
def test_the_ssrf_proxys_sandbox_port_only_where_dify_has_it(version, sandbox_port):
    model = prepare("default", dify_image_tag=version)
    conf = config(model, names.SSRF_PROXY_CONFIG, "squid.conf")
    assert ("cache_peer dify-sandbox parent 8194" in conf) == sandbox_port
    assert ("http_port 8194" in conf) == sandbox_port
    service = objects(model)[("Service", "dify-ssrf-proxy")]["spec"]["ports"]
    assert (8194 in [p["port"] for p in service]) == sandbox_port
    assert (8194 in egress_to(model, "api").get("ssrf-proxy", [])) == sandbox_port
    assert "dns_defnames on" in conf.splitlines()


def test_squid_gets_difys_ports_unless_told_otherwise():
    conf = config(prepare("default"), names.SSRF_PROXY_CONFIG, "squid.conf")
    assert "acl Safe_ports port 80 21 443 70 210 1025-65535 280 488 591 777" in conf.splitlines()
    strict = prepare("default", dify_ssrf_proxy_allowed_ports=[80, 443])
    for name in (names.SSRF_PROXY_CONFIG, names.AGENT_SSRF_PROXY_CONFIG):
        lines = config(strict, name, "squid.conf").splitlines()
        assert "acl Safe_ports port 80 443" in lines and "dns_defnames on" in lines
        assert not any("::ffff:0:0/96" in line or "255.255.255.255" in line for line in lines)
        # ::/96 holds ::1/128 and ::/128: in one ACL squid would ignore it; it gets its own.
        assert "acl denied_destinations_2 dst ::/96" in lines and "http_access deny denied_destinations_2" in lines
        assert "acl denied_destinations dst ::1/128" in lines and "http_access deny denied_destinations" in lines


def test_the_agents_local_sandbox_reaches_what_difys_compose_lets_it():
    """1.16.0 has no agent SSRF proxy: the local sandbox calls the agent stub, the api and the
    internet itself; from 1.16.1 only through its proxy (NO_PROXY its loopback)."""
    early = prepare("default", dify_image_tag="1.16.0")
    assert egress_to(early, "agent-local-sandbox") == {"agent-backend": [5050], "api": [5001], "internet": []}
    assert "HTTP_PROXY" not in env_of(early, "dify-agent-local-sandbox")
    ingress = objects(early)[("NetworkPolicy", "dify-agent-backend")]["spec"]["ingress"]
    assert any(p["podSelector"]["matchLabels"][names.LABEL_COMPONENT] == "agent-local-sandbox"
               for rule in ingress for p in rule["from"])  # fmt: skip
    later = prepare("default", dify_image_tag="1.16.1")
    assert egress_to(later, "agent-local-sandbox") == {"agent-ssrf-proxy": [3128]}
    env = env_of(later, "dify-agent-local-sandbox")
    assert env["HTTP_PROXY"] == "http://dify-agent-ssrf-proxy:3128" and env["NO_PROXY"] == "localhost,127.0.0.1"
    ingress = objects(later)[("NetworkPolicy", "dify-agent-backend")]["spec"]["ingress"]
    assert not any(p["podSelector"]["matchLabels"][names.LABEL_COMPONENT] == "agent-local-sandbox"
                   for rule in ingress for p in rule["from"])  # fmt: skip


# --------------------------------------------------------------------------- release-specific upgrade steps


def on(version: str, **more):
    record = dict(CASES["upgrade"]["existing"]["migration_record"], image=f"langgenius/dify-api:{version}")
    return {"migration_record": record, **more}


def test_an_upgrade_crossing_1_15_plans_the_legacy_model_types_step_after_the_migration():
    model = prepare("upgrade", dify_image_tag="1.17.1", existing=on("1.14.2"))
    assert model["plan"]["upgrade_steps"] == ["legacy-model-types"]
    pending = {"state": "pending", "from": "1.14.2", "to": "1.17.1"}
    assert model["plan"]["upgrade_steps_pending"] == {"legacy-model-types": pending}
    (step,) = model["upgrade_steps"]
    container = step["pod"]["spec"]["containers"][0]
    assert container["name"] == "upgrade-step" and container["image"] == "langgenius/dify-api:1.17.1"
    assert container["command"][-4:] == ["flask", "data-migrate", "legacy-model-types", "--apply"]
    assert step["job_name"] == "dify-upgrade-legacy-model-types"
    # The migration's pod otherwise: same environment, volumes and security.
    migration = model["jobs"]["migration"]["spec"]["containers"][0]
    assert container["envFrom"] == migration["envFrom"] and container["securityContext"] == migration["securityContext"]


def test_a_step_done_is_not_run_again_and_one_left_pending_is():
    done = {"upgrade_steps": {"legacy-model-types": '{"state": "done"}'}}
    assert prepare("upgrade", dify_image_tag="1.17.1", existing=on("1.14.2", **done))["plan"]["upgrade_steps"] == []
    # Migrated to 1.17.1 already (the record says so), but the step never finished: it runs.
    pending = {"upgrade_steps": {"legacy-model-types": '{"state": "pending", "from": "1.14.2"}'}}
    plan = prepare("upgrade", dify_image_tag="1.17.1", existing=on("1.17.1", **pending))["plan"]
    assert plan["migration"] == "skip" and plan["upgrade_steps"] == ["legacy-model-types"]
    assert prepare("upgrade", dify_image_tag="1.17.1", existing=on("1.15.0"))["plan"]["upgrade_steps"] == []
    assert prepare("default")["plan"]["upgrade_steps"] == [], "a first install converts nothing"
