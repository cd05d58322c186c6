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

apt_need() {  # apt_need WHAT PACKAGE...: install those of the Debian packages that are missing
  local what=$1; shift
  if ! dpkg -s "$@" >/dev/null 2>&1; then
    say "installing $what ($*)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
  fi
}
# Photos that Debian ships: backgrounds and alpha cut-outs for the synthetic sequences (demo, training).
apt_need "synthetic-sequence photos" tuxpaint-stamps-default lomiri-wallpapers-16.04
# Debian's chromium and its driver: the operator page's test runs in a real headless browser.
apt_need "a headless browser for the operator page's test" chromium chromium-driver

# 2. The virtualenv and its pinned packages (reinstalled only when requirements.txt changes).
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
# torch for this machine: the CUDA build where a GPU answers (nvidia-smi), the CPU build elsewhere;
# GRM_TORCH=cpu|cuda overrides. PyPI's x86_64 Linux torch is the CUDA build, so without a GPU a "+cpu"
# wheel is taken from pip's own sources when they have one (find-links, a local index), else from
# PyTorch's CPU index. A torch already in .venv that matches the pin is kept, whichever build it is.
flavour=${GRM_TORCH:-$(nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)}
torch_pin=$(grep -m1 '^torch==' requirements.txt)
want=$(sha256sum requirements.txt | cut -d' ' -f1)-$flavour
if [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  pip_args=()
  if [ "$flavour" = cpu ] && ! "$VENV/bin/python" -m pip install -q --dry-run --no-index --no-deps \
      --ignore-installed --report - "$torch_pin" 2>/dev/null | grep -q '"version": "[^"]*+cpu"'; then
    pip_args+=(--extra-index-url "${GRM_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}")
  fi
  say "installing requirements.txt into $VENV (torch: $flavour build)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${pip_args[@]}" -r requirements.txt
  "$VENV/bin/python" - "$flavour" <<'PYEOF' || exit 1
import sys

import torch

build = "cpu" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
if sys.argv[1] == "cpu" and torch.version.cuda is not None:
    sys.exit(f"[setup] torch {torch.__version__} ({build}) was installed on a machine without a GPU; "
             "set GRM_TORCH_CPU_INDEX to an index with the CPU build, or GRM_TORCH=cuda to keep it")
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    print(f"[setup] warning: torch {torch.__version__} ({build}) sees no GPU; the node runs with device:=cpu")
print(f"[setup] torch {torch.__version__} ({build})")
PYEOF
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
