"""The release catalog and the upgrade rules: every line complete, the companions of each release,
refusals where Dify cannot go (downgrades, unknown lines), Weaviate one minor at a time."""

from __future__ import annotations

import base64
import json

import pytest
from cases import prepare, releases
from role_settings import params

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model import catalog
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import Settings

SUPPORTED = ["1.11.4", "1.12.1", "1.13.3", "1.14.2", "1.15.0", "1.16.1", "1.17.1"]


def settings(**inventory) -> Settings:
    return Settings(params(**inventory))


def record(version: str) -> dict:
    return {"image": f"langgenius/dify-api:{version}", "job": "dify-db-migration", "completed_at": "t"}


def test_every_line_has_every_field_and_a_source_for_each_image():
    data = releases()
    assert sorted(data["lines"], key=catalog.version_tuple) == ["1.11", "1.12", "1.13", "1.14", "1.15", "1.16", "1.17"]
    for line, entry in data["lines"].items():
        missing = [f for f in catalog.LINE_FIELDS if f not in entry]
        assert not missing, f"{line} lacks {missing}"
        for image in catalog.LINE_IMAGES:
            assert entry["images"].get(image), f"{line} has no {image} image"
            assert entry["sources"].get(image), f"{line}: {image} cites no source"
        assert all(catalog.line_of(p) == line for p in entry["patches"]), line
        assert line in entry["upgrade_from"], f"{line} must allow its own patches"
        assert set(entry["components"]) <= {"api-websocket", *catalog.AGENT_COMPONENTS}, line
    for image in data["common"]["images"]:
        assert data["common"]["sources"].get(image), image


@pytest.mark.parametrize("version", SUPPORTED)
def test_every_supported_release_resolves_to_catalogued_images(version):
    release = catalog.resolve(settings(dify_image_tag=version), releases())
    assert release.known and release.notices == []
    assert release.images["api"] == f"langgenius/dify-api:{version}"
    assert release.images["web"] == f"langgenius/dify-web:{version}"
    assert all(":" in image for image in release.images.values())


def test_the_original_release_keeps_its_companions():
    release = catalog.resolve(settings(dify_image_tag="1.11.4"), releases())
    assert release.images["sandbox"] == "langgenius/dify-sandbox:0.2.12"
    assert release.images["plugin_daemon"] == "langgenius/dify-plugin-daemon:0.5.2-local"
    assert release.images["weaviate"] == "semitechnologies/weaviate:1.27.0"
    assert release.components == []


def test_the_agent_arrives_with_1_16_and_its_proxy_and_token_with_1_16_1():
    early = catalog.resolve(settings(dify_image_tag="1.16.0"), releases())
    assert early.components == ["api-websocket", "agent-backend", "agent-local-sandbox"]
    assert not early.agent_api_token
    later = catalog.resolve(settings(dify_image_tag="1.16.1"), releases())
    assert later.components == ["api-websocket", "agent-backend", "agent-local-sandbox", "agent-ssrf-proxy"]
    assert later.agent_api_token and later.images["agent_backend"] == "langgenius/dify-agent-backend:1.16.1"
    off = catalog.resolve(settings(dify_image_tag="1.16.1", dify_agent=False), releases())
    assert off.components == ["api-websocket"] and "agent_backend" not in off.images
    assert off.switched_off == ["agent-backend", "agent-local-sandbox", "agent-ssrf-proxy"]


def test_collaboration_runs_where_the_release_has_the_websocket_process_unless_switched_off():
    """As in Dify's compose: from 1.14.1 (1.14.0 served no websocket process, collaboration off)."""
    for version, has in (("1.13.3", False), ("1.14.0", False), ("1.14.1", True), ("1.17.1", True)):
        release = catalog.resolve(settings(dify_image_tag=version), releases())
        assert release.has("api-websocket") == has, version
        assert release.switched_off == [], version
    off = catalog.resolve(settings(dify_image_tag="1.14.2", dify_collaboration=False), releases())
    assert not off.has("api-websocket") and off.offers("api-websocket") and off.switched_off == ["api-websocket"]
    # Where the release has none, switching it off changes nothing (and it is no error to ask for it).
    old = catalog.resolve(settings(dify_image_tag="1.13.3", dify_collaboration=False), releases())
    assert not old.offers("api-websocket")


