"""novic_node --help, answered without ROS: the parameters from the one table (params.PARAMS), so
`novic_node --help` works in a runtime install before ROS 2 is sourced, and the one line that says
how to get rclpy when it is missing."""
from __future__ import annotations

from ..params import PARAMS

NO_RCLPY = ("novic_node needs ROS 2's rclpy, which this Python cannot import: source your ROS 2 install "
            "(source /opt/ros/$ROS_DISTRO/setup.bash) or pip install -r requirements-ros.txt (README: Install)")


def wants_help(argv: list[str]) -> bool:
    """True when -h/--help comes before --ros-args (after it, the words belong to ROS)."""
    ours = argv[:argv.index('--ros-args')] if '--ros-args' in argv else argv
    return bool({'-h', '--help'} & set(ours))


def usage() -> str:
    """How to start novic_node and every parameter: type, default, range or choices, live or not."""
    lines = ['usage: novic_node [--help] [--ros-args -p NAME:=VALUE ... --params-file FILE -r image:=TOPIC]',
             '', 'Names what the camera on ~/image sees; publishes vision_msgs on /novic/labels (README.md).',
             '', 'parameters (live: changes apply while running; others need a restart):']
    for p in PARAMS:
        rng = ', '.join(map(str, p.choices)) if p.choices else (f"[{p.min}, {p.max}]" if p.min is not None else '')
        lines.append(f"  {p.name} ({p.type.__name__}, default {p.default!r}{', ' + rng if rng else ''}"
                     f"{', live' if p.live else ''}): {p.description}")
    return '\n'.join(lines)
