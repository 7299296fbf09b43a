"""bench/timing.interleaved: candidates alternate; with burst, a candidate's turn is several calls
in a row of which the first is not timed (the warm steady state)."""
import time

from novic_ros.bench.timing import interleaved


def test_burst_times_the_calls_after_the_first_of_each_turn():
    order = []

    def make(name, first_ms, then_ms):
        def f():
            order.append(name)
            cold = len(order) < 2 or order[-2] != name
            time.sleep((first_ms if cold else then_ms) / 1e3)
        return f

    fa = make('a', 30, 2)
    fb = make('b', 30, 2)
    warm = interleaved({'a': fa, 'b': fb}, repeat=3, warmup=1, burst=3)
    assert order[:2] == ['a', 'b'] and order[2:5] == ['a'] * 3 and order[5:8] == ['b'] * 3
    assert len(order) == 2 + 3 * 3 * 2
    assert all(v < 15 for v in warm.values())      # the cold first call of a turn is not timed
    order.clear()
    cold = interleaved({'a': fa, 'b': fb}, repeat=3, warmup=1)
    assert len(order) == 2 + 3 * 2 and all(v >= 30 for v in cold.values())
