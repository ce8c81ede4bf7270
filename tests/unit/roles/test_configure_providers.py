"""roles/dify/files/configure_providers.py against a fake of Dify's console API.

The fake keeps state like Dify does (admin account, cookie session with CSRF check, plugin
install tasks, provider credentials), so the script's calls are checked for what the server
needs, not only for their order. Written from Dify's api/controllers/console sources; no Dify
runs here.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import secrets
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "roles" / "dify" / "files" / "configure_providers.py"
_spec = importlib.util.spec_from_file_location("configure_providers", SCRIPT)
assert _spec and _spec.loader
configure_providers = importlib.util.module_from_spec(_spec)
sys.modules["configure_providers"] = configure_providers  # dataclasses look their module up
_spec.loader.exec_module(configure_providers)

OPENAI_KEY = "sk-test-0123456789abcdef"
PASSWORD = "Adm1n-password-for-tests"
IDENTIFIER = "langgenius/openai:0.2.7@5f0c5d1e"


@dataclass
class DifyState:
    setup_done: bool = False
    account: tuple[str, str] | None = None
    login_base64: bool = True
    cookie_prefix: str = ""
    task_outcome: str = "success"
    task_polls_before_done: int = 2
    marketplace: bool = True
    plugins: list[str] = field(default_factory=list)
    credentials: list[dict[str, Any]] = field(default_factory=list)
    current_credential: str | None = None
    sessions: dict[str, str] = field(default_factory=dict)  # access token -> csrf token
    tasks: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


class FakeDify(BaseHTTPRequestHandler):
    state: DifyState

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, cookies: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in (cookies or {}).items():
            self.send_header("Set-Cookie", f"{self.state.cookie_prefix}{name}={value}; Path=/; HttpOnly")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _payload(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else None

    def _cookies(self) -> dict[str, str]:
        pairs = [c.strip().split("=", 1) for c in (self.headers.get("Cookie") or "").split(";") if "=" in c]
        return {name.removeprefix(self.state.cookie_prefix): value for name, value in pairs}

    def _authorised(self) -> bool:
        cookies = self._cookies()
        token = cookies.get("access_token", "")
        csrf = self.state.sessions.get(token)
        # As Dify's check_csrf_token: the header must equal the cookie, on GETs too.
        return bool(csrf) and cookies.get("csrf_token") == csrf and self.headers.get("X-CSRF-Token") == csrf

    def _handle(self, method: str) -> None:
        state = self.state
        payload = self._payload()
        path = self.path
        state.requests.append((method, path, {k.lower(): v for k, v in self.headers.items()}))
        if path == "/console/api/setup" and method == "GET":
            return self._send(200, {"step": "finished" if state.setup_done else "not_started"})
        if path == "/console/api/setup" and method == "POST":
            if state.setup_done:
                return self._send(403, {"code": "already_setup", "message": "Dify has been successfully installed."})
            state.setup_done = True
            state.account = (payload["email"], payload["password"])
            return self._send(201, {"result": "success"})
        if path == "/console/api/login" and method == "POST":
            password = payload["password"]
            if state.login_base64:
                try:
                    password = base64.b64decode(password).decode()
                except ValueError:
                    return self._send(401, {"code": "authentication_failed", "message": "Invalid encrypted data"})
            if state.account != (payload["email"], password):
                return self._send(401, {"code": "authentication_failed", "message": "Invalid email or password."})
            token, csrf = secrets.token_hex(8), secrets.token_hex(8)
            state.sessions[token] = csrf
            return self._send(200, {"result": "success"}, {"access_token": token, "csrf_token": csrf})
        if not self._authorised():
            return self._send(401, {"code": "unauthorized", "message": "CSRF token is missing or invalid."})
        if path.startswith("/console/api/workspaces/current/plugin/list?") and method == "GET":
            return self._send(200, {"plugins": [{"plugin_id": p} for p in state.plugins], "total": len(state.plugins)})
        if path == "/console/api/workspaces/current/plugin/list/latest-versions" and method == "POST":
            versions = (
                {p: {"unique_identifier": IDENTIFIER} for p in payload["plugin_ids"]} if state.marketplace else {}
            )
            return self._send(200, {"versions": versions})
        if path == "/console/api/workspaces/current/plugin/install/marketplace" and method == "POST":
            assert payload == {"plugin_unique_identifiers": [IDENTIFIER]}
            state.tasks["task-1"] = 0
            return self._send(200, {"all_installed": False, "task_id": "task-1"})
        if path.startswith("/console/api/workspaces/current/plugin/tasks/") and method == "GET":
            task_id = path.rsplit("/", 1)[1]
            state.tasks[task_id] += 1
            status = "running"
            if state.tasks[task_id] > state.task_polls_before_done:
                status = state.task_outcome
                if status == "success":
                    state.plugins.append("langgenius/openai")
            plugins = [
                {"plugin_id": "langgenius/openai", "status": status, "message": "pip install failed: no network"}
            ]
            return self._send(200, {"task": {"id": task_id, "status": status, "plugins": plugins}})
        if path == "/console/api/workspaces/current/model-providers" and method == "GET":
            providers = [{"provider": "langgenius/tongyi/tongyi"}]
            if "langgenius/openai" in state.plugins:
                providers.append(
                    {
                        "provider": "langgenius/openai/openai",
                        "custom_configuration": {
                            "status": "active" if state.current_credential else "no-configure",
                            "current_credential_id": state.current_credential,
                        },
                    }
                )
            return self._send(200, {"data": providers})
        if path == "/console/api/workspaces/current/model-providers/langgenius/openai/openai/credentials":
            key = payload["credentials"]["openai_api_key"]
            if key == "sk-rejected":
                # The provider's validation error quotes the key, as OpenAI's does.
                return self._send(400, {"code": "invalid_param", "message": f"Incorrect API key provided: {key}"})
            if method == "POST":
                if any(c["name"] == payload.get("name") for c in state.credentials):
                    return self._send(400, {"message": f"Credential with name '{payload['name']}' already exists."})
                credential = {"id": f"cred-{len(state.credentials) + 1}", "name": payload.get("name"), "key": key}
                state.credentials.append(credential)
                state.current_credential = state.current_credential or credential["id"]
                return self._send(201, {"result": "success"})
            if method == "PUT":
                match = [c for c in state.credentials if c["id"] == payload["credential_id"]]
                if not match:
                    return self._send(400, {"message": "Credential not found."})
                match[0]["key"] = key
                return self._send(200, {"result": "success"})
        return self._send(404, {"message": f"no route {method} {path}"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")


@pytest.fixture
def dify() -> Iterator[tuple[DifyState, str]]:
    state = DifyState()
    handler = type("Handler", (FakeDify,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def run(url: str, **overrides: str) -> tuple[int, list[str]]:
    env = {
        "DIFY_API_URL": url,
        "DIFY_ADMIN_EMAIL": "admin@example.com",
        "DIFY_ADMIN_NAME": "Platform team",
        "DIFY_ADMIN_PASSWORD": PASSWORD,
        "OPENAI_API_KEY": OPENAI_KEY,
        "DIFY_SETUP_TIMEOUT": "5",
        "DIFY_POLL_SECONDS": "0.01",
    }
    env.update(overrides)
    lines: list[str] = []
    code = configure_providers.main(env, lines.append)
    return code, lines


def result_of(lines: list[str]) -> dict[str, str]:
    return json.loads(lines[-1].removeprefix("DIFY_REPORT "))


def assert_no_secret(lines: list[str], *values: str) -> None:
    text = "\n".join(lines)
    for value in values:
        assert value not in text
        assert base64.b64encode(value.encode()).decode() not in text


def test_new_installation_gets_admin_plugin_and_key(dify: tuple[DifyState, str]) -> None:
    state, url = dify
    code, lines = run(url)
    assert code == 0, lines
    assert result_of(lines) == {"admin": "created", "plugin": f"installed {IDENTIFIER}", "credential": "created"}
    assert state.account == ("admin@example.com", PASSWORD)  # set up with the password as given
    assert state.credentials == [{"id": "cred-1", "name": "dify_ce.kubernetes", "key": OPENAI_KEY}]
    assert state.current_credential == "cred-1"
    assert_no_secret(lines, OPENAI_KEY, PASSWORD)


def test_second_run_updates_the_credential_instead_of_adding_one(dify: tuple[DifyState, str]) -> None:
    state, url = dify
    assert run(url)[0] == 0
    installs_before = sum(1 for request in state.requests if request[1].endswith("/install/marketplace"))
    code, lines = run(url, OPENAI_API_KEY="sk-rotated-key-42")
    assert code == 0, lines
    assert result_of(lines) == {"admin": "existing", "plugin": "installed already", "credential": "updated"}
    assert [c["key"] for c in state.credentials] == ["sk-rotated-key-42"]
    assert sum(1 for request in state.requests if request[1].endswith("/install/marketplace")) == installs_before
    assert ("POST", "/console/api/setup") not in [request[:2] for request in state.requests[-8:]]


def test_every_console_call_carries_the_csrf_header(dify: tuple[DifyState, str]) -> None:
    state, url = dify
    assert run(url)[0] == 0
    console_calls = [request for request in state.requests if "/workspaces/" in request[1]]
    assert console_calls
    # The fake answers 401 without it; here the header is also checked on every call explicitly.
    assert all(headers.get("x-csrf-token") for _method, _path, headers in console_calls)


def test_https_cookie_names_are_sent_back(dify: tuple[DifyState, str]) -> None:
    state, url = dify
    state.cookie_prefix = "__Host-"
    code, lines = run(url)
    assert code == 0, lines


def test_an_api_without_base64_passwords_is_signed_in_too(dify: tuple[DifyState, str]) -> None:
    state, url = dify
    state.login_base64 = False
    code, lines = run(url)
    assert code == 0, lines


def test_an_admin_created_by_hand_with_another_password_is_named(dify: tuple[DifyState, str]) -> None:
    state, url = dify
    state.setup_done, state.account = True, ("admin@example.com", "S0mething-else")
    code, lines = run(url)
    assert code == 1
    assert lines[-1].startswith("ERROR: cannot sign in as admin@example.com (HTTP 401: Invalid email or password.)")
    assert "dify_admin_password" in lines[-1]
    assert state.credentials == []
    assert_no_secret(lines, OPENAI_KEY, PASSWORD)


def test_a_failed_plugin_install_says_why(dify: tuple[DifyState, str]) -> None:
    state, url = dify
    state.task_outcome = "failed"
    code, lines = run(url)
    assert code == 1
    assert lines[-1] == f"ERROR: the plugin daemon could not install {IDENTIFIER}: pip install failed: no network"


def test_an_install_that_never_finishes_times_out(dify: tuple[DifyState, str]) -> None:
    state, url = dify
    state.task_polls_before_done = 10**9
    code, lines = run(url, DIFY_SETUP_TIMEOUT="0.2")
    assert code == 1
    assert lines[-1] == f"ERROR: installing {IDENTIFIER} did not finish within 0 s"


def test_an_unreachable_marketplace_is_named(dify: tuple[DifyState, str]) -> None:
    state, url = dify
    state.marketplace = False
    code, lines = run(url)
    assert code == 1
    assert "marketplace.dify.ai" in lines[-1] and "dify_network_policy_internet_egress" in lines[-1]


def test_a_rejected_key_fails_without_echoing_it(dify: tuple[DifyState, str]) -> None:
    state, url = dify
    code, lines = run(url, OPENAI_API_KEY="sk-rejected")
    assert code == 1
    assert lines[-1] == "ERROR: Dify refused the OpenAI key (HTTP 400: Incorrect API key provided: ***)"
    assert state.credentials == []


def test_an_api_that_does_not_answer_fails_after_the_timeout() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]  # bound, then closed: nothing listens there
    code, lines = run(f"http://127.0.0.1:{port}", DIFY_SETUP_TIMEOUT="0.1")
    assert code == 1
    assert lines[-1].startswith(f"ERROR: the api at http://127.0.0.1:{port} did not answer:")


def test_missing_settings_are_named() -> None:
    lines: list[str] = []
    assert configure_providers.main({"DIFY_API_URL": "http://dify-api:5001"}, lines.append) == 1
    assert lines == ["ERROR: missing environment variables: DIFY_ADMIN_EMAIL, DIFY_ADMIN_PASSWORD, OPENAI_API_KEY"]
