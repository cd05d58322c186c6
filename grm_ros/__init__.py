"""grm_ros: GRM (CVPR 2023) transformer tracking as a ROS 2 perception package.

The Python core (model, tracking, evaluation, training) imports without rclpy. When the package is
built with colcon, the generated ``grm_ros.msg`` / ``grm_ros.srv`` modules live in the install tree,
so the package path is extended to every ``grm_ros`` directory on ``sys.path``: the source tree and
the built interfaces then import side by side.

On a ROS install, rosdep may satisfy ``python3-torch`` with an older distribution torch, so the torch
version is checked here, from its metadata (torch itself is not imported: the readers need none).
"""

import contextlib
import re
from importlib.metadata import PackageNotFoundError, version
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

MIN_TORCH = (2, 1)  # torch.compile, scaled_dot_product_attention, the meta device as context manager


def require_torch(installed: str) -> None:
    """Raise ImportError with one line when ``installed`` (a torch version string) is below MIN_TORCH."""
    match = re.match(r"(\d+)\.(\d+)", installed)
    if match and tuple(map(int, match.groups())) < MIN_TORCH:
        need = ".".join(map(str, MIN_TORCH))
        raise ImportError(f"grm_ros needs torch >= {need}, found torch {installed}: pip install "
                          f"'torch>={need}' (https://pytorch.org/get-started; on a ROS install then "
                          "rosdep install ... --skip-keys python3-torch)")


with contextlib.suppress(PackageNotFoundError):  # no torch: the first torch import says so, where needed
    require_torch(version("torch"))
