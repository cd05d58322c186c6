# Source me (bash): the pip ROS 2 environment plus this workspace, with DDS kept on loopback.
_grm_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VIRTUAL_ENV=$_grm_root/.venv
export PATH=$VIRTUAL_ENV/bin:$PATH
export CMAKE_PREFIX_PATH=$VIRTUAL_ENV AMENT_PREFIX_PATH=$VIRTUAL_ENV
# shellcheck disable=SC1091
source "$_grm_root/install/local_setup.bash"
# The source tree first: grm_ros/__init__.py extends its path to the built interfaces.
export PYTHONPATH=$_grm_root${PYTHONPATH:+:$PYTHONPATH}
# Idle OpenMP workers sleep instead of spinning: on a small shared CPU spinning workers starve each other.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1
unset _grm_root
