"""The settings thread of live parameter changes (ros/live_settings.ChangeBuilder, ROS-free): changes
are built one after the other in the order accepted; a caller gets the outcome of a quick one and
detaches from a slow one; only a detached failure is reported back; diagnostics say what is pending."""
from __future__ import annotations

import threading
import time

from novic_ros.params import NodeParams
from novic_ros.ros.live_settings import ChangeBuilder, needs_building


def test_changes_are_built_in_order_and_a_slow_one_detaches():
    order, release, reported = [], threading.Event(), []

    def work(change):
        if change.updates.get('slow'):
            release.wait(10)
        if change.updates.get('bad'):
            raise ValueError('bad value')
        order.append(change.seq)

    builder = ChangeBuilder(work, reported.append)
    quick = builder.submit({'top_k': 1})
    assert quick.claim(5) and quick.error is None                   # answered with its outcome
    failing = builder.submit({'bad': 1})
    assert failing.claim(5) and failing.error == 'bad value' and reported == []    # refused, not reported
    slow = builder.submit({'slow': 1, 'labels': 1})
    after = builder.submit({'bad': 1, 'mode': 1})
    assert not slow.claim(0.05) and not after.claim(0.05)           # detached: accepted, pending
    d = builder.diagnostics(time.monotonic())
    assert (
        d['parameter_change'].startswith('pending for ')
        and 'labels' in d['parameter_change']
        and '(2 requests)' in d['parameter_change']
    )
    assert builder.touched_after(slow) == {'bad', 'mode'}
    release.set()
    end = time.monotonic() + 10
    while builder.pending() and time.monotonic() < end:
        time.sleep(0.01)
    assert order == [quick.seq, slow.seq]
    assert reported == [after] and builder.take_failed() == [after] and builder.take_failed() == []
    assert 'bad value' in builder.diagnostics(time.monotonic())['parameter_change_failed']
    assert builder.diagnostics(time.monotonic())['parameter_change'] == 'none'
    builder.close()


def test_only_prompted_label_work_needs_the_settings_thread():
    generate, prompted = NodeParams(), NodeParams().updated(mode='prompted', labels=['cup'])
    assert not needs_building(generate, ['labels', 'labels_file', 'top_k'])
    assert needs_building(prompted, ['labels']) and needs_building(prompted, ['prompt_template'])
    assert not needs_building(prompted, ['top_k', 'rate_hz'], labels_now=10)
    assert needs_building(prompted, ['top_k'], labels_now=5000)     # a new classifier over a long list
