"""The pure-Python core of grm_ros (network, tracker, evaluation, training), pip-installable on its own.

The ROS 2 package itself is built by colcon from CMakeLists.txt / package.xml (ament_cmake), which
also generates grm_ros.msg and grm_ros.srv; this file is for `pip install .` without ROS.
"""

from setuptools import find_packages, setup

setup(
    name="grm_ros",
    version="0.1.0",
    description="GRM (CVPR 2023) transformer tracking for ROS 2, with a ROS-free Python core",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["grm_ros", "grm_ros.*"]),
    package_data={"grm_ros.model": ["variants/*.yaml", "weights/*.pth", "weights/NOTICE",
                                    "weights/NANOTRACK_LICENSE"],
                  "grm_ros.ros.operator": ["static/*"]},
    install_requires=["torch>=2.1",  # grm_ros.MIN_TORCH
                      "numpy>=1.24", "opencv-contrib-python-headless>=4.7", "pyyaml"],
    extras_require={"eval": ["matplotlib"], "onnx": ["onnx", "onnxruntime"], "bags": ["rosbags"],
                    "operator": ["aiohttp"]},
    entry_points={
        "console_scripts": [
            "grm-track = grm_ros.tracking.cli:main",
            "grm-eval = grm_ros.evaluation.cli:main",
            "grm-train = grm_ros.training.cli:train_main",
            "grm-synth = grm_ros.training.cli:synth_main",
            "grm-tracker-node = grm_ros.ros.node:main",
            "grm-ctl = grm_ros.ros.ctl:main",
            "grm-operator = grm_ros.ros.operator.server:main",
            "grm-bag = grm_ros.datasets.bags:main",
            "grm-bench = grm_ros.bench.cli:main",
            "grm-calibrate = grm_ros.tools.calibrate:main",
            "grm-export = grm_ros.tools.export:main",
        ]
    },
)
