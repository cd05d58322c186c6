"""grm_ros: GRM (CVPR 2023) transformer tracking as a ROS 2 perception package.

The Python core (model, tracking, evaluation, training) imports without rclpy. When the package is
built with colcon, the generated ``grm_ros.msg`` / ``grm_ros.srv`` modules live in the install tree,
so the package path is extended to every ``grm_ros`` directory on ``sys.path``: the source tree and
the built interfaces then import side by side.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
