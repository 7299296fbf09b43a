"""Is each camera topic delivering? The node's input side, without ROS: which reliability to
subscribe with, and what to tell the user when frames do not arrive or are lost on the way.

What was measured (README "It labels nothing"): with Fast DDS defaults, a raw frame larger than
64 KB travels as fragments through the *publisher's* 512 KB shared-memory segment, which reuses the
oldest buffers its readers have not taken yet. A best-effort reader that falls behind loses
fragments, so the whole frame, for good (97 of 100 VGA frames on a loaded 2-core machine); a reliable
reader asks for the missing fragments again and gets every frame. Hence `qos: auto` (reliable
whenever every publisher offers it, rosbag2's rule), and warnings that name this cause and its fixes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..paths import config_path

RELIABLE, BEST_EFFORT = 'reliable', 'best_effort'


def _profile() -> str:
    try:
        return str(config_path('fastdds_large_frames.xml'))
    except FileNotFoundError:       # no share directory found: name it as the package ships it
        return 'share/novic_ros/config/fastdds_large_frames.xml'


LOSS_FIXES = ("publish reliable (the ROS default QoS, which most camera drivers use), use the compressed "
              "transport (transport: compressed), or start the camera driver with "
              f"FASTDDS_DEFAULT_PROFILES_FILE={_profile()} (FASTRTPS_DEFAULT_PROFILES_FILE on Jazzy and Humble; "
              "it gives the publisher a 16 MB shared-memory segment)")


def choose_reliability(setting: str, offered: Sequence[str]) -> str:
    """The subscription's reliability for the `qos` parameter and the publishers' offered
    reliabilities. auto: reliable only when there are publishers and every one offers reliable (a
    reliable subscription receives nothing from a best-effort publisher); best effort otherwise,
    which matches any publisher that appears later."""
    if setting == 'reliable':
        return RELIABLE
    if setting == 'sensor_data':
        return BEST_EFFORT
    return RELIABLE if offered and all(r == RELIABLE for r in offered) else BEST_EFFORT


def describe_publishers(offered: Sequence[str]) -> str:
    if not offered:
        return 'no publisher'
    kinds = ', '.join(_words(k) for k in sorted(set(offered)))
    return f"{len(offered)} publisher{'s' * (len(offered) > 1)} ({kinds})"


@dataclass
class TopicHealth:
    """What one subscribed topic has delivered. Mutated by the node's callbacks (one executor thread)."""
    topic: str                      # resolved name of the subscription
    setting: str                    # the qos parameter: auto | sensor_data | reliable
    reliability: str = BEST_EFFORT  # of the current subscription
    offered: tuple[str, ...] = ()   # reliability of each publisher found on the topic
    frames: int = 0
    lost: int = 0                   # message_lost events: frames the middleware saw but could not deliver
    incompatible: int = 0           # publishers refused for incompatible QoS
    last_frame: float | None = None
    last_loss: float | None = None
    expecting_since: float | None = None   # since when publishers are on the topic (or the subscription is new)
    silence_warned: bool = False

    def subscribed(self, reliability: str, now: float) -> None:
        self.reliability = reliability
        self.expecting_since = now if self.offered else None
        self.silence_warned = False

    def publishers(self, offered: Sequence[str], now: float) -> None:
        if offered and not self.offered:
            self.expecting_since = now
        elif not offered:
            self.expecting_since = None
            self.silence_warned = False
        self.offered = tuple(offered)

    def frame(self, now: float) -> None:
        self.frames += 1
        self.last_frame = now
        self.silence_warned = False

    def frames_lost(self, n: int, now: float) -> None:
        self.lost += n
        self.last_loss = now

    def wanted(self) -> str:
        return choose_reliability(self.setting, self.offered)

    def switching(self) -> bool:
        """qos: auto is about to resubscribe (losses until then are expected, not worth a warning).
        Only for publishers that need another reliability: when the last one goes, the subscription
        stays as it is, so frames still queued in it are not thrown away, and a camera that comes
        back with the same QoS needs no new subscription."""
        return bool(self.offered) and self.wanted() != self.reliability

    def quiet_since(self) -> float | None:
        """Since when publishers are on the topic and no frame came; None when none are."""
        if not self.offered or self.expecting_since is None:
            return None
        return max(self.expecting_since, self.last_frame or self.expecting_since)

    def quiet_for(self, now: float) -> float | None:
        since = self.quiet_since()
        return None if since is None else now - since

    def silence(self, now: float, timeout_s: float) -> str | None:
        """The warning to log, once per silence, when publishers are on the topic but no frame came
        for `timeout_s`; None when there is nothing new to say."""
        quiet = self.quiet_for(now)
        if timeout_s <= 0 or quiet is None or quiet < timeout_s or self.silence_warned:
            return None
        self.silence_warned = True
        return (f"no frame on {self.topic} for {quiet:.0f} s although it has {describe_publishers(self.offered)} "
                f"(subscribed {_words(self.reliability)}, qos: {self.setting}): {self.likely_cause()}")

    def likely_cause(self) -> str:
        if self.reliability == RELIABLE and BEST_EFFORT in self.offered or self.incompatible and not self.frames:
            return ("a publisher offers best effort, and a reliable subscription receives nothing from it; "
                    "set qos: auto (or sensor_data)")
        since = self.quiet_since()
        if self.last_loss is not None and since is not None and self.last_loss >= since:
            return f"frames were lost in transport ({self.lost} in total); {self.loss_fix()}"
        return ("nothing it sent reached this subscription: check that the camera is streaming (ros2 topic hz), "
                "and whether its frames are raw and larger than 512 KB from a best-effort publisher, which Fast "
                f"DDS's shared memory loses under load; if so, {LOSS_FIXES}")

    def loss_fix(self) -> str:
        if self.offered and all(r == RELIABLE for r in self.offered) and self.reliability == BEST_EFFORT:
            # These publishers would resend lost fragments to a reliable subscription.
            return "the publishers are reliable: set qos: auto (or reliable), and lost fragments are resent"
        return (
            "raw frames larger than Fast DDS's default 512 KB shared-memory segment lose fragments when the "
            "subscriber falls behind, and no subscriber setting recovers them from a best-effort publisher; "
            f"{LOSS_FIXES}"
        )

    def loss_warning(self) -> str:
        return (f"{self.lost} frames lost in transport on {self.topic} so far ({describe_publishers(self.offered)}, "
                f"subscribed {_words(self.reliability)}): {self.loss_fix()}")

    def status(self, now: float, timeout_s: float, window_s: float = 10.0) -> tuple[bool, str]:
        """(a problem?, one line) for /diagnostics: silence, or frames lost within the last `window_s`."""
        if self.reliability == RELIABLE and BEST_EFFORT in self.offered and not self.switching():
            return True, (f"{self.topic}: {describe_publishers(self.offered)}; a reliable subscription receives "
                          "nothing from best-effort ones (set qos: auto)")
        quiet = self.quiet_for(now)
        if timeout_s > 0 and quiet is not None and quiet >= timeout_s:
            return True, f"{self.topic}: no frame for {quiet:.0f} s from {describe_publishers(self.offered)}"
        if self.last_loss is not None and now - self.last_loss <= window_s:
            return True, f"{self.topic}: frames lost in transport ({self.lost} in total)"
        return False, f"{self.topic}: {describe_publishers(self.offered)}, subscribed {_words(self.reliability)}"


def _words(reliability: str) -> str:
    return reliability.replace('_', ' ')