def test_images_that_changed_with_a_patch_apply_from_that_patch_on():
    """1.13.3 ships sandbox 0.2.14 and plugin daemon 0.5.3-local (its bump commit); 1.17.0 still
    Weaviate 1.27.0, 1.17.1 1.39.2 (Dify's docs)."""
    images = {v: catalog.resolve(settings(dify_image_tag=v), releases()).images
              for v in ("1.13.2", "1.13.3", "1.17.0", "1.17.1", "1.17.2")}  # fmt: skip
    assert images["1.13.2"]["sandbox"] == "langgenius/dify-sandbox:0.2.12"
    assert images["1.13.3"]["sandbox"] == "langgenius/dify-sandbox:0.2.14"
    assert images["1.13.3"]["plugin_daemon"] == "langgenius/dify-plugin-daemon:0.5.3-local"
    assert images["1.17.0"]["weaviate"] == "semitechnologies/weaviate:1.27.0"
    assert images["1.17.1"]["weaviate"] == images["1.17.2"]["weaviate"] == "semitechnologies/weaviate:1.39.2"
    assert catalog.weaviate_of(releases(), "1.17.0") == "semitechnologies/weaviate:1.27.0"
    assert catalog.weaviate_of(releases(), "1.17.1") == "semitechnologies/weaviate:1.39.2"


def test_a_1_17_0_install_keeps_its_weaviate_and_1_17_1_steps_it():
    """Upgrading to 1.17.0 moves no Weaviate (1.27 as Dify ships it); 1.17.0 to 1.17.1 steps it to
    1.39.2; a 1.17.0 whose Weaviate already went to 1.39 (the catalog before per-patch pins) is not
    taken back, with a way out named."""
    on_1_27 = {"statefulsets": [running_weaviate()]}
    to_0 = prepare("upgrade", dify_image_tag="1.17.0", existing=on_1_27)
    assert to_0["plan"]["weaviate_steps"] == [] and to_0["plan"]["weaviate_backup"] is False
    to_1 = prepare("upgrade", dify_image_tag="1.17.1", existing=on_1_27)
    assert to_1["plan"]["weaviate_steps"][-1] == "1.38.9" and len(to_1["plan"]["weaviate_steps"]) == 11
    with pytest.raises(InputError) as refused:
        prepare("upgrade", dify_image_tag="1.17.0",
                existing={"statefulsets": [running_weaviate("semitechnologies/weaviate:1.39.0")]})  # fmt: skip
    assert "would be a downgrade" in str(refused.value)
    assert "dify_weaviate_image: semitechnologies/weaviate:1.39.0" in str(refused.value)
    kept = prepare("upgrade", dify_image_tag="1.17.0", dify_weaviate_image="semitechnologies/weaviate:1.39.0",
                   existing={"statefulsets": [running_weaviate("semitechnologies/weaviate:1.39.0")]})  # fmt: skip
    assert kept["plan"]["weaviate_steps"] == []


def test_an_unknown_patch_of_a_known_line_runs_with_the_lines_companions_and_says_so():
    release = catalog.resolve(settings(dify_image_tag="1.17.2"), releases())
    assert release.images["plugin_daemon"] == "langgenius/dify-plugin-daemon:0.6.10-local"
    assert "1.17.2 is not a catalogued patch of 1.17" in release.notices[0]


@pytest.mark.parametrize("version", ["1.18.0", "1.99.0"])
def test_an_unknown_line_is_refused_naming_dify_image_tag(version):
    with pytest.raises(InputError, match=f"dify_image_tag {version} is of release line"):
        catalog.resolve(settings(dify_image_tag=version), releases())


