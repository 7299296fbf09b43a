#!/usr/bin/env bash
# Build every interface package under SRC_DIR with plain cmake and install it into
# the venv prefix ($VIRTUAL_ENV), which is also the ament prefix of the ROS wheels.
# Nothing then has to be set at run time. No dependency ordering between packages.
set -euo pipefail
SRC=${1:?usage: build_interfaces.sh SRC_DIR [BUILD_DIR]}
V=${VIRTUAL_ENV:?activate the venv or set VIRTUAL_ENV}
BUILD=${2:-$V/build-interfaces}
"$(dirname "$0")/fix_ros_wheel_cmake.sh" "$V/bin/python"
# ament_index_get_resources() reads AMENT_PREFIX_PATH and ignores CMAKE_PREFIX_PATH.
export AMENT_PREFIX_PATH="$V${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$V/bin:$PATH"
for pkg in "$SRC"/*/; do
  [ -f "$pkg/package.xml" ] || continue
  name=$(basename "$pkg"); mkdir -p "$BUILD/$name"
  log="$BUILD/$name.log"
  if ! { cmake -S "$pkg" -B "$BUILD/$name" -DCMAKE_PREFIX_PATH="$V" -DCMAKE_INSTALL_PREFIX="$V" \
           -DPython3_EXECUTABLE="$V/bin/python" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release \
         && cmake --build "$BUILD/$name" -j"$(nproc)" \
         && cmake --install "$BUILD/$name"; } >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "building interface package $name failed; full log: $log" >&2
    exit 1
  fi
done
