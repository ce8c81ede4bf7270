"""nginx in front of Dify: Debian's nginx with the rendered nginx.conf, run as the pod runs it
(uid 101 as nginx-unprivileged, read-only root file system: it may write only /tmp). Dify's api,
web and plugin daemon are stand-ins that record what reaches them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from runner import Container, StandIn, Volumes, descendants, http_request, proc_status, wait_for_port

HOST = "dify.example.com"
# Route -> upstream, as Dify's docker/nginx/conf.d/default.conf.template has them.
ROUTES = {
    "/console/api/setup": "api",
    "/api/meta": "api",
    "/v1/chat-messages": "api",
    "/files/upload": "api",
    "/mcp/server/abc/mcp": "api",
    "/triggers/webhook/abc": "api",
    "/e/hook-123/endpoint": "plugin-daemon",
    "/explore/apps": "web",
    "/apps": "web",
    "/": "web",
}


@pytest.fixture
def nginx(objects, network, volumes, containers):
    upstreams = {
        "api": StandIn(network.pod("dify-api-0"), 5001, "api"),
        "web": StandIn(network.pod("dify-web-0"), 3000, "web"),
        "plugin-daemon": StandIn(network.pod("dify-plugin-daemon-0"), 5002, "plugin-daemon"),
    }
    for name in upstreams:
        network.service(f"dify-{name}", network.pods[f"dify-{name}-0"])
    pod = network.pod("dify-nginx-0")
    container = Container.of(objects, "Deployment", "dify-nginx", pod, volumes)
    containers.append(container.start())
    wait_for_port(pod, 8080, container)
    yield container, upstreams
    for server in upstreams.values():
        server.close()


def test_nginx_accepts_the_rendered_configuration(objects, network, volumes, containers):
    for name in ("api", "web", "plugin-daemon"):
        network.service(f"dify-{name}", network.pod(f"dify-{name}-0"))
    pod = network.pod("dify-nginx-0")
    check = Container.of(objects, "Deployment", "dify-nginx", pod, volumes, command=["nginx", "-t"])
    containers.append(check.start())
    assert check.wait(60) == 0, check.output
    assert "syntax is ok" in check.stderr.text and "test is successful" in check.stderr.text


def test_nginx_runs_as_uid_101_and_writes_only_tmp(nginx):
    container, _upstreams = nginx
    pids = [container.pid, *descendants(container.pid)]
    assert {proc_status(p)["Uid"].split()[1] for p in pids} == {"101"}
    assert len(pids) > 1, "master and workers"
    probe = container.exec(["/bin/sh", "-c", "touch /etc/nginx/x"])
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr


def test_every_route_reaches_its_upstream_with_the_headers_dify_needs(nginx, network):
    container, upstreams = nginx
    client = network.pod("browser")
    for path, upstream in ROUTES.items():
        code, _h, body = http_request(client, f"http://{container.pod.ip}:8080{path}", headers={"Host": HOST})
        assert code == 200, (path, code, body)
        assert json.loads(body) == {"upstream": upstream, "path": path}, path
        seen = upstreams[upstream].requests[-1]
        assert seen.headers.get("host") == HOST, (path, seen.headers)
        assert seen.headers.get("x-forwarded-for") == client.ip, (path, seen.headers)
        assert seen.headers.get("x-forwarded-proto") == "http", (path, seen.headers)
        if path.startswith("/e/"):
            assert seen.headers.get("dify-hook-url") == f"http://{HOST}{path}", seen.headers
    code, _h, body = http_request(client, f"http://{container.pod.ip}:8080/healthz")
    assert (code, body) == (200, b"ok\n")


def test_the_plugin_endpoint_and_trigger_urls_dify_hands_out_reach_their_upstreams(nginx, network, objects):
    """ENDPOINT_URL_TEMPLATE (plugin endpoints) and TRIGGER_URL (webhook triggers) are what Dify
    shows users to call: through nginx they must reach the plugin daemon and the api."""
    container, _upstreams = nginx
    env = objects.config_map("dify-shared-env")
    client = network.pod("webhook-caller")
    endpoint = env["ENDPOINT_URL_TEMPLATE"].replace("{hook_id}", "hook-9")
    trigger = env["TRIGGER_URL"].rstrip("/") + "/triggers/webhook/trigger-1"
    for url, upstream in ((endpoint, "plugin-daemon"), (trigger, "api")):
        scheme, _sep, rest = url.partition("://")
        assert scheme in ("http", "https") and rest, f"not an absolute URL: {url!r}"
        host, _slash, path = rest.partition("/")
        code, _h, body = http_request(client, f"http://{container.pod.ip}:8080/{path}", headers={"Host": host})
        assert code == 200 and json.loads(body)["upstream"] == upstream, (url, body)


def test_a_large_upload_passes_whole(nginx, network):
    container, upstreams = nginx
    client = network.pod("browser")
    body = bytes(range(256)) * (50 * 4096)  # 50 MiB
    code, _h, _b = http_request(
        client,
        f"http://{container.pod.ip}:8080/console/api/files/upload",
        method="POST",
        body=body,
        headers={"Host": HOST, "Content-Type": "application/octet-stream"},
        timeout=120,
    )
    assert code == 200
    seen = upstreams["api"].requests[-1]
    assert seen.body_size == len(body) and seen.body_sha256 == hashlib.sha256(body).hexdigest()


# --------------------------------------------------------------------------- every release line
# Dify's routes per release line, as its template has them (roles/dify/files/contract/<line>.yml,
# nginx.routes): the nginx of each line's release, rendered by the role, must send each of them to
# the right upstream (/socket.io/ from 1.14 with the upgrade headers, /openapi from 1.15).
CONTRACT = Path(__file__).resolve().parents[2] / "roles" / "dify" / "files" / "contract"
LINES = sorted((p.stem for p in CONTRACT.glob("1.*.yml")), key=lambda s: tuple(map(int, s.split("."))))
# Compose's host names -> the stand-ins (and the Service names dify-<name>).
UPSTREAMS = {"api": "api", "web": "web", "plugin_daemon": "plugin-daemon", "api_websocket": "api-websocket"}
PORTS = {"api": 5001, "web": 3000, "plugin-daemon": 5002, "api-websocket": 5001}


def a_path_under(location: str) -> str:
    return location + ("socket" if location.endswith("/") else "/socket") if location != "/" else "/"


@pytest.mark.parametrize("line", LINES)
def test_nginx_of_every_release_line_routes_every_path_difys_template_routes(
    line, manifests, network, tmp_path, containers
):
    contract = yaml.safe_load((CONTRACT / f"{line}.yml").read_text())
    objects = manifests(contract["release"])
    routes = {r["location"]: UPSTREAMS[r["upstream"].split(":")[0]] for r in contract["nginx"]["routes"]}
    upstreams = {name: StandIn(network.pod(f"dify-{name}-0"), PORTS[name], name) for name in set(routes.values())}
    for name in upstreams:
        network.service(f"dify-{name}", network.pods[f"dify-{name}-0"])
    try:
        pod = network.pod("dify-nginx-0")
        container = Container.of(objects, "Deployment", "dify-nginx", pod, Volumes(tmp_path / "volumes", objects))
        containers.append(container.start())
        wait_for_port(pod, 8080, container)
        client = network.pod("browser")
        for location, upstream in routes.items():
            path = a_path_under(location)
            headers = {"Host": HOST}
            if location == "/socket.io/":
                headers.update(Upgrade="websocket", Connection="Upgrade")
            code, _h, body = http_request(client, f"http://{pod.ip}:8080{path}", headers=headers)
            assert code == 200, (line, location, code, body)
            assert json.loads(body) == {"upstream": upstream, "path": path}, (line, location, body)
            seen = upstreams[upstream].requests[-1]
            assert seen.headers.get("host") == HOST, (line, location, seen.headers)
            if location == "/socket.io/":
                assert seen.headers.get("upgrade") == "websocket", seen.headers
                assert seen.headers.get("connection", "").lower() == "upgrade", seen.headers
        # What Dify does not route here falls through to web, as in its template.
        assert ("/openapi" in routes) == (tuple(map(int, line.split("."))) >= (1, 15))
        assert ("/socket.io/" in routes) == (tuple(map(int, line.split("."))) >= (1, 14))
    finally:
        for server in upstreams.values():
            server.close()
