# Copyright: Dify CE Kubernetes maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter address_pool_problems: what is wrong with MetalLB address pools, before any change."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

DOCUMENTATION = r"""
name: address_pool_problems
short_description: Problems of MetalLB address pool definitions
version_added: 0.1.0
author:
  - Dify CE Kubernetes maintainers (@dify-ce)
description:
  - Checks a list of pools (C(name), C(addresses), C(auto_assign), C(avoid_buggy_ips)) and returns a
    list of problems, each naming the variable and the pool; an empty list means the pools are fine.
  - Addresses are CIDRs (V(10.0.0.0/28)) or ranges (V(10.0.0.50-10.0.0.59)); ranges and networks
    of all pools must not overlap.
options:
  _input:
    description: The pools.
    type: list
    elements: dict
    required: true
  variable:
    description: Name of the variable, for the messages.
    type: str
    default: metallb_address_pools
"""

EXAMPLES = r"""
- name: Refuse overlapping pools
  ansible.builtin.assert:
    that: metallb_address_pools | dify_ce.kubernetes.address_pool_problems | length == 0
"""

RETURN = r"""
_value:
  description: Problems, empty when the pools are fine.
  type: list
  elements: str
"""

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_KEYS = {"name", "addresses", "auto_assign", "avoid_buggy_ips"}


def address_span(text: str) -> tuple[int, int, int] | str:
    """(IP version, first, last) of a CIDR or range, or why it is neither."""
    text = str(text).strip()
    try:
        if "-" in text:
            first_text, last_text = (part.strip() for part in text.split("-", 1))
            first, last = ipaddress.ip_address(first_text), ipaddress.ip_address(last_text)
            if first.version != last.version:
                return "mixes IPv4 and IPv6"
            if int(first) > int(last):
                return "ends before it starts"
            return first.version, int(first), int(last)
        if "/" in text:
            network = ipaddress.ip_network(text, strict=False)
            return network.version, int(network.network_address), int(network.broadcast_address)
        ipaddress.ip_address(text)
        return "is a single address; write it as a /32 (or /128) network"
    except ValueError:
        return "is neither a CIDR (10.0.0.0/28) nor a range (10.0.0.50-10.0.0.59)"


def address_pool_problems(pools: Any, variable: str = "metallb_address_pools") -> list[str]:
    if not isinstance(pools, list):
        return [f"{variable} must be a list of pools"]
    problems: list[str] = []
    spans: list[tuple[int, int, int, str, str]] = []
    names: set[str] = set()
    for index, pool in enumerate(pools):
        where = f"{variable}[{index}]"
        if not isinstance(pool, dict):
            problems.append(f"{where} must be a dict with name and addresses")
            continue
        name = pool.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{where}.name {name!r} must be a lowercase DNS label")
        elif name in names:
            problems.append(f"{where}.name {name!r} is used twice")
        else:
            names.add(name)
            where = f"{variable} pool {name!r}"
        unknown = sorted(set(pool) - _KEYS)
        if unknown:
            problems.append(f"{where} has unknown keys {unknown} (known: {sorted(_KEYS)})")
        addresses = pool.get("addresses")
        if not isinstance(addresses, list) or not addresses:
            problems.append(f"{where}.addresses must be a non-empty list of CIDRs or ranges")
            continue
        for text in addresses:
            span = address_span(text)
            if isinstance(span, str):
                problems.append(f"{where} address {text!r} {span}")
            else:
                spans.append((*span, str(text), where))
    spans.sort()
    for (v1, _f1, l1, t1, w1), (v2, f2, _l2, t2, w2) in zip(spans, spans[1:]):
        if v1 == v2 and f2 <= l1:
            problems.append(f"{variable}: {t1!r} ({w1}) overlaps {t2!r} ({w2})")
    return problems


class FilterModule:
    def filters(self) -> dict:
        return {"address_pool_problems": address_pool_problems}
