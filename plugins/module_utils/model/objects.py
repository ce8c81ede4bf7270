# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every object of an installation, built from the settings, the facts read once, the decided
credentials and the release: what each component is comes from its module (components/), how
each kind of object is written from its builder (kinds/); ``Builder`` puts the kinds together.
"""

from __future__ import annotations

from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.availability import Availability
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.configmaps import (
    PROVIDER_SETUP_SCRIPT_FILE,
    ConfigMaps,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.jobs import Jobs
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.monitoring import Monitoring
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.namespace import Namespace
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.policies import Policies
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.secrets import Secrets
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.services import Services
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.volumes import Volumes
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.kinds.workloads import Workloads

__all__ = ["PROVIDER_SETUP_SCRIPT_FILE", "Builder"]


class Builder(Namespace, ConfigMaps, Secrets, Volumes, Workloads, Services, Availability, Policies, Jobs, Monitoring):
    """Builds the objects of one installation (kinds.base.BuilderBase holds what they share)."""
