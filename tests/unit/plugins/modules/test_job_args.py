"""The modules' argument checks: every problem names its option, before any API call; and the
JobSpec the modules build from their options (with or without a pod template)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import job_args, migration, names
from ansible_collections.dify_ce.kubernetes.plugins.modules import dify_job, dify_migrate

IMAGE = "langgenius/dify-api:1.11.4"


def template(image: str | None = IMAGE, **container: Any) -> dict[str, Any]:
    """A pod template such as the role's api pod, abridged."""
    c: dict[str, Any] = {"name": "api", **container}
    if image is not None:
        c["image"] = image
    return {
        "metadata": {"labels": {names.LABEL_COMPONENT: "api"}},
        "spec": {
            "securityContext": {"runAsNonRoot": True, "fsGroup": 1001},
            "containers": [c],
        },
    }


def validated(module: Any, **params: Any) -> dict[str, Any]:
    """The options as AnsibleModule hands them over: defaults filled in, types checked."""
    result = ArgumentSpecValidator(module.ARGUMENT_SPEC, required_one_of=job_args.REQUIRED_ONE_OF).validate(
        copy.deepcopy(params)
    )
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def migrate_params(**changes: Any) -> dict[str, Any]:
    params = validated(dify_migrate, namespace="dify", image=IMAGE)
    params.update(changes)
    return params


def job_params(**changes: Any) -> dict[str, Any]:
    params = validated(dify_job, namespace="dify", image=IMAGE, name="dify-status", component="db-tools")
    params.update(changes)
    return params


def module(cls: type, params: dict[str, Any]) -> Any:
    """A module object without AnsibleModule (problems() and spec() only read self.params)."""
    instance = object.__new__(cls)
    instance.params = params
    instance.check_mode = False
    return instance


def problems(cls: type, params: dict[str, Any]) -> list[str]:
    return module(cls, params).problems()


def container(spec: Any) -> dict[str, Any]:
    return spec.template["spec"]["containers"][0]


# --------------------------------------------------------------------------- problems


def test_valid_options_have_no_problems():
    assert problems(dify_migrate.DifyMigrate, migrate_params()) == []
    assert problems(dify_job.DifyJob, job_params(secret_env={"PGPASSWORD": "dify-credentials/DB_PASSWORD"})) == []
    assert problems(dify_migrate.DifyMigrate, migrate_params(image=None, pod_template=template())) == []


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
        ({"image": None, "pod_template": template("langgenius/dify-api")}, "image 'langgenius/dify-api' has no tag"),
        ({"image": None, "pod_template": template(None)}, "image '' must be an image reference"),
        ({"pod_template": {"spec": {"containers": []}}}, "pod_template.spec.containers must hold exactly one"),
    ],
)
def test_migrate_problems_name_the_option(changes, words):
    found = problems(dify_migrate.DifyMigrate, migrate_params(**changes))
    assert any(words in p for p in found), found


@pytest.mark.parametrize("ref", ["dify-credentials", "/DB_PASSWORD", "a/b/c", 5])
def test_secret_env_references_are_checked(ref):
    found = problems(dify_job.DifyJob, job_params(secret_env={"PGPASSWORD": ref}))
    assert any("secret_env.PGPASSWORD" in p for p in found), found


def test_image_or_pod_template_is_required():
    for mod in (dify_migrate, dify_job):
        extra = {"name": "dify-status"} if mod is dify_job else {}
        result = ArgumentSpecValidator(mod.ARGUMENT_SPEC, required_one_of=job_args.REQUIRED_ONE_OF).validate(
            dict(namespace="dify", **extra)
        )
        assert result.error_messages == ["one of the following is required: image, pod_template"]
        assert "required" not in mod.ARGUMENT_SPEC["image"]
    assert job_args.REQUIRED_ONE_OF == [("image", "pod_template")]


@pytest.mark.parametrize("mod", [dify_migrate, dify_job])
def test_the_modules_pass_required_one_of(mod, monkeypatch):
    seen: dict[str, Any] = {}

    class Recorder:
        def __init__(self, argument_spec, **kwargs):
            seen.update(kwargs, argument_spec=argument_spec)

        def main(self):
            seen["main"] = True

    monkeypatch.setattr(mod, "DifyMigrate" if mod is dify_migrate else "DifyJob", Recorder)
    mod.main()
    assert seen["required_one_of"] == job_args.REQUIRED_ONE_OF
    assert seen["argument_spec"] is mod.ARGUMENT_SPEC and seen["main"]


