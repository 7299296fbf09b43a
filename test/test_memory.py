"""ros/memory.py: what a configure loaded is frozen out of the cyclic collector's scans, a cleanup
collects it again (cycles included), and CollectorPauses counts what the collector did."""
import gc
import weakref

from novic_ros.ros.memory import CollectorPauses, release_freed_memory, settle_loaded


class _Node:
    pass


def _cycle():
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return a


def test_settle_freezes_what_is_alive_and_release_collects_frozen_cycles():
    gc.unfreeze()
    try:
        loaded = [_Node() for _ in range(5000)]
        cycle = _cycle()
        gone = weakref.ref(cycle)
        settle_loaded()
        assert gc.get_freeze_count() >= len(loaded)
        del cycle
        gc.collect()
        assert gone() is not None           # frozen: full collections no longer look at it
        release_freed_memory()
        assert gc.get_freeze_count() == 0 and gone() is None
        assert len(loaded) == 5000
    finally:
        gc.unfreeze()


def test_collector_pauses_counts_full_collections_and_the_longest_pause():
    pauses = CollectorPauses()
    try:
        gc.collect(0)
        assert pauses.full == 0 and pauses.longest_ms > 0
        gc.collect()
        gc.collect()
        assert pauses.full == 2
        d = pauses.diagnostics()
        assert d['gc_full_collections'] == '2' and 0 < float(d['gc_longest_pause_ms']) <= pauses.longest_ms + 0.05
        pauses.reset()
        assert pauses.diagnostics()['gc_full_collections'] == '0'
    finally:
        pauses.close()
    gc.collect()
    assert pauses.full == 0                 # closed: no longer called
