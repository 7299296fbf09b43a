#!/usr/bin/env bash
# The exported CMake targets of the ros-*-msgs wheels hard-code the manylinux build
# host's Python and numpy include dirs (/opt/python/cp311-cp311/...). Point them
# into this venv so rosidl can generate Python bindings for our own messages.
# Must run again after pip installs any further ros-*-msgs wheel.
set -euo pipefail
PY=${1:-python}
PYINC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$("$PY" -c "import numpy; print(numpy.get_include())")
PREFIX=$("$PY" -c "import sys; print(sys.prefix)")
# grep exits 1 when nothing is left to patch (every run after the first): not an error.
{ grep -rl "/opt/python/cp3" "$PREFIX"/share/*/cmake/*.cmake 2>/dev/null || true; } | while read -r f; do
  sed -i -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/include/python3\.[0-9]*#${PYINC}#g" \
         -e "s#/opt/python/cp3[0-9]*-cp3[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_core/include#${NPINC}#g" "$f"
done
if grep -rl "/opt/python/cp3" "$PREFIX"/share/*/cmake/*.cmake 2>/dev/null; then
  echo "fix_ros_wheel_cmake: the files above still name /opt/python; the wheel layout changed" >&2
  exit 1
fi
