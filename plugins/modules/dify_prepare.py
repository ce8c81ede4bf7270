#!/usr/bin/python

# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# The work is done by the action plugin of the same name, in the controller's process.

from __future__ import annotations

DOCUMENTATION = r"""
module: dify_prepare
short_description: The dify role's prepare step - validate, read the cluster once, decide, build the model
version_added: 0.2.0
author:
  - Dify CE Kubernetes maintainers (@dify-ce)
description:
  - Used by every entry point of the role M(dify_ce.kubernetes.dify) (site, manifests, migrate, status, restore,
    uninstall) as its first task; it is not meant for other plays. It changes nothing.
  - Validates the role's variables with the argument spec of the entry point and the checks the spec cannot
    express (each failure names the variable), reads what the entry point needs of the cluster in one go
    (the stored credentials, the migration, provider setup and backup records, the database volume, the
    StorageClasses, and for status the workloads), decides every credential (given, else stored, else
    generated once) and the release, and builds every object of every phase, the pods of the Jobs and the plan.
  - Runs in the controller's process (action plugin) and connects like kubernetes.core's modules do.
  - Its result holds credentials, so it is kept out of the output (as with C(no_log)); a failure holds none
    and is shown.
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
options:
  entry_point:
    description: The entry point of the role (its argument spec) the task runs for.
    type: str
    choices: [main, manifests, migrate_only, status, restore, uninstall, adopt, images]
    default: main
  role_path:
    description: The dify role's directory (argument specs, the provider setup script). Default the role of the task.
    type: path
notes:
  - Supports check mode (it only reads).
seealso:
  - module: dify_ce.kubernetes.dify_apply
  - module: dify_ce.kubernetes.dify_migrate
"""

EXAMPLES = r"""
- name: Prepare the model of the installation
  dify_ce.kubernetes.dify_prepare:
    entry_point: main
  register: _dify
"""

RETURN = r"""
release:
  description: The Dify version, its release line and every image.
  returned: success
  type: dict
objects:
  description: The objects of each phase (config, data, app, expose), without Secrets.
  returned: success, not for uninstall
  type: dict
secrets:
  description: The Secrets (credentials, provider keys).
  returned: success, not for uninstall
  type: list
  elements: dict
prune:
  description: Per phase, the kinds whose objects no setting asks for any more are deleted.
  returned: success, not for uninstall
  type: dict
jobs:
  description: The pod templates of the Jobs (migration, status probe, backup, restore, rotation, provider setup).
  returned: success, not for uninstall
  type: dict
plan:
  description: What the phases will do (migration run or skip and why, backup, rotation, provider setup, notices).
  returned: success, not for uninstall
  type: dict
names:
  description: The names of the records, Jobs and Secrets the task files use.
  returned: success, not for uninstall
  type: dict
uninstall:
  description: The kinds an uninstall deletes, in order, and the label selector.
  returned: for uninstall
  type: dict
images:
  description: Every image the installation pulls (objects, Jobs, Weaviate's steps), each with the reference
    dify_image_registry makes of it (C(source), C(target)).
  returned: for images
  type: list
  elements: dict
"""
