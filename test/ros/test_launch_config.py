"""launch/tracker.launch.py and config/tracker.yaml against the node's declared parameters.

launch and launch_ros are not installable here, so the launch file is checked by reading its syntax tree.
"""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from grm_ros.ros.parameters import PARAMETERS, defaults, settings_from

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "tracker.launch.py"
CONFIG = ROOT / "config" / "tracker.yaml"


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _yaml_parameters() -> dict:
    document = yaml.safe_load(CONFIG.read_text())
    assert list(document) == ["/**"] and list(document["/**"]) == ["ros__parameters"]
    return _flatten(document["/**"]["ros__parameters"])


def test_yaml_holds_exactly_the_declared_parameters_with_their_defaults():
    values = _yaml_parameters()
    assert sorted(values) == sorted(p.name for p in PARAMETERS)
    for spec in PARAMETERS:
        value = values[spec.name]
        assert type(value) is type(spec.default), f"{spec.name}: YAML type {type(value).__name__}"
        assert value == spec.default, spec.name
    settings_from(values)  # and they validate


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", getattr(n.func, "attr", None)) == name]


def _keyword(call: ast.Call, name: str) -> ast.AST:
    return next(k.value for k in call.keywords if k.arg == name)


def test_launch_file_declares_its_arguments_and_wires_them_to_the_node():
    tree = ast.parse(LAUNCH.read_text())
    declared = {ast.literal_eval(c.args[0]) for c in _calls(tree, "DeclareLaunchArgument")}
    assert declared == {"namespace", "params_file", "image", "checkpoint", "device", "use_sim_time",
                        "autostart"}

    (node,) = _calls(tree, "LifecycleNode")
    assert ast.literal_eval(_keyword(node, "package")) == "grm_ros"
    assert ast.literal_eval(_keyword(node, "executable")) == "tracker_node"
    assert ast.literal_eval(_keyword(node, "name")) == "grm_tracker"
    (remap,) = _keyword(node, "remappings").elts
    assert ast.literal_eval(remap.elts[0]) == "image"
    assert ast.literal_eval(remap.elts[1].args[0]) == "image"

    params = _keyword(node, "parameters").elts
    assert ast.literal_eval(params[0].args[0]) == "params_file"
    overrides = {ast.literal_eval(k): ast.literal_eval(_calls(v, "LaunchConfiguration")[0].args[0])
                 for k, v in zip(params[1].keys, params[1].values, strict=True)}
    assert overrides == {"checkpoint": "checkpoint", "device": "device", "use_sim_time": "use_sim_time",
                         "autostart": "autostart"}
    assert set(overrides) - {"use_sim_time"} <= set(defaults())  # use_sim_time is rclpy's own


def test_launch_file_defaults_to_the_packaged_config():
    tree = ast.parse(LAUNCH.read_text())
    (params_file,) = [c for c in _calls(tree, "DeclareLaunchArgument")
                      if ast.literal_eval(c.args[0]) == "params_file"]
    (join,) = _calls(_keyword(params_file, "default_value"), "PathJoinSubstitution")
    find, *parts = join.args[0].elts
    assert ast.literal_eval(find.args[0]) == "grm_ros"
    assert [ast.literal_eval(p) for p in parts] == ["config", "tracker.yaml"]
    assert (ROOT / Path(*[ast.literal_eval(p) for p in parts])).is_file()
    install = (ROOT / "CMakeLists.txt").read_text()
    assert "install(DIRECTORY launch config DESTINATION share/${PROJECT_NAME})" in install


def test_autostart_false_makes_launch_emit_configure_then_activate():
    tree = ast.parse(LAUNCH.read_text())
    emitted = {c.args[0].attr: c for c in _calls(tree, "transition")}
    assert set(emitted) == {"TRANSITION_CONFIGURE", "TRANSITION_ACTIVATE"}
    (handler,) = _calls(tree, "OnStateTransition")
    assert (ast.literal_eval(_keyword(handler, "start_state")),
            ast.literal_eval(_keyword(handler, "goal_state"))) == ("configuring", "inactive")
    (activate,) = _keyword(handler, "entities").elts
    assert activate.args[0].attr == "TRANSITION_ACTIVATE"
    # Both only when launch drives the lifecycle: autostart:=false.
    conditions = [_keyword(emitted["TRANSITION_CONFIGURE"], "condition"),
                  _keyword(_calls(tree, "RegisterEventHandler")[0], "condition")]
    assert all(getattr(c, "id", None) == "driven" for c in conditions)
    (driven,) = [n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and getattr(n.targets[0], "id", None) == "driven"]
    assert driven.func.id == "UnlessCondition"
    assert ast.literal_eval(driven.args[0].args[0]) == "autostart"
