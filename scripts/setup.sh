#!/usr/bin/env bash
# Bare Debian + Python 3.11 machine -> .venv that is a ROS 2 Kilted prefix, plus the colcon-built
# workspace in install/. Idempotent: every step checks before it acts, so a second run only checks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PY=${PYTHON:-python3.11}
say() { printf '[setup] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  say "need root for: $*"; exit 1; fi; }

# 1. Build tools the interface generators need.
missing=()
for tool in cmake gcc g++ make; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing build tools (${missing[*]})"
  as_root apt-get update -qq
  as_root apt-get install -y -qq cmake g++ make
fi

# Photos that Debian ships: backgrounds and alpha cut-outs for the synthetic sequences (demo, training).
assets=(tuxpaint-stamps-default lomiri-wallpapers-16.04)
if ! dpkg -s "${assets[@]}" >/dev/null 2>&1; then
  say "installing synthetic-sequence photos (${assets[*]})"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${assets[@]}"
fi

# 2. The virtualenv and its pinned packages (reinstalled only when requirements.txt changes).
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  say "installing requirements.txt into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt
  # torch must be the CPU build: a CUDA wheel here means the local wheel was not picked up.
  "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.version.cuda is not None)" \
    || { say "a CUDA torch build was installed; expected the CPU wheel torch==2.13.0"; exit 1; }
  echo "$want" > "$VENV/.requirements.sha256"
fi

# The package itself, editable, for its console scripts (grm-track, grm-eval, grm-tracker-node, ...).
if [ ! -f "$VENV/.setup-py-stamp" ] || [ setup.py -nt "$VENV/.setup-py-stamp" ]; then
  say "installing grm_ros (editable) into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
    --config-settings editable_mode=compat -e .
  touch "$VENV/.setup-py-stamp"
fi

# 3. The include paths baked into the wheels' CMake targets must exist on this machine.
link() {  # link TARGET NAME: make NAME point at TARGET unless it already resolves there
  if [ "$(readlink -f "$2" 2>/dev/null)" != "$(readlink -f "$1")" ]; then
    if [ -e "$2" ] && [ ! -L "$2" ]; then say "$2 exists and is not a link; leaving it"; return; fi
    say "linking $2 -> $1"
    as_root mkdir -p "$(dirname "$2")"
    as_root ln -sfn "$1" "$2"
  fi
}
link "$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['include'])")" \
  /opt/python/cp311-cp311/include/python3.11
NUMPY_INC=/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include
link "$("$VENV/bin/python" -c "import numpy; print(numpy.get_include())")" "$NUMPY_INC"

# 4. colcon build, when any input of the install tree is newer than the last build.
paths=(.)
if ! "$VENV/bin/python" -c "import vision_msgs.msg" 2>/dev/null; then
  paths+=(test/fixtures/vision_msgs)  # no real vision_msgs: build the field-for-field fixture
fi
stamp=install/.setup-stamp
inputs=(CMakeLists.txt package.xml msg srv scripts/tracker_node launch config grm_ros test/fixtures/vision_msgs)
if [ ! -f "$stamp" ] || [ -n "$(find "${inputs[@]}" -newer "$stamp" -not -name '*.pyc' -print -quit)" ] \
   || [ "$(cat "$stamp")" != "${paths[*]}" ]; then
  say "colcon build (${paths[*]})"
  (
    export VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH CMAKE_PREFIX_PATH=$VENV AMENT_PREFIX_PATH=$VENV
    colcon --log-base log build --paths "${paths[@]}" --event-handlers console_cohesion- summary+ \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF \
      -DPython3_NumPy_INCLUDE_DIR="$NUMPY_INC"  # CMake refuses the venv path: it lies inside the source tree
  )
  echo "${paths[*]}" > "$stamp"
fi
say "ready: source scripts/env.sh"
