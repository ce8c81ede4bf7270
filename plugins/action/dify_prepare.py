# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dify role's prepare step (see the module documentation of dify_prepare)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.apply import read_all, stamped
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import DifyError, InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.build import prepare
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.objects import PROVIDER_SETUP_SCRIPT_FILE
from ansible_collections.dify_ce.kubernetes.plugins.plugin_utils.action import DifyAction


class ActionModule(DifyAction):
    def execute(self, task_vars: dict[str, Any]) -> dict[str, Any]:
        entry_point = self._task.args.get("entry_point", "main")
        role = Path(self._task.args.get("role_path") or task_vars.get("role_path") or "")
        specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
        if entry_point not in specs:
            raise InputError(f"entry_point {entry_point!r} is not an entry point of the role: {sorted(specs)}")
        spec = specs[entry_point]["options"]
        given = self._templar.template({name: task_vars[name] for name in spec if name in task_vars})
        validation = ArgumentSpecValidator(spec).validate(given, validate_role_argument_spec=True)
        if validation.error_messages:
            raise InputError("Nothing was changed. " + " ".join(validation.error_messages))
        releases_file = role / "files" / "releases.yml"
        releases = yaml.safe_load(releases_file.read_text()) if releases_file.exists() else {}
        assets = {PROVIDER_SETUP_SCRIPT_FILE: (role / "files" / PROVIDER_SETUP_SCRIPT_FILE).read_text()}

        client = []

        def read(reads: list[dict[str, Any]]) -> dict[str, Any]:
            if not reads:
                return {}
            if not self.in_process():  # another host talks to the cluster: its dify_info reads
                args = {k: v for k, v in self._task.args.items() if k not in ("entry_point", "role_path")}
                found = self._execute_module(
                    "dify_ce.kubernetes.dify_info", dict(args, reads=reads), task_vars=task_vars
                )
                if found.get("failed"):
                    raise DifyError(found.get("msg", "reading the cluster failed"))
                return found["objects"]
            if not client:
                client.append(self.kube())
            return read_all(client[0], reads)

        model = prepare(validation.validated_parameters, entry_point, read, assets=assets, releases=releases)
        # The hash of each object's rendered form, in the objects written as manifests too.
        for phase, objects in (model.get("objects") or {}).items():
            model["objects"][phase] = [stamped(obj) for obj in objects]
        if "secrets" in model:
            model["secrets"] = [stamped(obj) for obj in model["secrets"]]
            # The result holds credentials: keep it out of every output (a failure above holds none).
            model["_ansible_no_log"] = True
        return model
