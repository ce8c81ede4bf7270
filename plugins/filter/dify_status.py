# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter dify_status: the health of a Dify installation (the status entry point of the dify role)."""

from __future__ import annotations

from typing import Any

DOCUMENTATION = r"""
name: dify_status
short_description: The health of a Dify installation
version_added: 0.2.0
author:
  - Dify CE Kubernetes maintainers (@dify-ce)
description:
  - From the objects the dify role's prepare step read (workloads, the migration Job and record, the nginx
    Service) and the result of the status probe Job, the state of every workload, the last migration, the
    address, what the probe found, and every problem in words (an empty list means healthy).
options:
  _input:
    description: The reads, by id (deployments, statefulsets, migration_job, migration_record, nginx_service,
      http_route).
    type: dict
    required: true
  probe:
    description: The registered result of the status probe Job (dify_ce.kubernetes.dify_job).
    type: dict
  check_mode:
    description: The probe did not run (check mode).
    type: bool
    default: false
  namespace:
    description: Namespace of the installation, for the messages.
    type: str
    default: dify
  expose:
    description: How nginx is exposed (dify_expose); with V(loadbalancer) a missing address is a problem, with
      V(gateway) an HTTPRoute no Gateway accepted.
    type: str
    default: loadbalancer
  database:
    description: Dify's database (dify_db_database), for the messages.
    type: str
    default: dify
  vector_store:
    description: The vector store in use (dify_vector_store), reported as it is.
    type: str
    default: weaviate
"""

EXAMPLES = r"""
- name: Assess
  ansible.builtin.set_fact:
    dify_status: "{{ _dify_model.status_reads | dify_ce.kubernetes.dify_status(probe=_dify_probe) }}"
"""

RETURN = r"""
_value:
  description: C(namespace), C(vector_store), C(workloads) (name -> ready/wanted), C(migration), C(address), C(probe),
    C(problems).
  type: dict
"""

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.status import assess  # noqa: E402


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"dify_status": assess}
