"""Redis Sentinel (dify_redis_sentinels), for real: Debian's redis-server 7 as the master and as a
sentinel watching it (both stand in for the operator's external Redis, with passwords of their
own), on the pod network. The api's and the worker's settings as rendered (the ConfigMap
dify-shared-env and the Secret dify-credentials of playbooks/manifests.yml) reach the master
through the sentinel the way Dify's clients do (dify:api/extensions/ext_redis.py: Sentinel with
REDIS_SENTINEL_* then master_for with REDIS_PASSWORD and REDIS_DB; Celery: each sentinel:// URL of
CELERY_BROKER_URL with CELERY_SENTINEL_*), and beat's liveness probe as rendered asks the sentinel."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
from cluster_fixtures import run_playbook
from runner import Container, Objects, PodNetwork, Volumes, wait_for_port

MASTER_PASSWORD = "redis-secret-1"
SENTINEL_PASSWORD = "sentinel-secret-1"
SETTINGS = {
    "dify_image_tag": "1.11.4",
    "dify_redis_enabled": False,
    "dify_redis_password": MASTER_PASSWORD,
    "dify_redis_sentinels": ["redis-sentinel-0:26379"],
    "dify_redis_sentinel_service_name": "mymaster",
    "dify_redis_sentinel_password": SENTINEL_PASSWORD,
}

# The api image's programs are not available: this runs with the api's environment and user
# (python with the redis client, as the image has it).
API_SETTINGS_CHECK = """
import os, urllib.parse
from redis.sentinel import Sentinel
e = os.environ
assert e["REDIS_USE_SENTINEL"] == "true" and e["CELERY_USE_SENTINEL"] == "true"
nodes = [(n.split(":")[0], int(n.split(":")[1])) for n in e["REDIS_SENTINELS"].split(",")]
cache = Sentinel(nodes, sentinel_kwargs={"socket_timeout": float(e["REDIS_SENTINEL_SOCKET_TIMEOUT"]) * 50,
                                         "password": e.get("REDIS_SENTINEL_PASSWORD")})
master = cache.master_for(e["REDIS_SENTINEL_SERVICE_NAME"], password=e["REDIS_PASSWORD"], db=int(e["REDIS_DB"]))
assert master.ping()
for url in e["CELERY_BROKER_URL"].split(";"):
    parts = urllib.parse.urlsplit(url)
    assert parts.scheme == "sentinel", url
    broker = Sentinel([(parts.hostname, parts.port)], sentinel_kwargs={"password": e["CELERY_SENTINEL_PASSWORD"]})
    db = int(parts.path.strip("/"))
    broker.master_for(e["CELERY_SENTINEL_MASTER_NAME"], password=parts.password, db=db).set("dify-ce-test", "ok")
print("connected")
"""


@pytest.fixture(scope="module")
def rendered(cluster, tmp_path_factory) -> Objects:
    out = tmp_path_factory.mktemp("sentinel-manifests")
    namespace = f"t-sentinel-{uuid.uuid4().hex[:5]}"  # only rendered
    run = run_playbook(cluster, "playbooks/manifests.yml",
                       {"dify_namespace": namespace, "dify_manifests_dir": str(out), **SETTINGS})  # fmt: skip
    assert run.rc == 0, run.stdout[-3000:]
    return Objects.load(out)


@pytest.fixture
def redis_with_sentinel(rendered, tmp_path):
    """The master and one sentinel (the operator's), each in a pod of its own."""
    network = PodNetwork(tmp_path / "network")
    master_pod, sentinel_pod = network.pod("redis-master-0"), network.pod("redis-sentinel-0")
    network.service("redis-sentinel-0", sentinel_pod)
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port 26379\nrequirepass {SENTINEL_PASSWORD}\nsentinel monitor mymaster {master_pod.ip} 6379 1\n"
        f"sentinel auth-pass mymaster {MASTER_PASSWORD}\ndir {tmp_path}\n"
    )
    (tmp_path / "master").mkdir()
    master = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "nsenter", f"--net={master_pod.netns}",
                               "redis-server", "--port", "6379", "--requirepass", MASTER_PASSWORD, "--dir",
                               str(tmp_path / "master"), "--save", ""],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    sentinel = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "nsenter", f"--net={sentinel_pod.netns}",
                                 "redis-server", str(conf), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    started: list[Container] = []
    try:
        wait_for_port(master_pod, 6379)
        wait_for_port(sentinel_pod, 26379)
        yield network, Volumes(tmp_path / "volumes", rendered), master, started
    finally:
        for container in started:
            container.stop(grace=2)
        for proc in (sentinel, master):
            proc.kill()
            proc.wait()
        network.close()


def test_api_and_worker_reach_the_master_through_the_sentinels(rendered, redis_with_sentinel):
    network, volumes, _master, started = redis_with_sentinel
    for deployment in ("dify-api", "dify-worker"):
        client = Container.of(rendered, "Deployment", deployment, network.pod(f"{deployment}-0"), volumes,
                              command=["python", "-c", API_SETTINGS_CHECK])  # fmt: skip
        started.append(client.start())
        assert client.wait(60) == 0, client.output
        assert client.stdout.text.strip() == "connected", client.output


def test_the_beat_liveness_probe_asks_the_sentinels(rendered, redis_with_sentinel):
    network, volumes, master, started = redis_with_sentinel
    beat = Container.of(rendered, "Deployment", "dify-beat", network.pod("dify-beat-0"), volumes,
                        command=["sleep", "infinity"])  # fmt: skip
    started.append(beat.start())
    beat.pid  # noqa: B018 - until it runs
    result = beat.probe("liveness")
    assert result.returncode == 0, (result.stdout, result.stderr)
    master.kill()
    master.wait()
    time.sleep(0.5)
    result = beat.probe("liveness")
    assert result.returncode != 0, "the probe must fail when the master is gone"
