# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run's lock, renewed by the modules that wait (dify_apply, dify_job, dify_migrate, dify_record)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  lock:
    description:
      - The lock of the run this task belongs to (RV(dify_ce.kubernetes.dify_lock#module:lease)), renewed while
        the module works and waits, so that a long wait does not let it expire. The module fails when another
        run took the namespace meanwhile. Unset (a module used on its own), nothing is renewed.
    type: dict
    suboptions:
      namespace:
        description: Namespace of the Lease.
        type: str
      holder:
        description: The run that holds it.
        type: str
"""