def test_an_image_option_replaces_the_templates_image_in_the_checks():
    params = migrate_params(image="langgenius/dify-api:1.11.5", pod_template=template("langgenius/dify-api:latest"))
    assert problems(dify_migrate.DifyMigrate, params) == []


@pytest.mark.parametrize(
    ("pod_template", "words"),
    [
        ("a string", "pod_template must be a pod template"),
        ({"metadata": {}}, "pod_template must be a pod template"),
        ({"spec": []}, "pod_template must be a pod template"),
        ({"spec": {}}, "pod_template.spec.containers must hold exactly one container"),
        ({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}, "must hold exactly one container"),
        ({"spec": {"containers": ["api"]}}, "must hold exactly one container"),
        ({"spec": {"containers": [{"image": IMAGE}]}}, "pod_template.spec.containers[0] has no name"),
    ],
)
def test_template_problems(pod_template, words):
    found = job_args.template_problems(pod_template)
    assert len(found) == 1 and words in found[0], found


def test_a_valid_template_has_no_problems():
    assert job_args.template_problems(template()) == []


def test_every_problem_is_reported_at_once():
    found = problems(dify_migrate.DifyMigrate, migrate_params(namespace="Dify", image="langgenius/dify-api"))
    assert any("namespace 'Dify'" in p for p in found), found
    assert any("has no tag" in p for p in found), found


# --------------------------------------------------------------------------- the JobSpec


def test_secret_env_becomes_secret_references():
    spec = module(dify_job.DifyJob, job_params(secret_env={"PGPASSWORD": "dify-credentials/DB_PASSWORD"})).spec()
    assert container(spec)["env"] == [
        {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "dify-credentials", "key": "DB_PASSWORD"}}}
    ]
    assert spec.component == "db-tools" and spec.container_name == "job"
    migrate = module(dify_migrate.DifyMigrate, migrate_params()).spec()
    assert migrate.component == "db-migration" and migrate.container_name == "migrate"
    assert container(migrate)["command"] == migration.DEFAULT_COMMAND


@pytest.mark.parametrize(
    ("mod", "params", "runner"),
    [(dify_job, job_params, "JobRunner"), (dify_migrate, migrate_params, "MigrationRunner")],
)
def test_dify_job_keeps_no_record_and_dify_migrate_does(mod, params, runner, monkeypatch):
    # Was spec.record False/True: the record is now the runner's (JobRunner vs MigrationRunner).
    used: list[str] = []

    class Runner:
        def __init__(self, api, spec, heartbeat=None):
            used.append(type(api).__name__)
            assert heartbeat is not None and heartbeat.lock is None  # no lock option: renews nothing

        def run(self):
            return {"ran": True}

    monkeypatch.setattr(mod, runner, Runner)
    instance = module(mod.DifyJob if mod is dify_job else mod.DifyMigrate, params())
    instance._kube = object()
    assert instance.execute() == {"ran": True}
    assert used == ["KubeJobApi" if mod is dify_job else "KubeMigrationApi"]


def test_without_template_the_container_meets_the_restricted_standard():
    spec = module(dify_migrate.DifyMigrate, migrate_params()).spec()
    assert container(spec)["securityContext"] == job_args.RESTRICTED_SECURITY_CONTEXT
    assert container(spec)["image"] == IMAGE
    assert "resources" not in container(spec)


def test_with_template_the_security_context_is_the_templates():
    spec = module(dify_migrate.DifyMigrate, migrate_params(image=None, pod_template=template())).spec()
    assert "securityContext" not in container(spec)  # the api container has none: no default added
    assert spec.template["spec"]["securityContext"] == {"runAsNonRoot": True, "fsGroup": 1001}
    own = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}
    spec = module(
        dify_migrate.DifyMigrate, migrate_params(image=None, pod_template=template(securityContext=own))
    ).spec()
    assert container(spec)["securityContext"] == own
    given = {"runAsUser": 1000}
    spec = module(
        dify_migrate.DifyMigrate,
        migrate_params(image=None, pod_template=template(securityContext=own), security_context=given),
    ).spec()
    assert container(spec)["securityContext"] == given


