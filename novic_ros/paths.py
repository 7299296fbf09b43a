"""Where the package's data (config/, models/, launch/) lives.

In a source checkout (and an editable install) that is the repository root; in a colcon or
apt install it is share/novic_ros, found through the ament index; in a plain pip install (a
runtime install on a robot) it is share/novic_ros under the environment's prefix.
NOVIC_ROS_SHARE overrides them all.
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGE = 'novic_ros'


@lru_cache(maxsize=1)
def share_dir() -> Path:
    env = os.environ.get('NOVIC_ROS_SHARE')
    if env:
        return Path(env)
    source_root = Path(__file__).resolve().parent.parent
    if (source_root / 'config' / 'models.yaml').is_file():
        return source_root
    prefix = Path(sys.prefix) / 'share' / PACKAGE          # where pip puts the package's data_files
    if (prefix / 'config' / 'models.yaml').is_file():
        return prefix
    try:
        # Optional: only an ament (colcon/apt) install has the index.
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except Exception as e:  # not installed through ament, or ament_index missing
        raise FileNotFoundError(
            f"cannot find the {PACKAGE} share directory (config/models.yaml): not in a source checkout "
            f"({source_root}) and not in the ament index ({e}); set NOVIC_ROS_SHARE") from e


def config_path(*parts: str) -> Path:
    return share_dir().joinpath('config', *parts)


# The variable Fast DDS reads its default XML profile from: FASTDDS_DEFAULT_PROFILES_FILE since Fast
# DDS 3 (ROS 2 Kilted), FASTRTPS_DEFAULT_PROFILES_FILE in Fast DDS 2 (Jazzy, Humble), which ignores the
# new name. Kilted's rmw reads the old name too, but warns on every start that it is deprecated.
FASTDDS_PROFILE_ENVS = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')


def _fastdds_2() -> bool:
    """Whether the Fast DDS here is 2.x: the ros-fastrtps wheel (Jazzy's; Kilted's is ros-fastdds), or
    apt ROS of a distribution that ships it."""
    try:
        version('ros-fastrtps')
        return True
    except PackageNotFoundError:
        return os.environ.get('ROS_DISTRO', '') in ('humble', 'iron', 'jazzy')


def use_large_frames_profile(environ=os.environ) -> None:
    """Give the processes started with `environ` the package's Fast DDS profile (a 16 MB shared-memory
    segment, config/fastdds_large_frames.xml), unless it names a profile already (then that one), under
    the name the Fast DDS here reads (both names for Fast DDS 2)."""
    chosen = next((environ[k] for k in FASTDDS_PROFILE_ENVS if environ.get(k)), None)
    for key in FASTDDS_PROFILE_ENVS if _fastdds_2() else FASTDDS_PROFILE_ENVS[:1]:
        environ[key] = chosen or str(config_path('fastdds_large_frames.xml'))


def without_fastdds_profile(environ=os.environ) -> None:
    """Clear any Fast DDS profile from `environ` (both names): the middleware's defaults, as a robot has them."""
    for key in FASTDDS_PROFILE_ENVS:
        environ.pop(key, None)


def cache_dir() -> Path:
    """User cache for derived files (toy renders, text-embedding caches, exported graphs)."""
    base = os.environ.get('NOVIC_ROS_CACHE') or os.path.join(
        os.environ.get('XDG_CACHE_HOME', os.path.expanduser('~/.cache')), PACKAGE)
    return Path(base)
