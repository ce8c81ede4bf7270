"""AWX configuration as code: surveys that AWX accepts, variables the role knows, and an
execution environment definition ansible-builder turns into a build context."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
AWX_VARS = yaml.safe_load((ROOT / "playbooks" / "vars" / "awx.yml").read_text())
SURVEYS = {name: AWX_VARS[name] for name in ("awx_deploy_survey", "awx_upgrade_survey", "awx_uninstall_survey")}
TYPES = {
    "text": str,
    "textarea": str,
    "password": str,
    "multiplechoice": str,
    "multiselect": str,
    "integer": int,
    "float": float,
}


def awx_survey_errors(spec: dict) -> list[str]:
    """AWX's checks of a survey spec (POST .../survey_spec/) and of its defaults at launch."""
    errors = []
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if not isinstance(spec.get(field), kind):
            errors.append(f"field {field!r} missing or not a {kind.__name__}")
    if errors:
        return errors
    if not spec["spec"]:
        errors.append("'spec' doesn't contain any items")
    seen = set()
    for idx, item in enumerate(spec["spec"]):
        if not isinstance(item, dict):
            errors.append(f"question {idx} is not an object")
            continue
        for field in ("type", "question_name", "variable", "required"):
            expected = bool if field == "required" else str
            if not isinstance(item.get(field), expected):
                errors.append(f"question {idx}: {field!r} missing or not a {expected.__name__}")
        if item.get("variable") in seen:
            errors.append(f"question {idx}: variable {item.get('variable')!r} duplicated")
        seen.add(item.get("variable"))
        qtype = item.get("type")
        if qtype not in TYPES:
            errors.append(f"question {idx}: type {qtype!r} is not allowed")
            continue
        default = item.get("default", "")
        if (default != "" and not isinstance(default, TYPES[qtype])) or isinstance(default, bool):
            errors.append(f"question {idx}: default {default!r} is not a {TYPES[qtype].__name__}")
        for key in ("min", "max"):
            if item.get(key) is not None and not isinstance(item[key], int):
                errors.append(f"question {idx}: {key} must be an integer")
        if qtype in ("multiplechoice", "multiselect"):
            choices = item.get("choices")
            if choices is None:
                errors.append(f"question {idx}: {qtype} needs choices")
                continue
            choices = choices.splitlines() if isinstance(choices, str) else choices
            defaults = default.splitlines() if isinstance(default, str) else default
            if qtype == "multiplechoice" and len(defaults) > 1:
                errors.append(f"question {idx}: multiplechoice takes one default")
            if any(d not in choices for d in defaults):
                errors.append(f"question {idx}: default not among the choices")
        if isinstance(default, str) and default.startswith("$encrypted$"):
            errors.append(f"question {idx}: $encrypted$ is reserved")
        # Launch-time checks of the default answer.
        is_text = qtype in ("text", "textarea", "password") and default != ""
        if is_text and not item.get("min", 0) <= len(default) <= item.get("max", 1024):
            errors.append(f"question {idx}: default length outside min/max")
        is_number = qtype in ("integer", "float") and default != ""
        if is_number and not item.get("min", default) <= default <= item.get("max", default):
            errors.append(f"question {idx}: default outside min/max")
        if item.get("required") and qtype != "password" and default == "":
            errors.append(f"question {idx}: a required question needs a default for unattended launches")
    return errors


@pytest.mark.parametrize("name", SURVEYS)
def test_surveys_pass_awx_validation(name):
    assert awx_survey_errors(SURVEYS[name]) == []


def test_the_validator_rejects_what_awx_rejects():
    bad = {"name": "x", "description": "", "spec": [
        {"question_name": "a", "variable": "v", "type": "checkbox", "required": True},
        {"question_name": "b", "variable": "v", "type": "integer", "required": "yes", "default": "3"},
        {"question_name": "c", "variable": "w", "type": "multiplechoice", "required": True, "default": "c"},
    ]}  # fmt: skip
    errors = " | ".join(awx_survey_errors(bad))
    for words in ("type 'checkbox'", "duplicated", "'required' missing or not a bool", "default '3'", "needs choices"):
        assert words in errors


def test_survey_variables_are_role_variables():
    specs = yaml.safe_load((ROOT / "roles" / "dify" / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = set(specs["main"]["options"]) | set(specs["uninstall"]["options"])
    asked = {q["variable"] for survey in SURVEYS.values() for q in survey["spec"]}
    assert asked <= options, asked - options
    for variable in ("dify_openai_api_key", "dify_admin_password"):
        secret = [q for s in SURVEYS.values() for q in s["spec"] if q["variable"] == variable]
        assert secret and all(q["type"] == "password" for q in secret), variable


def test_execution_environment_builds_a_context(tmp_path):
    builder = Path(sys.executable).parent / "ansible-builder"
    command = [str(builder), "create", "--file", str(ROOT / "execution-environment.yml")]
    command += ["--context", str(tmp_path / "context"), "--output-filename", "Containerfile"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr + result.stdout
    context = tmp_path / "context"
    containerfile = (context / "Containerfile").read_text()
    assert "ARG EE_BASE_IMAGE" in containerfile
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    names = {c["name"] for c in galaxy["collections"]}
    assert {"kubernetes.core", "ansible.utils"} <= names
    assert any("ansible-collection-kubernetes" in n for n in names)
    python = (context / "_build" / "requirements.txt").read_text()
    assert "kubernetes" in python and "openshift" in python
    assert "ansible-core>=2.16,<2.20" in containerfile and "ansible-runner" in containerfile
