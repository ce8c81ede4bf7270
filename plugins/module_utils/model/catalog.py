# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release: which images and components an installation of a Dify version runs, from the
release catalog (roles/dify/files/releases.yml), and the upgrade rules checked before anything
changes: no downgrade, no unknown release line unless asked for, Weaviate one minor at a time."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.dify_ce.kubernetes.plugins.module_utils import names
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.errors import InputError
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.components import (
    ALL,
    image_variables,
    of_feature,
    weaviate,
)
from ansible_collections.dify_ce.kubernetes.plugins.module_utils.model.settings import Settings

# Companion images a variable may set (image -> variable).
IMAGE_VARIABLES = image_variables()
# What every line entry must have (a test checks the catalog against it).
LINE_FIELDS = ("patches", "images", "components", "upgrade_from", "startup_migration", "notes", "sources")
# Optional fields of a line: since (component or feature -> the patch that brought it),
# patch_images (patch -> the images that changed with it, from that patch on), agent_env, agent_volumes.
LINE_IMAGES = ("sandbox", "plugin_daemon", "weaviate")
# The components of the release features the catalog lists (dify_agent, dify_collaboration).
AGENT_COMPONENTS = of_feature("agent")
COLLABORATION_COMPONENTS = of_feature("collaboration")
_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def version_tuple(version: str) -> tuple[int, ...] | None:
    """(major, minor, patch) of a tag like 1.17.1 or 1.14.1-fix.3; None for other tags."""
    match = _VERSION.match(version or "")
    if not match:
        return None
    return tuple(int(part) for part in match.groups(default="0"))


def line_of(version: str) -> str:
    parsed = version_tuple(version)
    return f"{parsed[0]}.{parsed[1]}" if parsed else version


def tag_of(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1].split("@", 1)[0] if ":" in last else ""


@dataclass
class Release:
    version: str
    line: str
    images: dict[str, str]
    components: list[str] = field(default_factory=list)  # beyond the ones every line has
    agent_env: str = ""
    agent_volumes: bool = False
    agent_api_token: bool = False
    known: bool = True
    notices: list[str] = field(default_factory=list)
    weaviate_steps: list[str] = field(default_factory=list)
    startup_migration: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Components the release has that the settings switched off (dify_collaboration: false, say).
    switched_off: list[str] = field(default_factory=list)

    def has(self, component: str) -> bool:
        return component in self.components

    def offers(self, component: str) -> bool:
        """Whether the release has the component, run or switched off."""
        return component in self.components or component in self.switched_off

    def at_least(self, version: str) -> bool:
        """Whether this Dify version is ``version`` or newer (what Dify's files of a release have
        that older ones lack). A tag that is no version (an unlisted build) counts as the newest."""
        mine = version_tuple(self.version)
        return mine is None or mine >= (version_tuple(version) or ())


def line_images(entry: dict[str, Any], version: str) -> dict[str, str]:
    """The companion images of a line for one of its versions: the line's, then those a patch
    changed (patch_images), from that patch on."""
    images = dict(entry.get("images") or {})
    parsed = version_tuple(version)
    for patch, changed in sorted((entry.get("patch_images") or {}).items(), key=lambda i: version_tuple(i[0]) or ()):
        if parsed is None or parsed >= (version_tuple(patch) or ()):
            images.update(changed or {})
    return images


def _since(entry: dict[str, Any], what: str, version: tuple[int, ...] | None) -> bool:
    """Whether a component or feature that came with a patch of the line is in this version."""
    since = (entry.get("since") or {}).get(what)
    return since is None or (version is not None and version >= (version_tuple(since) or ()))