def test_an_unknown_line_runs_when_allowed_and_every_companion_is_set():
    with pytest.raises(InputError, match="dify_sandbox_image, dify_plugin_daemon_image, dify_weaviate_image"):
        catalog.resolve(settings(dify_image_tag="1.18.0", dify_allow_unlisted_release=True), releases())
    given = {
        "dify_sandbox_image": "langgenius/dify-sandbox:0.3.0",
        "dify_plugin_daemon_image": "langgenius/dify-plugin-daemon:0.7.0-local",
        "dify_weaviate_image": "semitechnologies/weaviate:1.39.0",
        "dify_agent_backend_image": "langgenius/dify-agent-backend:1.18.0",
        "dify_agent_local_sandbox_image": "langgenius/dify-agent-local-sandbox:1.18.0",
    }
    release = catalog.resolve(settings(dify_image_tag="1.18.0", dify_allow_unlisted_release=True, **given), releases())
    assert release.images["sandbox"] == "langgenius/dify-sandbox:0.3.0" and not release.known
    assert "not in the catalog" in release.notices[0]


def test_a_companion_image_you_set_wins_and_the_run_says_where_it_differs():
    release = catalog.resolve(settings(dify_image_tag="1.13.3", dify_sandbox_image="my/sandbox:1"), releases())
    assert release.images["sandbox"] == "my/sandbox:1"
    assert release.notices == ["dify_sandbox_image my/sandbox:1 replaces the catalog's langgenius/dify-sandbox:0.2.14 "
                               "for 1.13.3."]  # fmt: skip


def test_a_downgrade_below_the_migrated_release_is_refused_pointing_at_restore():
    backups = {"dify_1.13.3_to_1.17.1_20261201T100000Z": {"from": "1.13.3", "to": "1.17.1"}}
    with pytest.raises(InputError) as failure:
        catalog.resolve(settings(dify_image_tag="1.13.3"), releases(), record("1.17.1"), backups=backups)
    message = str(failure.value)
    assert "dify_image_tag 1.13.3 is older than 1.17.1" in message
    assert "playbooks/restore.yml" in message and "dify_1.13.3_to_1.17.1_20261201T100000Z" in message
    # A newer patch, the same version, an upgrade: fine.
    for version in ("1.17.1", "1.17.2"):
        catalog.resolve(settings(dify_image_tag=version), releases(), record("1.17.1"))


def test_weaviate_goes_one_minor_version_at_a_time():
    steps = catalog.weaviate_steps(settings(), releases(), "semitechnologies/weaviate:1.27.0",
                                   "semitechnologies/weaviate:1.39.2")  # fmt: skip
    assert [catalog.tag_of(i) for i in steps] == ["1.28.16", "1.29.11", "1.30.23", "1.31.22", "1.32.27", "1.33.18",
                                                  "1.34.20", "1.35.23", "1.36.23", "1.37.14", "1.38.9"]  # fmt: skip
    assert catalog.weaviate_steps(settings(), releases(), "x/weaviate:1.38.9", "semitechnologies/weaviate:1.39.2") == []
    assert catalog.weaviate_steps(settings(), releases(), "", "semitechnologies/weaviate:1.39.2") == []
    with pytest.raises(InputError, match="would be a downgrade"):
        catalog.weaviate_steps(settings(), releases(), "semitechnologies/weaviate:1.39.0",
                               "semitechnologies/weaviate:1.27.0")  # fmt: skip


