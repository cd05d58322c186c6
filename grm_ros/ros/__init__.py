"""The ROS 2 edge of grm_ros: the only subpackage that imports rclpy."""