def resolve(
    s: Settings,
    releases: dict[str, Any],
    record: dict[str, str] | None = None,
    live_images: dict[str, str] | None = None,
    backups: dict[str, Any] | None = None,
) -> Release:
    """The release of dify_image_tag, after the upgrade rules; the companions from the catalog,
    a companion image set in a variable winning (with a notice where it differs)."""
    version = s.image_tag
    parsed = version_tuple(version)
    line = line_of(version)
    lines = releases.get("lines") or {}
    notices: list[str] = []
    entry = lines.get(line)
    known = entry is not None
    if entry is None:
        known_lines = sorted(lines, key=lambda name: version_tuple(name) or ())
        if not lines:
            # No catalog (the model used without the role's data): every companion from its variable.
            entry = {"images": {}, "components": [], "patches": [version]}
        elif not s.get("allow_unlisted_release", False):
            raise InputError(
                f"Nothing was changed. dify_image_tag {version} is of release line {line}, which this collection "
                f"does not know (known: {', '.join(known_lines)}). Use a catalogued release, or set "
                "dify_allow_unlisted_release: true together with every companion image "
                "(dify_sandbox_image, dify_plugin_daemon_image, dify_weaviate_image, ...)."
            )
        else:
            entry = lines[known_lines[-1]]
            missing = [
                f"dify_{IMAGE_VARIABLES[c]}"
                for c in (*LINE_IMAGES, *_agent_images(entry))
                if not s.get(IMAGE_VARIABLES[c])
            ]
            if missing:
                raise InputError(
                    f"Nothing was changed. dify_image_tag {version} is not a catalogued release "
                    "(dify_allow_unlisted_release is set), so its companion images must be given: "
                    f"{', '.join(missing)}."
                )
            notices.append(
                f"dify_image_tag {version}: release line {line} is not in the catalog; running it with the components "
                f"of {known_lines[-1]} and the companion images you set."
            )
    elif version not in entry.get("patches", []):
        notices.append(
            f"dify_image_tag {version} is not a catalogued patch of {line} (known: {', '.join(entry['patches'])}): "
            f"it runs with the companion images of {line}."
        )

    images = {"api": f"langgenius/dify-api:{version}", "web": f"langgenius/dify-web:{version}"}
    images.update((releases.get("common") or {}).get("images") or {})
    images.update({k: str(v).replace("{version}", version) for k, v in line_images(entry, version).items()})
    for component, var in IMAGE_VARIABLES.items():
        given = s.get(var)
        if not given:
            continue
        if images.get(component) and images[component] != given and known:
            notices.append(f"dify_{var} {given} replaces the catalog's {images[component]} for {version}.")
        images[component] = given

    # The images of the vector stores not chosen are not this installation's (nor to be mirrored).
    other_stores = {c.image for c in ALL if c.client_env and c.image and c.name != s.vector_store}
    images = {k: v for k, v in images.items() if k not in other_stores}

    components = [c for c in entry.get("components", []) if _since(entry, c, parsed)]
    # The release features run where the release has them unless switched off (Dify's compose
    # runs both by default); what is switched off is remembered (collaboration off is said).
    switched_off = []
    if not s.get("collaboration", True):
        switched_off += [c for c in components if c in COLLABORATION_COMPONENTS]
    if not s.get("agent", True):
        switched_off += [c for c in components if c in AGENT_COMPONENTS]
    components = [c for c in components if c not in switched_off]
    release = Release(
        version=version,
        line=line,
        images={k: v for k, v in images.items() if k not in ("agent_backend", "agent_local_sandbox") or
                any(a in components for a in AGENT_COMPONENTS)},
        components=components,
        agent_env=entry.get("agent_env", ""),
        agent_volumes=bool(entry.get("agent_volumes")),
        agent_api_token=_since(entry, "agent-api-token", parsed),
        known=known,
        notices=notices,
        startup_migration=dict(entry.get("startup_migration") or {}),
        notes=list(entry.get("notes") or []),
        switched_off=switched_off,
    )  # fmt: skip
    check_upgrade(s, release, entry, record, backups or {})
    if weaviate.bundled(s):
        release.weaviate_steps = weaviate_steps(s, releases, (live_images or {}).get("weaviate", ""),
                                                release.images.get("weaviate", ""))  # fmt: skip
    return release


def _agent_images(entry: dict[str, Any]) -> list[str]:
    return [c for c in ("agent_backend", "agent_local_sandbox") if c in (entry.get("images") or {})]


