"""The node's input side without ROS: the reliability qos: auto picks, and what the node says when
publishers are there but frames are not, or frames are lost on the way."""
import pytest

from novic_ros.ros.input_health import BEST_EFFORT, RELIABLE, TopicHealth, choose_reliability, describe_publishers


@pytest.mark.parametrize('setting, offered, wanted', [
    ('auto', [], BEST_EFFORT),                       # nobody yet: best effort matches whoever comes
    ('auto', [RELIABLE], RELIABLE),                  # lost fragments get resent
    ('auto', [RELIABLE, RELIABLE], RELIABLE),
    ('auto', [RELIABLE, BEST_EFFORT], BEST_EFFORT),  # reliable would shut the best-effort one out
    ('auto', [BEST_EFFORT], BEST_EFFORT),
    ('sensor_data', [RELIABLE], BEST_EFFORT),
    ('reliable', [BEST_EFFORT], RELIABLE),
])
def test_qos_auto_matches_the_publishers_like_rosbag2(setting, offered, wanted):
    assert choose_reliability(setting, offered) == wanted


def test_describe_publishers():
    assert describe_publishers([]) == 'no publisher'
    assert describe_publishers([RELIABLE]) == '1 publisher (reliable)'
    assert describe_publishers([RELIABLE, BEST_EFFORT]) == '2 publishers (best effort, reliable)'


def health(setting='auto', offered=(RELIABLE,), reliability=None, now=0.0) -> TopicHealth:
    h = TopicHealth('/camera/image_raw', setting)
    h.publishers(offered, now)
    h.subscribed(reliability or h.wanted(), now)
    return h


def test_silence_is_warned_once_per_silence_and_only_with_publishers():
    h = health()
    assert h.silence(4.9, 5.0) is None
    text = h.silence(5.0, 5.0)
    assert text.startswith('no frame on /camera/image_raw for 5 s although it has 1 publisher (reliable)')
    assert 'check that the camera is streaming' in text
    assert h.silence(60.0, 5.0) is None               # once
    h.frame(61.0)
    assert h.silence(65.0, 5.0) is None
    assert h.silence(66.0, 5.0) is not None            # a new silence, a new warning
    h.publishers((), 70.0)
    assert h.silence(100.0, 5.0) is None               # no publisher: nothing to expect
    assert h.status(100.0, 5.0) == (False, '/camera/image_raw: no publisher, subscribed reliable')
    assert health().silence(100.0, 0.0) is None        # frame_timeout_s 0: never


def test_the_likely_cause_names_the_fix():
    incompatible = health('reliable', (BEST_EFFORT,))
    bad, line = incompatible.status(0.5, 5.0)        # in /diagnostics at once, not after frame_timeout_s
    assert bad and 'best-effort' in line and 'set qos: auto' in line
    assert 'set qos: auto' in incompatible.silence(5.0, 5.0)
    lossy = health('auto', (BEST_EFFORT,))
    lossy.frames_lost(12, 1.0)
    text = lossy.silence(5.0, 5.0)
    assert 'frames were lost in transport (12 in total)' in text
    assert all(fix in text for fix in ('publish reliable', 'transport: compressed', 'fastdds_large_frames.xml'))
    # A loss before the last frame is not why no frame came since.
    earlier = health('auto', (RELIABLE,))
    earlier.frames_lost(3, 1.0)
    earlier.frame(2.0)
    assert 'check that the camera is streaming' in earlier.silence(8.0, 5.0)
    # Reliable publishers and a best-effort subscription chosen by hand: the fix is the subscription.
    forced = health('sensor_data', (RELIABLE,))
    forced.frames_lost(3, 1.0)
    assert 'set qos: auto (or reliable)' in forced.loss_warning()
    assert not forced.switching()


def test_auto_is_switching_while_it_waits_to_resubscribe():
    h = health('auto', ())                              # subscribed best effort: nobody there
    h.publishers((RELIABLE,), 1.0)
    assert h.switching() and h.wanted() == RELIABLE     # the node resubscribes on its next check
    h.subscribed(RELIABLE, 1.1)
    assert not h.switching()
    h.publishers((), 2.0)                               # the camera went: keep the subscription (and what it holds)
    assert not h.switching()
    h.publishers((BEST_EFFORT,), 3.0)                   # a best-effort one came: reliable would hear nothing
    assert h.switching() and h.wanted() == BEST_EFFORT


def test_loss_shows_in_diagnostics_while_recent():
    h = health('auto', (BEST_EFFORT,))
    h.frames_lost(5, 10.0)
    h.frame(14.0)
    assert h.status(15.0, 5.0) == (True, '/camera/image_raw: frames lost in transport (5 in total)')
    h.frame(20.5)
    assert h.status(21.0, 5.0)[0] is False             # 11 s later: old news, the counter keeps the total
    assert h.lost == 5
