# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Configure Dify's OpenAI model provider through the console API.

The dify role runs this in a one-off Job (image: dify-api, which has Python; only the standard
library is used) after the rollout, because Dify 1.x takes provider keys nowhere else: providers
are marketplace plugins and their credentials live in the database.

1. Sign up the admin account if the installation is new (POST /console/api/setup).
2. Sign in (the password base64-encoded, as the web client sends it; the tokens come back as
   cookies and every console call sends the CSRF cookie's value in X-CSRF-Token).
3. Install the plugin langgenius/openai from the marketplace unless it is installed, and wait for
   the plugin daemon to finish.
4. Store the key: update the provider's current credential, or create one.

Input comes from the environment (see ``Settings``). Exit code 0 when the key is stored, 1 with
an ``ERROR:`` line otherwise. Neither the key nor the password is ever printed.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable

PLUGIN_ID = "langgenius/openai"
PROVIDER = "langgenius/openai/openai"
CREDENTIAL_NAME = "dify_ce.kubernetes"


class SetupError(Exception):
    """A step failed; the message says which and why (without secrets)."""


@dataclass
class Settings:
    api_url: str
    admin_email: str
    admin_name: str
    admin_password: str
    openai_api_key: str
    timeout: float = 900.0
    poll_seconds: float = 2.0

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Settings:
        missing = [
            name
            for name in ("DIFY_API_URL", "DIFY_ADMIN_EMAIL", "DIFY_ADMIN_PASSWORD", "OPENAI_API_KEY")
            if not env.get(name)
        ]
        if missing:
            raise SetupError(f"missing environment variables: {', '.join(missing)}")
        return cls(
            api_url=env["DIFY_API_URL"].rstrip("/"),
            admin_email=env["DIFY_ADMIN_EMAIL"],
            admin_name=env.get("DIFY_ADMIN_NAME") or "admin",
            admin_password=env["DIFY_ADMIN_PASSWORD"],
            openai_api_key=env["OPENAI_API_KEY"],
            timeout=float(env.get("DIFY_SETUP_TIMEOUT") or 900),
            poll_seconds=float(env.get("DIFY_POLL_SECONDS") or 2),
        )


@dataclass
class Response:
    status: int
    body: Any


class Console:
    """A small client of Dify's console API that keeps the session cookies itself.

    Cookies are handled here rather than by http.cookiejar: with an https CONSOLE_API_URL Dify
    marks them Secure (``__Host-`` names), and this Job talks plain http to the api Service.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cookies: dict[str, str] = {}
        self.bearer = ""

    def call(self, method: str, path: str, payload: Any = None) -> Response:
        url = self.settings.api_url + path
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.cookies:
            request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
            csrf = self.cookie("csrf_token")
            if csrf:
                request.add_header("X-CSRF-Token", csrf)
        if self.bearer:
            request.add_header("Authorization", f"Bearer {self.bearer}")
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return self._response(answer.status, answer.read(), answer.headers.get_all("Set-Cookie") or [])
        except urllib.error.HTTPError as error:
            return self._response(error.code, error.read(), error.headers.get_all("Set-Cookie") or [])

    def _response(self, status: int, raw: bytes, set_cookies: list[str]) -> Response:
        for header in set_cookies:
            name, rest = header.split("=", 1) if "=" in header else (header, "")
            self.cookies[name.strip()] = rest.split(";", 1)[0].strip()
        try:
            body = json.loads(raw.decode() or "null")
        except ValueError:
            body = raw.decode(errors="replace")[:500]
        return Response(status, body)

    def cookie(self, suffix: str) -> str:
        # "csrf_token", or "__Host-csrf_token" when Dify's URLs are https.
        for name, value in self.cookies.items():
            if name == suffix or name.endswith("-" + suffix):
                return value
        return ""


def message_of(response: Response) -> str:
    body = response.body
    if isinstance(body, dict):
        text = body.get("message") or body.get("error") or body.get("code") or json.dumps(body)[:300]
    else:
        text = str(body)[:300]
    return f"HTTP {response.status}: {text}"


class ProviderSetup:
    def __init__(self, settings: Settings, say: Callable[[str], None], sleep: Callable[[float], None] = time.sleep):
        self.settings = settings
        self.console = Console(settings)
        self.say = say
        self.sleep = sleep
        self.setup_step = ""

    def run(self) -> dict[str, str]:
        self.wait_for_api()
        signed_up = self.sign_up()
        self.sign_in()
        plugin = self.install_plugin()
        credential = self.store_key()
        return {"admin": "created" if signed_up else "existing", "plugin": plugin, "credential": credential}

    def _deadline_passed(self, started: float) -> bool:
        return time.monotonic() - started > self.settings.timeout

    def wait_for_api(self) -> None:
        started = time.monotonic()
        while True:
            try:
                response = self.console.call("GET", "/console/api/setup")
                if response.status == 200 and isinstance(response.body, dict):
                    self.setup_step = str(response.body.get("step", ""))
                    return
                problem = message_of(response)
            except OSError as error:  # connection refused, DNS, reset: the api is starting
                problem = str(error)
            if self._deadline_passed(started):
                raise SetupError(f"the api at {self.settings.api_url} did not answer: {problem}")
            self.sleep(self.settings.poll_seconds)

    def sign_up(self) -> bool:
        if self.setup_step == "finished":
            return False
        response = self.console.call(
            "POST",
            "/console/api/setup",
            {
                "email": self.settings.admin_email,
                "name": self.settings.admin_name,
                "password": self.settings.admin_password,
                "language": "en-US",
            },
        )
        if response.status in (200, 201):
            self.say(f"created the admin account {self.settings.admin_email}")
            return True
        if response.status == 403 and "already" in json.dumps(response.body):
            return False  # someone finished the setup in the meantime
        raise SetupError(f"creating the admin account {self.settings.admin_email} failed: {message_of(response)}")

    def sign_in(self) -> None:
        # Dify 1.11's web client sends the password base64-encoded; older APIs take it as is.
        encoded = base64.b64encode(self.settings.admin_password.encode()).decode()
        first: Response | None = None
        for password in (encoded, self.settings.admin_password):
            response = self.console.call(
                "POST",
                "/console/api/login",
                {"email": self.settings.admin_email, "password": password, "remember_me": False},
            )
            if response.status == 200:
                data = response.body.get("data") if isinstance(response.body, dict) else None
                if isinstance(data, dict) and data.get("access_token"):
                    self.console.bearer = str(data["access_token"])  # APIs before the cookie tokens
                elif not self.console.cookie("access_token"):
                    raise SetupError("signing in returned neither an access token nor its cookie")
                return
            first = first or response
            if response.status not in (400, 401):
                break
        answer = message_of(first) if first else "no answer"
        raise SetupError(
            f"cannot sign in as {self.settings.admin_email} ({answer}). If the admin account was created by hand,"
            " set dify_admin_email and dify_admin_password to its email and password."
        )

    def providers(self) -> list[dict[str, Any]]:
        response = self.console.call("GET", "/console/api/workspaces/current/model-providers")
        if response.status != 200 or not isinstance(response.body, dict):
            raise SetupError(f"listing the model providers failed: {message_of(response)}")
        return list(response.body.get("data") or [])

    def openai_provider(self) -> dict[str, Any] | None:
        return next((p for p in self.providers() if p.get("provider") == PROVIDER), None)

    def installed(self) -> bool:
        response = self.console.call("GET", "/console/api/workspaces/current/plugin/list?page=1&page_size=256")
        if response.status != 200 or not isinstance(response.body, dict):
            raise SetupError(f"listing the installed plugins failed: {message_of(response)}")
        return any(p.get("plugin_id") == PLUGIN_ID for p in response.body.get("plugins") or [])

    def install_plugin(self) -> str:
        if self.installed():
            return "installed already"
        response = self.console.call(
            "POST", "/console/api/workspaces/current/plugin/list/latest-versions", {"plugin_ids": [PLUGIN_ID]}
        )
        versions = response.body.get("versions") if isinstance(response.body, dict) else None
        latest = (versions or {}).get(PLUGIN_ID) or {}
        identifier = latest.get("unique_identifier")
        if response.status != 200 or not identifier:
            raise SetupError(
                f"the marketplace did not name a version of {PLUGIN_ID} ({message_of(response)}); the api needs to"
                " reach marketplace.dify.ai (dify_marketplace_enabled, dify_network_policy_internet_egress)"
            )
        self.say(f"installing {identifier}")
        response = self.console.call(
            "POST",
            "/console/api/workspaces/current/plugin/install/marketplace",
            {"plugin_unique_identifiers": [identifier]},
        )
        if response.status != 200 or not isinstance(response.body, dict):
            raise SetupError(f"installing {identifier} failed: {message_of(response)}")
        if not response.body.get("all_installed"):
            self.wait_for_task(str(response.body.get("task_id") or ""), identifier)
        return f"installed {identifier}"

    def wait_for_task(self, task_id: str, identifier: str) -> None:
        if not task_id:
            raise SetupError(f"installing {identifier}: the api returned no task to follow")
        started = time.monotonic()
        while True:
            response = self.console.call("GET", f"/console/api/workspaces/current/plugin/tasks/{task_id}")
            task = response.body.get("task") if isinstance(response.body, dict) else None
            if response.status != 200 or not isinstance(task, dict):
                raise SetupError(f"following the install task {task_id} failed: {message_of(response)}")
            status = task.get("status")
            if status == "success":
                return
            if status == "failed":
                reasons = "; ".join(
                    str(p.get("message")) for p in task.get("plugins") or [] if p.get("status") == "failed"
                )
                raise SetupError(f"the plugin daemon could not install {identifier}: {reasons or 'no reason given'}")
            if self._deadline_passed(started):
                raise SetupError(f"installing {identifier} did not finish within {self.settings.timeout:.0f} s")
            self.sleep(self.settings.poll_seconds)

    def store_key(self) -> str:
        # The provider appears once the plugin daemon has loaded the plugin.
        started = time.monotonic()
        provider = self.openai_provider()
        while provider is None:
            if self._deadline_passed(started):
                raise SetupError(f"the model provider {PROVIDER} did not appear after installing {PLUGIN_ID}")
            self.sleep(self.settings.poll_seconds)
            provider = self.openai_provider()
        path = f"/console/api/workspaces/current/model-providers/{PROVIDER}/credentials"
        credentials = {"openai_api_key": self.settings.openai_api_key}
        current = (provider.get("custom_configuration") or {}).get("current_credential_id")
        if current:
            # Another POST would add a second credential next to the first, not replace it.
            response = self.console.call("PUT", path, {"credential_id": current, "credentials": credentials})
            outcome = "updated"
        else:
            response = self.console.call("POST", path, {"credentials": credentials, "name": CREDENTIAL_NAME})
            outcome = "created"
        if response.status not in (200, 201):
            raise SetupError(f"Dify refused the OpenAI key ({message_of(response)})")
        return outcome


def main(env: dict[str, str] | None = None, out: Callable[[str], None] = print) -> int:
    env = dict(os.environ if env is None else env)
    secrets = [v for v in (env.get("OPENAI_API_KEY"), env.get("DIFY_ADMIN_PASSWORD")) if v]

    def say(text: str) -> None:
        # Error messages may quote the server, and the server may quote what we sent.
        for secret in secrets:
            text = text.replace(secret, "***")
            text = text.replace(base64.b64encode(secret.encode()).decode(), "***")
        out(text)

    try:
        outcome = ProviderSetup(Settings.from_env(env), say).run()
    except SetupError as error:
        say(f"ERROR: {error}")
        return 1
    say("DIFY_REPORT " + json.dumps(outcome, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
