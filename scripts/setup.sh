#!/usr/bin/env bash
# Idempotent set-up of a development/demo environment from a fresh clone:
#   1. Debian packages: cmake + g++ (build our interface package), wordnet-base (noun
#      dictionary), fonts-noto-color-emoji (the toy world's pictograms), chromium (the browser test of report.html);
#   2. .venv with the requirements at the versions of requirements-lock.txt (ROS 2 Kilted from PyPI wheels, torch, open_clip, ...);
#   3. the message subsets in interfaces/ (vision_msgs, bond, foxglove_msgs, ffmpeg_image_transport_msgs:
#      not on PyPI) built into .venv;
#   4. novic_ros itself, editable, with its console scripts in .venv/bin.
# Each step is skipped when its inputs have not changed since it last ran (stamp files in .venv).
# NOVIC_ROS_DISTRO=jazzy builds .venv-jazzy instead: ROS 2 Jazzy's wheels (requirements-ros-jazzy.txt)
# and the runtime requirements only, no torch (make test-jazzy runs the node tests there on a bundle).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DISTRO=${NOVIC_ROS_DISTRO:-kilted}
case "$DISTRO" in
  kilted) VENV=${NOVIC_VENV:-$ROOT/.venv} ;;
  jazzy) VENV=${NOVIC_VENV:-$ROOT/.venv-jazzy} ;;
  *) echo "NOVIC_ROS_DISTRO=$DISTRO: the wheels here are kilted (default) or jazzy" >&2; exit 1 ;;
esac
PYTHON=${PYTHON:-python3}
cd "$ROOT"

say() { printf '[setup] %s\n' "$*"; }
stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
# pip prints a harmless "Location ... is ignored" line for every ROS wheel; hide them.
# grep exits 1 when pip printed nothing else; pip's own failure still stops the script (pipefail).
quiet_pip() { "$VENV/bin/pip" "$@" 2>&1 | { grep -v "is ignored" || true; }; }

# 1. Debian packages -----------------------------------------------------------
APT_PKGS=(cmake g++ wordnet-base fonts-noto-color-emoji chromium)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if ! $SUDO apt-get install -y -q "${missing[@]}" >/tmp/novic-apt.log 2>&1; then
    $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q "${missing[@]}" >/tmp/novic-apt.log 2>&1 \
      || { echo "apt-get install ${missing[*]} failed; see /tmp/novic-apt.log" >&2; exit 1; }
  fi
fi

# 2. Virtual environment -------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
  ver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$ver" != "3.11" ]; then
    echo "Python 3.11 is needed (the ROS 2 wheels on PyPI, Kilted and Jazzy, are cp311); $PYTHON is $ver." \
      "Set PYTHON=/path/to/python3.11." >&2
    exit 1
  fi
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
req_stamp=$(stamp_of requirements-runtime.txt requirements-eval.txt requirements-core.txt requirements-ros.txt \
  requirements.txt requirements-openvino.txt requirements-ray.txt requirements-dev.txt requirements-lock.txt \
  requirements-ros-jazzy.txt)
if [ "$DISTRO" = jazzy ] && [ "$(cat "$VENV/.novic-requirements" 2>/dev/null)" != "$req_stamp" ]; then
  say "installing ROS 2 Jazzy wheels and the runtime requirements (no torch; first run: about 30 s)"
  # The lock's ros-* pins are Kilted's, under the same names: constrain everything else by it.
  grep -v '^ros-' requirements-lock.txt > "$VENV/.novic-lock-without-ros.txt"
  quiet_pip install -q -r requirements-ros-jazzy.txt -r requirements-runtime.txt -c "$VENV/.novic-lock-without-ros.txt"
  "$VENV/bin/python" -c "import rclpy, onnxruntime, lifecycle_msgs" \
    || { echo "rclpy (Jazzy) or onnxruntime does not import in $VENV" >&2; exit 1; }
  rm -f "$VENV/.novic-interfaces"
  echo "$req_stamp" > "$VENV/.novic-requirements"
fi
if [ "$(cat "$VENV/.novic-requirements" 2>/dev/null)" != "$req_stamp" ]; then
  say "installing pinned requirements (first run: about 2 minutes)"
  # The requirement files hold ranges; the lock file picks the exact versions CI runs.
  quiet_pip install -q -r requirements-dev.txt -c requirements-lock.txt
  "$VENV/bin/python" -c "import torch, torchvision, open_clip, rclpy" \
    || { echo "the installed torch/torchvision/open_clip/rclpy do not import together; see DEVELOPERS.md" >&2; exit 1; }
  rm -f "$VENV/.novic-interfaces"   # new message wheels need the cmake fix again
  echo "$req_stamp" > "$VENV/.novic-requirements"
fi

# 3. Interface package(s) ------------------------------------------------------
if_stamp=$(find interfaces -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.novic-interfaces" 2>/dev/null)" != "$if_stamp" ]; then
  say "building interfaces/ into $VENV (about 1 min)"
  VIRTUAL_ENV="$VENV" bash scripts/build_interfaces.sh interfaces "$VENV/build-interfaces"
  echo "$if_stamp" > "$VENV/.novic-interfaces"
fi

# 4. novic_ros itself ----------------------------------------------------------
pkg_stamp=$(stamp_of setup.py setup.cfg)
if [ "$(cat "$VENV/.novic-package" 2>/dev/null)" != "$pkg_stamp" ]; then
  say "installing novic_ros (editable)"
  quiet_pip install -q --no-deps --no-build-isolation -e .
  echo "$pkg_stamp" > "$VENV/.novic-package"
fi
say "ready: $VENV"
