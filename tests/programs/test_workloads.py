"""What the components that cannot run here (no images: the sandbox, the plugin daemon, Dify's
api and worker) need from the rendered objects, checked with real processes where a process can
show it: their user, group, capability set and volumes are the rendered ones, the command is the
test's (said in each test)."""

from __future__ import annotations

import dataclasses

import pytest
from cluster_fixtures import run_playbook
from runner import IMAGES, Container, Objects, container_of, pod_spec_of

SANDBOX_USER = 65537  # dify-sandbox runs user code as this uid (its seccomp setup calls setuid)


def containers_of(objects: Objects, name: str) -> dict:
    return container_of(pod_spec_of(objects.get("Deployment", name)))


def test_the_sandbox_can_kill_the_code_it_runs_when_it_times_out(objects, network, volumes, containers):
    """The sandbox starts user code as uid 65537 and kills it after WORKER_TIMEOUT: as root
    without CAP_KILL the kill fails (EPERM), the run never ends and keeps a worker slot."""
    # The sandbox's user and capability set start a process as 65537, then kill it.
    script = (
        f"setpriv --reuid={SANDBOX_USER} --regid={SANDBOX_USER} --clear-groups sleep 300 & code=$!; "
        "sleep 0.2; kill -KILL $code && wait $code; echo killed $?"
    )
    sandbox = Container.of(objects, "Deployment", "dify-sandbox", network.pod("dify-sandbox-0"), volumes,
                           command=["/bin/sh", "-c", script])  # fmt: skip
    containers.append(sandbox.start())
    assert sandbox.wait(30) == 0, sandbox.output
    assert "killed 137" in sandbox.stdout.text, sandbox.output
    assert "KILL" in containers_of(objects, "dify-sandbox")["securityContext"]["capabilities"]["add"]


def test_the_sandbox_sees_the_python_requirements_of_its_image(objects):
    """The image carries /dependencies/python-requirements.txt (dify-sandbox's Dockerfile); Dify's
    compose mounts a directory with that file there. An emptyDir would hide it."""
    mounts = containers_of(objects, "dify-sandbox").get("volumeMounts", [])
    assert not [m for m in mounts if m["mountPath"].rstrip("/") in ("/dependencies", "")], mounts


def test_the_plugin_daemon_can_write_its_volume_whoever_owns_it(objects, network, volumes, containers):
    """The plugin daemon's image has no USER: it runs as root, here without any capability. Root
    without CAP_DAC_OVERRIDE may write only what it owns or its groups may write, so a volume
    whose files another uid wrote (a restored copy, a provisioner that hands the volume's root to
    another user) must be made the daemon's by the pod (fsGroup) for it to install plugins."""
    volumes.claim("dify-plugin-daemon", owner=(1001, 1001), mode=0o755)
    script = (
        "mkdir -p /app/storage/cwd /app/storage/plugin && echo ok >/app/storage/cwd/probe && cat /app/storage/cwd/probe"
    )
    daemon = Container.of(objects, "Deployment", "dify-plugin-daemon", network.pod("dify-plugin-daemon-0"), volumes,
                          command=["/bin/sh", "-c", script])  # fmt: skip
    containers.append(daemon.start())
    assert daemon.wait(30) == 0, daemon.output
    assert daemon.stdout.text.strip() == "ok"


@pytest.mark.parametrize("light", [True, False], ids=["image-with-celery_healthcheck", "older-image"])
def test_the_worker_liveness_probe_prefers_difys_light_check(objects, network, volumes, containers, tmp_path, light):
    """Dify's compose checks workers with `celery -A celery_healthcheck.celery inspect ping`, a
    module that does not import the whole app (api/celery_healthcheck.py); images without it
    need celery_entrypoint. The rendered probe runs in a worker container; `celery` is a stand-in
    that prints how it was called (the api image is not available)."""
    celery = tmp_path / "celery"
    celery.write_text('#!/bin/sh\necho "celery $*"\n')
    celery.chmod(0o755)
    files = {"/usr/local/bin/celery": celery}
    if light:
        module = tmp_path / "celery_healthcheck.py"
        module.write_text("# stand-in\n")
        files["/app/api/celery_healthcheck.py"] = module
    image = dataclasses.replace(IMAGES["langgenius/dify-api"], files=files)
    worker = Container.of(objects, "Deployment", "dify-worker", network.pod("dify-worker-0"), volumes,
                          image=image, command=["sleep", "infinity"])  # fmt: skip
    containers.append(worker.start())
    result = worker.probe("liveness")
    assert result.returncode == 0, result
    app = "celery_healthcheck" if light else "celery_entrypoint"
    assert result.stdout.strip() == f"celery -A {app}.celery inspect ping -d celery@dify-worker-0 --timeout 20"


def test_the_worker_and_api_get_difys_concurrency_and_timeout(objects):
    """Dify's compose sets GUNICORN_TIMEOUT=360 and CELERY_WORKER_AMOUNT=4; without them the
    api's entrypoint falls back to a 200 s request timeout and a single worker process."""
    env = objects.config_map("dify-shared-env")
    assert env.get("GUNICORN_TIMEOUT") == "360"
    assert env.get("CELERY_WORKER_AMOUNT") == "4"


def test_the_api_tells_plugin_developers_where_to_connect(objects):
    """PLUGIN_REMOTE_INSTALL_HOST/PORT (api only) are what Dify shows for remote plugin
    debugging: the plugin daemon's debug port, reached with kubectl port-forward."""
    api = {e["name"]: e.get("value") for e in containers_of(objects, "dify-api").get("env", [])}
    daemon = containers_of(objects, "dify-plugin-daemon")
    daemon_env = {e["name"]: e.get("value") for e in daemon["env"]}
    assert api.get("PLUGIN_REMOTE_INSTALL_HOST") == "localhost"
    assert api.get("PLUGIN_REMOTE_INSTALL_PORT") == daemon_env["PLUGIN_REMOTE_INSTALLING_PORT"]
    debug = [p for p in daemon["ports"] if p["name"] == "debug"]
    assert debug and str(debug[0]["containerPort"]) == api["PLUGIN_REMOTE_INSTALL_PORT"]


def test_trigger_and_plugin_endpoint_urls_follow_the_public_url(cluster, namespace, tmp_path):
    out = tmp_path / "manifests"
    given = {
        "dify_namespace": namespace,
        "dify_manifests_dir": str(out),
        "dify_public_url": "https://dify.example.com/",
    }
    run = run_playbook(cluster, "playbooks/manifests.yml", given)
    assert run.rc == 0, run.stdout[-3000:]
    env = Objects.load(out).config_map("dify-shared-env")
    assert env["TRIGGER_URL"] == "https://dify.example.com"
    assert env["ENDPOINT_URL_TEMPLATE"] == "https://dify.example.com/e/{hook_id}"
