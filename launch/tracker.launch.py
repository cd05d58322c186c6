"""Launch the GRM tracker lifecycle node (ROS 2 Humble, Jazzy, Kilted).

    ros2 launch grm_ros tracker.launch.py image:=/camera/image_raw device:=cuda
    ros2 service call /grm_tracker/set_target grm_ros/srv/SetTarget \
        "{center_x: 320.0, center_y: 240.0, size_x: 80.0, size_y: 120.0}"
    ros2 topic echo /grm_tracker/tracks

The node configures and activates itself once it spins (parameter ``autostart``, true in
config/tracker.yaml), late enough for launch's lifecycle handlers to see both transitions. With
``autostart:=false`` launch drives them instead: it emits configure, then activate once the node is
inactive, so ``OnStateTransition`` handlers of other launch files can chain on either.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, EmitEvent, RegisterEventHandler
from launch.conditions import UnlessCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition


def generate_launch_description() -> LaunchDescription:
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the tracker node."),
        DeclareLaunchArgument(
            "params_file",
            default_value=PathJoinSubstitution([FindPackageShare("grm_ros"), "config", "tracker.yaml"]),
            description="Parameters file of the tracker node."),
        DeclareLaunchArgument("image", default_value="/camera/image_raw",
                              description="Image topic to track on (remaps the node's 'image')."),
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="GRM checkpoint (.pth); empty: the package's default model."),
        DeclareLaunchArgument("device", default_value="cpu",
                              description="Inference device: cpu, cuda, cuda:N."),
        DeclareLaunchArgument("use_sim_time", default_value="false", description="Use the /clock topic."),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="true: the node configures and activates itself; false: "
                                          "launch emits configure, then activate."),
    ]
    tracker = LifecycleNode(
        package="grm_ros",
        executable="tracker_node",
        name="grm_tracker",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "checkpoint": ParameterValue(LaunchConfiguration("checkpoint"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"), value_type=bool),
                "autostart": ParameterValue(LaunchConfiguration("autostart"), value_type=bool),
            },
        ],
        remappings=[("image", LaunchConfiguration("image"))],
    )
    driven = UnlessCondition(LaunchConfiguration("autostart"))

    def transition(transition_id: int, **kwargs) -> EmitEvent:
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(tracker),
                                           transition_id=transition_id), **kwargs)

    # Activate only after the first configure, not whenever someone deactivates the node later.
    activate = RegisterEventHandler(OnStateTransition(
        target_lifecycle_node=tracker, start_state="configuring", goal_state="inactive",
        entities=[transition(Transition.TRANSITION_ACTIVATE)]), condition=driven)
    configure = transition(Transition.TRANSITION_CONFIGURE, condition=driven)
    return LaunchDescription([*arguments, tracker, activate, configure])
