"""Pure policy: batch size tiers and how many drain messages to send."""

import pytest

from flask_audit.config import DEFAULT_BATCH_TIERS, parse_tiers
from flask_audit.pipeline.batching import batch_size_for, drains_to_send


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
