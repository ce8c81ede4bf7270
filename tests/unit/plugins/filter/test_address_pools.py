"""MetalLB address pools are checked before anything changes."""

from __future__ import annotations

import pytest

from ansible_collections.dify_ce.kubernetes.plugins.filter.address_pools import address_pool_problems


def test_good_pools_have_no_problems():
    pools = [
        {"name": "dify", "addresses": ["10.0.0.50-10.0.0.59", "10.0.1.0/28"], "auto_assign": False},
        {"name": "other", "addresses": ["10.0.2.0/24", "fd00::/120"], "avoid_buggy_ips": True},
    ]
    assert address_pool_problems(pools) == []


@pytest.mark.parametrize(
    ("pools", "words"),
    [
        ([{"name": "dify", "addresses": ["10.0.0.300/24"]}], "is neither a CIDR"),
        ([{"name": "dify", "addresses": ["10.0.0.9-10.0.0.1"]}], "ends before it starts"),
        ([{"name": "dify", "addresses": ["10.0.0.1-fd00::1"]}], "mixes IPv4 and IPv6"),
        ([{"name": "dify", "addresses": ["10.0.0.7"]}], "single address"),
        ([{"name": "dify", "addresses": []}], "non-empty list"),
        ([{"name": "Dify", "addresses": ["10.0.0.0/30"]}], "lowercase DNS label"),
        ([{"name": "a", "addresses": ["10.0.0.0/30"]}, {"name": "a", "addresses": ["10.1.0.0/30"]}], "used twice"),
        ([{"name": "a", "addresses": ["10.0.0.0/24"]}, {"name": "b", "addresses": ["10.0.0.128-10.0.0.130"]}],
         "'10.0.0.0/24' (metallb_address_pools pool 'a') overlaps '10.0.0.128-10.0.0.130'"),
        ([{"name": "a", "addresses": ["10.0.0.0/30"], "autoassign": True}], "unknown keys ['autoassign']"),
        ("10.0.0.0/24", "must be a list"),
    ],
)  # fmt: skip
def test_problems_name_the_variable_and_the_pool(pools, words):
    problems = address_pool_problems(pools)
    assert any(words in p for p in problems), problems
    assert all("metallb_address_pools" in p for p in problems)


def test_adjacent_ranges_do_not_overlap():
    pools = [{"name": "a", "addresses": ["10.0.0.0/25"]}, {"name": "b", "addresses": ["10.0.0.128/25"]}]
    assert address_pool_problems(pools) == []
