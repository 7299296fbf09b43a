"""launch/novic.launch.py, imported with recording test doubles for `launch` and `launch_ros`
(neither is on PyPI): every argument it declares and every parameter it sets must exist."""
from __future__ import annotations

import configparser
import importlib.util
import re
import sys
import types
from pathlib import Path

import pytest
import yaml

from novic_ros.params import BY_NAME, PARAMS

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FILE = REPO / 'launch' / 'novic.launch.py'


class Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration(Recorded):
    values: dict = {}

    def perform(self, context):
        return context[self.args[0]]


def fake_modules() -> dict[str, types.ModuleType]:
    mods = {name: types.ModuleType(name) for name in
            ('launch', 'launch.actions', 'launch.substitutions', 'launch_ros', 'launch_ros.actions',
             'launch_ros.substitutions')}
    mods['launch'].LaunchDescription = type('LaunchDescription', (Recorded,), {})
    mods['launch.actions'].DeclareLaunchArgument = type('DeclareLaunchArgument', (Recorded,), {})
    mods['launch.actions'].OpaqueFunction = type('OpaqueFunction', (Recorded,), {})
    mods['launch.substitutions'].LaunchConfiguration = LaunchConfiguration
    mods['launch.substitutions'].PathJoinSubstitution = type('PathJoinSubstitution', (Recorded,), {})
    mods['launch_ros.actions'].Node = type('Node', (Recorded,), {})
    mods['launch_ros.actions'].LifecycleNode = type('LifecycleNode', (Recorded,), {})
    mods['launch_ros.substitutions'].FindPackageShare = type('FindPackageShare', (Recorded,), {})
    return mods


@pytest.fixture
def launch_module(monkeypatch):
    for name, mod in fake_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location('novic_launch', LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def declared(ld) -> dict[str, Recorded]:
    return {a.args[0]: a for a in ld.args[0] if type(a).__name__ == 'DeclareLaunchArgument'}


def run_opaque(ld, **values):
    ctx = {name: a.kwargs['default_value'] if isinstance(a.kwargs['default_value'], str) else '/share/novic.yaml'
           for name, a in declared(ld).items()}
    ctx.update(values)
    opaque = [a for a in ld.args[0] if type(a).__name__ == 'OpaqueFunction']
    assert len(opaque) == 1
    actions = opaque[0].kwargs['function'](ctx)
    assert len(actions) == 1
    return actions[0]


def console_scripts() -> set[str]:
    text = (REPO / 'setup.py').read_text()
    return set(re.findall(r"'([\w-]+) = novic_ros[\w.]*:\w+'", text))


def test_declares_the_documented_arguments(launch_module):
    args = declared(launch_module.generate_launch_description())
    assert {'model', 'rate_hz', 'image', 'backend', 'params_file', 'namespace'} <= set(args)
    for name, a in args.items():
        assert a.kwargs.get('description'), f"launch argument {name} has no description"
    # Every parameter-mapped argument names a real parameter.
    mapped = {p.launch_arg for p in PARAMS if p.launch_arg}
    assert mapped <= set(args)
    default = args['params_file'].kwargs['default_value']
    assert [type(x).__name__ for x in default.args[0]][0] == 'FindPackageShare'
    assert default.args[0][1:] == ['config', 'novic.yaml'] and (REPO / 'config' / 'novic.yaml').is_file()


def test_node_action_with_defaults_keeps_the_params_file_values(launch_module):
    node = run_opaque(launch_module.generate_launch_description())
    kw = node.kwargs
    assert type(node).__name__ == 'Node'
    assert kw['package'] == 'novic_ros' and kw['executable'] in console_scripts()
    assert kw['namespace'] == 'novic'
    params_file, overrides = kw['parameters']
    # Only autostart is always set (it picks the action); everything else comes from the params file.
    assert params_file == '/share/novic.yaml' and overrides == {'autostart': True}
    assert kw['remappings'] == []


def test_without_autostart_the_node_is_a_launch_lifecycle_node(launch_module):
    ld = launch_module.generate_launch_description()
    assert declared(ld)['autostart'].kwargs['choices'] == ['true', 'false']
    node = run_opaque(ld, autostart='false', namespace='robot1')
    # launch_ros.actions.LifecycleNode: launch's ChangeState events and OnStateTransition handlers reach it
    # (it requires name and namespace), and the node itself waits unconfigured for them.
    assert type(node).__name__ == 'LifecycleNode'
    assert node.kwargs['name'] == 'novic_node' and node.kwargs['namespace'] == 'robot1'
    assert node.kwargs['parameters'][1] == {'autostart': False}


def test_arguments_map_onto_typed_parameters(launch_module):
    node = run_opaque(launch_module.generate_launch_description(), model='b32', rate_hz='10',
                      image='/camera/image_raw', backend='onnxruntime', namespace='robot1', publish_overlay='true')
    _, overrides = node.kwargs['parameters']
    assert overrides == {'model': 'b32', 'rate_hz': 10.0, 'backend': 'onnxruntime', 'publish_overlay': True,
                         'autostart': True}
    assert all(name in BY_NAME for name in overrides)
    assert node.kwargs['remappings'] == [('image', '/camera/image_raw')]
    assert node.kwargs['namespace'] == 'robot1'


def test_bad_argument_values_fail_at_launch_naming_the_parameter(launch_module):
    with pytest.raises(ValueError, match='rate_hz'):
        run_opaque(launch_module.generate_launch_description(), rate_hz='fast')
    with pytest.raises(ValueError, match='at least 0.01'):       # the table's bound, as the node has it
        run_opaque(launch_module.generate_launch_description(), rate_hz='1e-6')
    with pytest.raises(ValueError, match='backend'):
        run_opaque(launch_module.generate_launch_description(), backend='cuda')
    with pytest.raises(ValueError, match='autostart'):
        run_opaque(launch_module.generate_launch_description(), autostart='maybe')


def test_params_file_sets_only_known_parameters_with_valid_values():
    data = yaml.safe_load((REPO / 'config' / 'novic.yaml').read_text())
    params = data['/**']['ros__parameters']
    assert set(params) <= set(BY_NAME)
    for name, value in params.items():
        assert BY_NAME[name].validate(value) == (BY_NAME[name].default if name != 'image_topics' else ['image'])


def test_setup_installs_launch_config_and_models():
    text = (REPO / 'setup.py').read_text()
    assert "glob('launch/*.launch.py')" in text and "tree('config')" in text and "tree('models')" in text
    cfg = configparser.ConfigParser()
    cfg.read(REPO / 'setup.cfg')
    # ament_python: executables must land in lib/<package> for `ros2 run` and launch.
    assert cfg['install']['install_scripts'] == '$base/lib/novic_ros'
