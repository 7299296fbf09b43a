"""Declare and read the node's parameters from the one table in novic_ros.params."""
from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.parameter import Parameter

from ..params import PARAMS, Param

_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING,
          list: ParameterType.PARAMETER_STRING_ARRAY}


def descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(name=p.name, type=_TYPES[p.type], description=p.description,
                            read_only=not p.live)
    if p.min is not None and p.type is int:
        d.integer_range = [IntegerRange(from_value=int(p.min), to_value=int(p.max), step=1)]
    elif p.min is not None and p.type is float:
        d.floating_point_range = [FloatingPointRange(from_value=float(p.min), to_value=float(p.max), step=0.0)]
    if p.choices:
        d.additional_constraints = 'one of: ' + ', '.join(map(str, p.choices))
    elif p.pattern is not None:
        d.additional_constraints = 'matches ' + p.pattern.pattern
    return d


def declare_all(node) -> dict:
    """Declare every parameter with its default and descriptor; return name -> value."""
    values = {}
    for p in PARAMS:
        if p.type is list and not p.default:
            # rclpy types a parameter by its default, and [] would make it a byte array that refuses
            # `-p labels:=[cup, mug]`: declare the type instead; unset means the empty default.
            value = node.declare_parameter(p.name, Parameter.Type.STRING_ARRAY, descriptor(p)).value
            values[p.name] = [] if value is None else value
        else:
            values[p.name] = node.declare_parameter(p.name, p.default, descriptor(p)).value
    return values
