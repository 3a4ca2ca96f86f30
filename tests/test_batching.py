"""Pure policy: batch size tiers and how many drain messages to send."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flask_audit.config import DEFAULT_BATCH_TIERS, DEFAULT_TRAFFIC_TIERS, parse_tiers
from flask_audit.pipeline.batching import batch_size_for, batch_size_for_load, drains_to_send


@pytest.mark.parametrize(
    ("depth", "size"),
    [(0, 100), (234, 100), (999, 100), (1000, 300), (4999, 300), (5000, 1000), (10000, 1000)],
)
def test_original_design_tiers(depth, size):
    assert batch_size_for(depth, DEFAULT_BATCH_TIERS) == size


def test_tiers_parse_from_the_environment_form():
    assert parse_tiers("1000:300,0:50") == ((0, 50), (1000, 300))


@pytest.mark.parametrize(
    ("depth", "size", "pending", "max_pending", "expected"),
    [
        (0, 100, 0, 8, 0),
        (50, 100, 0, 8, 1),
        (250, 100, 0, 8, 3),
        (250, 100, 2, 8, 1),
        (250, 100, 5, 8, 0),
        (100000, 1000, 0, 8, 8),
        (100000, 1000, 8, 8, 0),
    ],
)
def test_drains_cover_the_depth_and_stay_bounded(depth, size, pending, max_pending, expected):
    assert drains_to_send(depth, size, pending, max_pending) == expected


def test_a_depth_below_the_first_tier_gets_the_first_tiers_size():
    tiers = parse_tiers("1000:300,100:50")
    assert [batch_size_for(depth, tiers) for depth in (0, 99, 100, 999, 1000)] == [50, 50, 50, 50, 300]


@pytest.mark.parametrize(
    ("depth", "per_minute", "size"),
    [
        (0, 0, 100),
        (50, 999, 100),
        (50, 1000, 300),  # the design's 1K-10K requests a minute
        (50, 9999, 300),
        (50, 10000, 1000),  # 10K a minute and more
        (1200, 0, 300),  # the depth alone, as before
        (1200, 20000, 1000),  # the traffic's size is larger
        (6000, 500, 1000),  # the depth's size is larger
    ],
)
def test_the_batch_is_the_larger_of_the_depths_and_the_traffics_size(depth, per_minute, size):
    assert batch_size_for_load(depth, per_minute, DEFAULT_BATCH_TIERS, DEFAULT_TRAFFIC_TIERS) == size


@given(st.integers(0, 10**7), st.integers(0, 10**7))
def test_traffic_never_makes_a_batch_smaller_than_the_depth_asks(depth, per_minute):
    size = batch_size_for_load(depth, per_minute, DEFAULT_BATCH_TIERS, DEFAULT_TRAFFIC_TIERS)
    assert size >= batch_size_for(depth, DEFAULT_BATCH_TIERS)
    assert size >= batch_size_for(per_minute, DEFAULT_TRAFFIC_TIERS)
    assert size in (100, 300, 1000)


def test_a_single_traffic_tier_leaves_the_depth_alone_in_charge():
    off = parse_tiers("0:100", key="AUDIT_TRAFFIC_TIERS")
    assert [batch_size_for_load(d, 10**6, DEFAULT_BATCH_TIERS, off) for d in (10, 1000, 5000)] == [
        100,
        300,
        1000,
    ]