def test_with_template_unset_options_keep_the_templates_values():
    base = template(resources={"requests": {"cpu": "1"}}, imagePullPolicy="IfNotPresent", command=["/entrypoint.sh"])
    spec = module(dify_migrate.DifyMigrate, migrate_params(image=None, pod_template=base, resources={})).spec()
    c = container(spec)
    assert c["resources"] == {"requests": {"cpu": "1"}}
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["command"] == migration.DEFAULT_COMMAND  # the module's command, never the template's
    assert c["name"] == "api" and spec.container_name == "api"
    assert spec.image == IMAGE
    assert base["spec"]["containers"][0]["command"] == ["/entrypoint.sh"]  # the option is not modified
    spec = module(
        dify_migrate.DifyMigrate, migrate_params(image="langgenius/dify-api:1.11.5", pod_template=base)
    ).spec()
    assert spec.image == "langgenius/dify-api:1.11.5"


def test_dify_migrate_replaces_the_templates_args_too():
    base = template(command=["/bin/bash", "/entrypoint.sh"], args=["serve"])
    spec = module(dify_migrate.DifyMigrate, migrate_params(image=None, pod_template=base)).spec()
    assert container(spec)["command"] == migration.DEFAULT_COMMAND
    assert "args" not in container(spec)


def test_dify_job_with_template_keeps_command_and_args_unless_given():
    base = template(command=["python", "-c"], args=["print(1)"])
    c = container(module(dify_job.DifyJob, job_params(image=None, pod_template=base)).spec())
    assert c["command"] == ["python", "-c"] and c["args"] == ["print(1)"]
    c = container(module(dify_job.DifyJob, job_params(image=None, pod_template=base, args=["print(2)"])).spec())
    assert c["command"] == ["python", "-c"] and c["args"] == ["print(2)"]
    c = container(module(dify_job.DifyJob, job_params(image=None, pod_template=base, command=[], args=[])).spec())
    assert "command" not in c and "args" not in c  # the image's entrypoint
    c = container(module(dify_job.DifyJob, job_params()).spec())
    assert "command" not in c and "args" not in c  # no template, no command: the image's entrypoint


def test_dify_job_volumes_and_secret_env_go_on_top_of_the_template():
    base = template(env=[{"name": "PGPASSWORD", "value": "old"}], volumeMounts=[{"name": "data", "mountPath": "/d"}])
    spec = module(
        dify_job.DifyJob,
        job_params(
            image=None,
            pod_template=base,
            secret_env={"PGPASSWORD": "dify-credentials/DB_PASSWORD"},
            volumes=[{"name": "backups", "emptyDir": {}}],
            volume_mounts=[{"name": "backups", "mountPath": "/backups"}],
        ),
    ).spec()
    c = container(spec)
    assert c["env"] == [
        {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "dify-credentials", "key": "DB_PASSWORD"}}}
    ]
    assert c["volumeMounts"] == [{"name": "data", "mountPath": "/d"}, {"name": "backups", "mountPath": "/backups"}]
    assert spec.template["spec"]["volumes"] == [{"name": "backups", "emptyDir": {}}]


def test_job_level_options_reach_the_spec():
    spec = module(
        dify_migrate.DifyMigrate,
        migrate_params(
            ttl_seconds_after_finished=-1,
            backoff_limit=1,
            timeout=30,
            unschedulable_timeout=10,
            wait=False,
            delete_on_timeout=True,
            log_lines=5,
            force=True,
            job_name="dify-migrate-2",
            namespace="apps",
        ),
    ).spec()
    assert spec.ttl_seconds_after_finished is None  # -1: keep the Job
    assert (spec.backoff_limit, spec.timeout, spec.unschedulable_timeout, spec.log_lines) == (1, 30, 10, 5)
    assert spec.wait is False and spec.delete_on_timeout is True and spec.force is True
    assert (spec.job_name, spec.namespace) == ("dify-migrate-2", "apps")
    assert module(dify_migrate.DifyMigrate, migrate_params()).spec().ttl_seconds_after_finished == 86400