def test_an_upgrade_to_1_17_plans_the_weaviate_steps_and_the_changes():
    weaviate = {
        "kind": "StatefulSet",
        "metadata": {"name": "dify-weaviate", "labels": {"app.kubernetes.io/component": "weaviate"}},
        "spec": {"template": {"spec": {"containers": [{"image": "semitechnologies/weaviate:1.27.0"}]}}},
    }
    model = prepare("upgrade", dify_image_tag="1.17.1", existing={"statefulsets": [weaviate]})
    assert len(model["weaviate_steps"]) == 11 and model["plan"]["weaviate_steps"][0] == "1.28.16"
    assert model["weaviate_steps"][0]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.28.16")
    changes = model["plan"]["changes"]
    assert changes["images"]["weaviate"] == {"from": "semitechnologies/weaviate:1.27.0",
                                             "to": "semitechnologies/weaviate:1.39.2"}  # fmt: skip
    assert "agent_backend" in changes["added"]


def running_weaviate(image: str = "semitechnologies/weaviate:1.27.0") -> dict:
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "dify-weaviate", "labels": {"app.kubernetes.io/component": "weaviate"}},
        "spec": {"template": {"spec": {"containers": [{"image": image}]}}},
    }


def test_weaviates_volume_is_copied_before_its_image_changes_by_weaviates_user_and_offline():
    model = prepare("upgrade", dify_image_tag="1.17.1", existing={"statefulsets": [running_weaviate()]},
                    dify_backup_pod_annotations={"example.com/backup": "yes"})  # fmt: skip
    assert model["plan"]["weaviate_backup"] is True and model["plan"]["weaviate_backup_of"] == "1.27.0"
    copy = model["weaviate_backup"]
    for name, replicas in (("stop", 0), ("resume", 1)):
        sts = copy[name]
        assert sts["metadata"]["name"] == "dify-weaviate" and sts["spec"]["replicas"] == replicas, name
        assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "semitechnologies/weaviate:1.27.0", name
    pod = copy["job"]["spec"]
    # Weaviate's user; the backups volume's group as a supplementary one; no fsGroup, so the
    # kubelet changes the owner of neither volume.
    assert pod["securityContext"]["runAsUser"] == 1000 and pod["securityContext"]["supplementalGroups"] == [70]
    assert "fsGroup" not in pod["securityContext"]
    volumes = {v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"]}
    assert volumes == {"weaviate": {"claimName": "data-dify-weaviate-0", "readOnly": True},
                       "backups": {"claimName": "dify-backups"}}  # fmt: skip
    container = pod["containers"][0]
    assert {m["mountPath"]: m.get("readOnly", False) for m in container["volumeMounts"]} == {
        "/weaviate": True, "/backups": False}  # fmt: skip
    env = {e["name"]: e.get("value") for e in container["env"]}
    # No database password, no shared environment.
    assert env == {"NAME": "weaviate_1.27.0_20261201T080000Z", "KEEP": "5"}
    assert "envFrom" not in container
    assert copy["job"]["metadata"]["labels"]["app.kubernetes.io/component"] == "weaviate-backup"
    assert copy["job"]["metadata"]["annotations"] == {"example.com/backup": "yes"}


@pytest.mark.parametrize(
    ("existing", "inventory"),
    [
        ({}, {}),  # a first install: nothing to copy
        ({"statefulsets": [running_weaviate("semitechnologies/weaviate:1.39.2")]}, {}),  # same image
        ({"statefulsets": [running_weaviate()]}, {"dify_backup_weaviate": False}),
        ({"statefulsets": [running_weaviate()]}, {"dify_weaviate_enabled": False,
                                                  "dify_weaviate_endpoint": "http://weaviate.example.com:8080",
                                                  "dify_weaviate_grpc_endpoint": "grpc://weaviate.example.com:50051"}),
    ],
)  # fmt: skip
def test_no_copy_of_weaviate_without_a_bundled_weaviate_whose_image_changes(existing, inventory):
    model = prepare("upgrade", dify_image_tag="1.17.1", existing=existing, **inventory)
    assert model["plan"]["weaviate_backup"] is False and "weaviate_backup" not in model


def test_weaviates_volume_without_its_statefulset_starts_from_the_weaviate_last_migrated_here():
    """After an uninstall of 1.16.1, a reinstall of 1.17.1 still steps Weaviate from 1.27, copy first."""
    record = {"image": "langgenius/dify-api:1.16.1", "job": "dify-db-migration", "completed_at": "t"}
    model = prepare("upgrade", dify_image_tag="1.17.1", existing={"migration_record": record, "weaviate_volume": True})
    assert model["plan"]["weaviate_steps"][0] == "1.28.16" and len(model["weaviate_steps"]) == 11
    assert model["plan"]["weaviate_backup"] is True and model["plan"]["weaviate_backup_of"] == "1.27.0"
    assert any("holds the data of Weaviate 1.27.0" in n for n in model["plan"]["notices"])
    # No volume (a first install, or Weaviate's volume purged): nothing to step from.
    fresh = prepare("upgrade", dify_image_tag="1.17.1", existing={"migration_record": record})
    assert fresh["plan"]["weaviate_steps"] == [] and fresh["plan"]["weaviate_backup"] is False
    # The same release again: nothing to step, nothing to say.
    same = prepare("upgrade", dify_image_tag="1.17.1", existing={
        "migration_record": dict(record, image="langgenius/dify-api:1.17.1"), "weaviate_volume": True})  # fmt: skip
    assert same["plan"]["weaviate_steps"] == [] and not any("holds the data" in n for n in same["plan"]["notices"])


def test_a_restore_to_a_release_whose_weaviate_cannot_open_the_running_data_is_refused_before_anything():
    name = "dify_1.16.1_to_1.17.1_20261201T000000Z"
    record = {name: json.dumps({"from": "1.16.1", "to": "1.17.1", "weaviate": "weaviate_1.27.0_20261201T000000Z"})}
    request = {"dify_restore_backup": name, "dify_restore_confirm": "dify"}
    running = {"backup_record": record, "statefulsets": [running_weaviate("semitechnologies/weaviate:1.39.0")]}
    with pytest.raises(InputError) as refused:
        prepare("upgrade", entry_point="restore", existing=running, **request)
    message = str(refused.value)
    assert message.startswith("Nothing was changed. Weaviate runs 1.39.0; Dify 1.16.1")
    assert "dify_restore_image_tag" in message and "weaviate_1.27.0_20261201T000000Z" in message
    # Going back to a release with that Weaviate (the databases are migrated again) is allowed ...
    again = prepare("upgrade", entry_point="restore", existing=running, dify_restore_image_tag="1.17.1", **request)
    assert again["restore"]["version"] == "1.17.1"
    # ... as is any restore once no newer Weaviate runs (its volume put back by hand, its StatefulSet gone).
    by_hand = prepare("upgrade", entry_point="restore", existing={"backup_record": record}, **request)
    assert by_hand["restore"]["version"] == "1.16.1"


def test_the_backups_volume_exists_for_weaviates_copies_alone():
    external_db = {
        "dify_postgres_enabled": False,
        "dify_db_host": "db.example.com",
        "dify_db_password": "p" * 16,
        "dify_backup_enabled": False,
    }
    claims = {o["metadata"]["name"] for o in prepare("default", **external_db)["objects"]["config"]
              if o["kind"] == "PersistentVolumeClaim"}  # fmt: skip
    assert "dify-backups" not in claims
    claims = {o["metadata"]["name"] for o in prepare("default", dify_backup_weaviate=True, **external_db)["objects"][
        "config"] if o["kind"] == "PersistentVolumeClaim"}  # fmt: skip
    assert "dify-backups" in claims


def test_the_agents_keys_are_one_secret_key_per_pair_and_kept():
    model = prepare("default")
    secret = next(o for o in model["secrets"] if o["metadata"]["name"] == "dify-credentials")["data"]
    decoded = {k: base64.b64decode(v).decode() for k, v in secret.items()}
    assert {"AGENT_BACKEND_API_TOKEN", "AGENT_SANDBOX_AUTH_TOKEN", "AGENT_SERVER_SECRET_KEY", "AGENT_REDIS_URL"} <= set(
        decoded
    )
    assert decoded["AGENT_REDIS_URL"].endswith("@dify-redis:6379/2")
    deployments = {o["metadata"]["name"]: o for o in model["objects"]["app"] if o["kind"] == "Deployment"}

    def refs(name):
        env = deployments[name]["spec"]["template"]["spec"]["containers"][0]["env"]
        return {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in env if "valueFrom" in e}

    agent, sandbox = refs("dify-agent-backend"), refs("dify-agent-local-sandbox")
    assert agent["DIFY_AGENT_API_TOKEN"] == "AGENT_BACKEND_API_TOKEN"  # = what api and worker read (envFrom)
    assert agent["DIFY_AGENT_LOCAL_SANDBOX_AUTH_TOKEN"] == sandbox["SHELLCTL_AUTH_TOKEN"] == "AGENT_SANDBOX_AUTH_TOKEN"
    assert agent["DIFY_AGENT_PLUGIN_DAEMON_API_KEY"] == "PLUGIN_DAEMON_KEY"
    assert agent["DIFY_AGENT_INNER_API_KEY"] == "INNER_API_KEY_FOR_PLUGIN"
    stored = {k: v for k, v in decoded.items() if k.startswith(("AGENT_", "SECRET_KEY", "DB_", "REDIS_", "PLUGIN",
              "INNER", "CODE", "WEAVIATE"))}  # fmt: skip
    again = prepare("upgrade", dify_image_tag="1.17.1", existing={"credentials": stored, "migration_record": None})
    kept = next(o for o in again["secrets"] if o["metadata"]["name"] == "dify-credentials")["data"]
    assert base64.b64decode(kept["AGENT_SERVER_SECRET_KEY"]).decode() == decoded["AGENT_SERVER_SECRET_KEY"]


def test_1_16_uses_the_agents_old_variable_names_and_1_17_the_new_ones():
    def env(model):
        obj = next(o for o in model["objects"]["app"] if o["metadata"]["name"] == "dify-agent-backend"
                   and o["kind"] == "Deployment")  # fmt: skip
        return {e["name"] for e in obj["spec"]["template"]["spec"]["containers"][0]["env"]}

    assert "DIFY_AGENT_SHELLCTL_AUTH_TOKEN" in env(prepare("default", dify_image_tag="1.16.1"))
    assert "DIFY_AGENT_LOCAL_SANDBOX_AUTH_TOKEN" in env(prepare("default"))
    assert "DIFY_AGENT_API_TOKEN" not in env(prepare("default", dify_image_tag="1.16.0"))


def test_the_local_sandbox_keeps_its_home_and_workspace_on_volumes_from_1_17():
    def claims(model):
        return {o["metadata"]["name"] for o in model["objects"]["config"] if o["kind"] == "PersistentVolumeClaim"}

    assert {"dify-agent-local-sandbox-home", "dify-agent-local-sandbox-workspace"} <= claims(prepare("default"))
    assert not {"dify-agent-local-sandbox-home"} & claims(prepare("default", dify_image_tag="1.16.1"))


def test_the_upgrade_steps_of_an_upgrade_that_crosses_their_release():
    steps = releases()["upgrade_steps"]
    assert [s["name"] for s in steps] == ["legacy-model-types"]
    crossing = catalog.upgrade_steps(releases(), "langgenius/dify-api:1.14.2", "1.17.1")
    assert [s["command"] for s in crossing] == [["flask", "data-migrate", "legacy-model-types", "--apply"]]
    assert catalog.upgrade_steps(releases(), "langgenius/dify-api:1.14.2", "1.15.0") == crossing
    assert catalog.upgrade_steps(releases(), "langgenius/dify-api:1.15.0", "1.17.1") == []
    assert catalog.upgrade_steps(releases(), "langgenius/dify-api:1.11.4", "1.14.2") == []
    assert catalog.upgrade_steps(releases(), "", "1.17.1") == [], "a new installation converts nothing"
