"""``grm-operator``: the web page for a live tracker node (``server``) and its rclpy side (``bridge``)."""
