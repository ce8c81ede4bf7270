"""The modules' argument checks: every problem names its option, before any API call."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import job_args
from ansible_collections.dify_ce.kubernetes.plugins.modules import dify_job, dify_migrate

BASE = {name: copy.deepcopy(option.get("default")) for name, option in job_args.JOB_ARG_SPEC.items()}
BASE.update(namespace="dify", image="langgenius/dify-api:1.11.4")


def migrate_params(**changes):
    params = dict(BASE, command=["flask", "db", "upgrade"], job_name="dify-db-migration", force=False)
    params.update(changes)
    return params


def job_params(**changes):
    params = dict(
        BASE, name="dify-status", command=[], args=[], secret_env={}, volumes=[], volume_mounts=[], component="db-tools"
    )
    params.update(changes)
    return params


def test_valid_options_have_no_problems():
    assert dify_migrate.problems(migrate_params()) == []
    assert dify_job.problems(job_params(secret_env={"PGPASSWORD": "dify-credentials/DB_PASSWORD"})) == []


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"namespace": "Dify"}, "namespace 'Dify'"),
        ({"image": "langgenius/dify-api"}, "image 'langgenius/dify-api' has no tag"),
        ({"image": "langgenius/dify-api:latest"}, "'latest' tag"),
        ({"timeout": 0}, "timeout must be a positive number"),
        ({"unschedulable_timeout": -1}, "unschedulable_timeout must be a positive number"),
        ({"backoff_limit": -2}, "backoff_limit must not be negative"),
        ({"log_lines": -1}, "log_lines must not be negative"),
        ({"ttl_seconds_after_finished": -5}, "ttl_seconds_after_finished must be -1"),
        ({"pod_annotations": {"dify-ce.test/exit-code": 3}}, "pod_annotations.dify-ce.test/exit-code must be a string"),
        ({"job_name": "x" * 64}, "job_name"),
        ({"command": []}, "command must not be empty"),
    ],
)
def test_migrate_problems_name_the_option(changes, words):
    found = dify_migrate.problems(migrate_params(**changes))
    assert any(words in p for p in found), found


@pytest.mark.parametrize("ref", ["dify-credentials", "/DB_PASSWORD", "a/b/c", 5])
def test_secret_env_references_are_checked(ref):
    found = dify_job.problems(job_params(secret_env={"PGPASSWORD": ref}))
    assert any("secret_env.PGPASSWORD" in p for p in found), found


def test_secret_env_becomes_secret_references():
    spec = dify_job.build_spec(job_params(secret_env={"PGPASSWORD": "dify-credentials/DB_PASSWORD"}))
    assert spec.secret_env == {"PGPASSWORD": ("dify-credentials", "DB_PASSWORD")}
    assert spec.record is False and spec.component == "db-tools"
    migrate = dify_migrate.build_spec(migrate_params())
    assert migrate.record is True and migrate.component == "db-migration"
