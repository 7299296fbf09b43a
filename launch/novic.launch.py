"""Launch novic_node: open-vocabulary labels for a camera on /novic/labels.

    ros2 launch novic_ros novic.launch.py model:=b32 rate_hz:=10 image:=/camera/image_raw
    ros2 launch novic_ros novic.launch.py autostart:=false    # wait for a lifecycle manager

Arguments left empty keep the value from params_file (config/novic.yaml by default), so a
params file and command-line overrides combine as users expect. novic_node is a lifecycle node:
with autostart (the default) it configures and activates itself; with autostart:=false it is
started as a launch_ros LifecycleNode, so that launch lifecycle events (ChangeState, matched to
this action) or an external manager (nav2_lifecycle_manager) drive it.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.substitutions import FindPackageShare

from novic_ros.params import PARAMS

# Parameters that have a launch argument of their own (defined in novic_ros/params.py).
PARAM_ARGS = [p for p in PARAMS if p.launch_arg]
# autostart decides which action starts the node, so it always has a value (the others may be empty).
AUTOSTART = next(p for p in PARAMS if p.name == 'autostart')


def _node(context, *args, **kwargs):
    overrides = {}
    for p in PARAM_ARGS:
        value = LaunchConfiguration(p.launch_arg).perform(context)
        if value != '':
            overrides[p.name] = p.validate(value)      # launch arguments are strings; type them here
    image = LaunchConfiguration('image').perform(context)
    # A LifecycleNode action (it needs name and namespace) lets launch's lifecycle events reach the node.
    action = Node if overrides[AUTOSTART.name] else LifecycleNode
    return [action(
        package='novic_ros',
        executable='novic_node',
        name='novic_node',
        namespace=LaunchConfiguration('namespace').perform(context),
        parameters=[LaunchConfiguration('params_file').perform(context), overrides],
        remappings=[('image', image)] if image else [],
        output='screen',
        emulate_tty=True,
    )]


def generate_launch_description():
    args = [
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([FindPackageShare('novic_ros'), 'config', 'novic.yaml']),
            description='Parameters file of novic_node.',
        ),
        DeclareLaunchArgument(
            'namespace',
            default_value='novic',
            description='Node namespace; labels are published on <namespace>/labels.',
        ),
        DeclareLaunchArgument(
            'image',
            default_value='',
            description='Camera topic to classify (remaps `image`); empty = image_topics from params_file.',
        ),
    ]
    args += [DeclareLaunchArgument(p.launch_arg, default_value='',
                                   description=f"{p.description} Empty = the params file's value.")
             for p in PARAM_ARGS if p is not AUTOSTART]
    args.append(DeclareLaunchArgument(AUTOSTART.launch_arg, default_value=str(AUTOSTART.default).lower(),
                                      choices=['true', 'false'], description=AUTOSTART.description))
    return LaunchDescription(args + [OpaqueFunction(function=_node)])
