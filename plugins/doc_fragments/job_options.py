# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options shared by the modules that run a one-off Job (dify_migrate, dify_job)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  namespace:
    description: Namespace the Job runs in.
    type: str
    required: true
  image:
    description:
      - Image of the Job's container. Must carry a tag or a digest; V(latest) is refused unless
        O(allow_latest=true).
      - Required unless O(pod_template) names the image; given as well, it replaces the
        template's.
    type: str
  pod_template:
    description:
      - A pod template (C(metadata), C(spec) with exactly one container) to start the Job's pod
        from, for example the pod of the application the Job belongs to, so the Job runs with
        exactly its image, environment, volumes, security context and pull secrets.
      - The module sets the container's command (and args), C(restartPolicy=Never) and the
        Job's labels, and removes probes (a Job serves nothing). The other options of this
        module are applied on top - environment variables replace those of the same name,
        envFrom entries, volumes and mounts are added, labels and annotations merged, the rest
        replaces the template's value when given.
    type: dict
  allow_latest:
    description: Accept an image tagged V(latest).
    type: bool
    default: false
  env:
    description:
      - Extra environment variables of the container (values are converted to strings).
      - They are visible in the Job's spec; put secrets in a Secret and use O(env_from_secrets).
    type: dict
    default: {}
  env_from_secrets:
    description: Secrets whose keys become environment variables.
    type: list
    elements: str
    default: []
  env_from_config_maps:
    description: ConfigMaps whose keys become environment variables.
    type: list
    elements: str
    default: []
  ttl_seconds_after_finished:
    description: Seconds after which Kubernetes deletes the finished Job. V(-1) keeps it.
    type: int
    default: 86400
  backoff_limit:
    description: Retries of a failed pod. V(0) means a failure is never retried blindly.
    type: int
    default: 0
  timeout:
    description: Seconds to wait for the Job to finish before failing the task.
    type: int
    default: 600
  unschedulable_timeout:
    description: Seconds a pod may stay unschedulable (no node fits it) before the task fails.
    type: int
    default: 60
  service_account_name:
    description: ServiceAccount of the pod (the namespace's default when omitted).
    type: str
  image_pull_secrets:
    description: Names of Secrets used to pull the image from a private registry.
    type: list
    elements: str
    default: []
  image_pull_policy:
    description: Image pull policy of the container.
    type: str
    choices: [Always, IfNotPresent, Never]
  node_selector:
    description: Node labels the pod must run on.
    type: dict
    default: {}
  tolerations:
    description: Tolerations of the pod, as in a pod spec.
    type: list
    elements: dict
    default: []
  resources:
    description: Resource requests and limits of the container, as in a pod spec (default the template's).
    type: dict
  pod_labels:
    description: Extra labels of the pod.
    type: dict
    default: {}
  pod_annotations:
    description:
      - Annotations of the pod, for example V(sidecar.istio.io/inject=false) so that a
        service-mesh sidecar does not keep the Job running forever.
    type: dict
    default: {}
  security_context:
    description:
      - Security context of the container. Without it, the template's; without a template, one
        that meets the C(restricted) Pod Security Standard (C(allowPrivilegeEscalation=false), all
        capabilities dropped, C(runAsNonRoot), the C(RuntimeDefault) seccomp profile; the image must
        then run as a non-root user).
    type: dict
  pod_security_context:
    description: Security context of the pod.
    type: dict
  wait:
    description: Wait for the Job to finish and judge it. With V(false) the task returns once the Job exists.
    type: bool
    default: true
  delete_on_timeout:
    description: Delete the Job when O(timeout) expires. By default it is left for inspection.
    type: bool
    default: false
  log_lines:
    description: How many of the last log lines to return and to show in failure messages.
    type: int
    default: 50
notes:
  - Fails fast, without waiting for the timeout, when the Job fails (reporting the exit code),
    when a container cannot start (V(ErrImagePull), V(ImagePullBackOff), V(InvalidImageName),
    V(CreateContainerConfigError), V(CreateContainerError)), when no node fits the pod for
    O(unschedulable_timeout) seconds, or when the Job is deleted while it runs. Every failure
    message names the Job and the pod and ends with the last O(log_lines) lines.
  - Follows the Job and its pod with the watch API and returns as soon as the outcome is known.
"""
