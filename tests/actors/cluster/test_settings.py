"""``[cluster]``'s schema: what a newcomer who sets only the TTL gets."""

from __future__ import annotations

import pytest

from actors.cluster.settings import ClusterSettings
from actors.schema import SettingError


def test_a_shorter_ttl_alone_is_enough() -> None:
    """Found starting two daemons by hand: lease_ttl_s = 3 alone was refused, because the
    connection timeout's default (2 s) was more than half of it."""
    assert ClusterSettings(lease_ttl_s=3.0).connect_timeout == 1.5
    assert ClusterSettings().connect_timeout == 2.0
    assert ClusterSettings(lease_ttl_s=3.0, connect_timeout_s=0.5).connect_timeout == 0.5


@pytest.mark.parametrize("value", [0.05, 1.6])
def test_a_connection_timeout_set_out_of_range_is_refused(value: float) -> None:
    with pytest.raises(SettingError, match="connect_timeout_s"):
        ClusterSettings(lease_ttl_s=3.0, connect_timeout_s=value)
