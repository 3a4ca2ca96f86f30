"""Pure policy: from queue depth to batch size and to how many drain messages to send."""

from __future__ import annotations

import math
from collections.abc import Sequence


def batch_size_for(depth: int, tiers: Sequence[tuple[int, int]]) -> int:
    """The batch size of the highest tier whose starting depth ``depth`` has reached.

    ``tiers`` are (starting depth, batch size) pairs sorted by depth, as ``parse_tiers`` returns.
    """
    size = tiers[0][1]
    for start, tier_size in tiers:
        if depth >= start:
            size = tier_size
    return size


def batch_size_for_load(
    depth: int,
    per_minute: int,
    depth_tiers: Sequence[tuple[int, int]],
    traffic_tiers: Sequence[tuple[int, int]],
) -> int:
    """The larger of what the queue's depth calls for and what the traffic does (events stored
    in the last minute), as the original design scales its batches by both.

    A busy app drains in fewer, larger batches even while the drain keeps the queue short: each
    batch costs a Dramatiq message, a claim, a transaction and a settle whatever its size, so at
    thousands of events a second batches of 300 cost the pipeline more per event than batches
    of 1,000 (see README, Performance). A quiet app's batches stay as small as its queue.
    """
    return max(batch_size_for(depth, depth_tiers), batch_size_for(per_minute, traffic_tiers))


def drains_to_send(depth: int, batch_size: int, pending: int, max_pending: int) -> int:
    """How many drain messages to add so the pending ones cover the depth, never past max_pending.

    Drain messages carry no events, so keeping them bounded keeps Dramatiq's queue from growing
    with traffic, also while every worker is down.
    """
    if depth <= 0:
        return 0
    wanted = min(math.ceil(depth / batch_size), max_pending)
    return max(0, wanted - pending)