def check_upgrade(
    s: Settings, release: Release, entry: dict[str, Any], record: dict[str, str] | None, backups: dict[str, Any]
) -> None:
    """No downgrade below the release the database was last migrated to; the line must be one the
    recorded line may be upgraded to directly."""
    recorded_image = (record or {}).get("image", "")
    recorded = tag_of(recorded_image)
    was, wanted = version_tuple(recorded), version_tuple(release.version)
    if not recorded or was is None or wanted is None:
        return
    if wanted < was:
        taken = sorted(name for name, b in backups.items() if isinstance(b, dict) and b.get("to") == recorded)
        where = f"the backup taken before that upgrade: {taken[-1]}" if taken else "a backup taken before that upgrade"
        raise InputError(
            f"Nothing was changed. dify_image_tag {release.version} is older than {recorded}, the release the "
            f"database was last migrated to (ConfigMap {names.MIGRATION_RECORD}): Dify's migrations only go forward, "
            f"and old code on the newer schema breaks. To go back, run playbooks/restore.yml with {where} "
            f"(-e dify_restore_backup=... -e dify_restore_confirm={s.namespace})."
        )
    allowed = entry.get("upgrade_from")
    was_line = f"{was[0]}.{was[1]}"
    if release.known and allowed and was_line not in allowed:
        raise InputError(
            f"Nothing was changed. dify_image_tag {release.version}: Dify {release.line} cannot be upgraded to "
            f"directly from {recorded} ({was_line}); upgrade to one of "
            f"{', '.join(line for line in allowed if line != release.line)} first."
        )


def weaviate_of(releases: dict[str, Any], version: str) -> str:
    """The catalog's Weaviate for a Dify release ("" for a line it does not know)."""
    entry = (releases.get("lines") or {}).get(line_of(version)) or {}
    return line_images(entry, version).get("weaviate", "")


def weaviate_steps(s: Settings, releases: dict[str, Any], live: str, target: str) -> list[str]:
    """The Weaviate versions to pass through on the way from the running one to the target, one
    minor at a time (the target itself excluded); refuses a downgrade."""
    if not live or live == target:
        return []
    path = list(releases.get("weaviate_path") or [])
    tags = [tag_of(image) for image in path]
    have, want = version_tuple(tag_of(live)), version_tuple(tag_of(target))
    if have is None or want is None:
        return []
    if want < have:
        raise InputError(
            f"Nothing was changed. The bundled Weaviate runs {tag_of(live)}; {tag_of(target)} (dify_image_tag "
            f"{s.image_tag}, dify_weaviate_image) would be a downgrade, which Weaviate does not support: its data "
            f"cannot go back. Keep the running one (dify_weaviate_image: {live}) or use a Dify release whose "
            f"Weaviate is {tag_of(live)} or newer."
        )
    if want[1] - have[1] <= 1:
        return []
    steps = []
    for image, tag in zip(path, tags):
        parsed = version_tuple(tag)
        if parsed and have[:2] < parsed[:2] < want[:2]:
            steps.append(image)
    covered = {version_tuple(tag_of(i))[1] for i in steps}  # type: ignore[index]
    gaps = [m for m in range(have[1] + 1, want[1]) if m not in covered]
    if gaps:
        raise InputError(
            f"Nothing was changed. Weaviate must be upgraded one minor version at a time, from {tag_of(live)} to "
            f"{tag_of(target)}, and the catalog has no image for 1.{', 1.'.join(map(str, gaps))}: upgrade Weaviate "
            "through those first (dify_weaviate_image), or use a Dify release whose Weaviate is one minor away."
        )
    return steps


def upgrade_steps(releases: dict[str, Any], data_from: str, target: str) -> list[dict[str, Any]]:
    """The catalog's one-off upgrade steps an upgrade from data at ``data_from`` to ``target``
    needs: those whose ``crosses`` release it moves the data to or past ('' data_from: a new
    installation, which has nothing to convert)."""
    was, wanted = version_tuple(tag_of(data_from)) if data_from else None, version_tuple(target)
    if was is None or wanted is None:
        return []
    return [dict(step) for step in releases.get("upgrade_steps") or []
            if was < (version_tuple(step["crosses"]) or ()) <= wanted]  # fmt: skip
