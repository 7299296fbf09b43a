"""The one parameter table: validation, typed configs, CLI flags, ROS descriptors and docs agree."""
import argparse
from pathlib import Path

import pytest

from novic_ros.params import BY_NAME, PARAMS, ModelParams, NodeParams, add_model_arguments, markdown_table, \
    model_params_from_args

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize('name, value, expected', [
    ('top_k', '4', 4), ('rate_hz', '2.5', 2.5), ('rate_hz', 3, 3.0), ('publish_overlay', 'true', True),
    ('publish_overlay', 'False', False), ('labels', 'cup, mug ,', ['cup', 'mug']), ('labels', ['a', ''], ['a']),
    ('device', 'cuda:1', 'cuda:1'), ('device', 'gpu.1', 'gpu.1'), ('backend', 'onnxruntime', 'onnxruntime'),
    ('backend', 'openvino', 'openvino'),
])
def test_validate_converts(name, value, expected):
    assert BY_NAME[name].validate(value) == expected


@pytest.mark.parametrize(
    'name, value, words',
    [
        ('top_k', 0, r'outside \[1, 100\]'),
        ('top_k', 2.5, 'expected int'),
        ('min_score', 1.5, 'outside'),
        ('backend', 'cuda', 'not one of'),
        ('device', 'tpu', 'does not match'),
        ('publish_overlay', 'maybe', 'expected bool'),
        ('rate_hz', 'fast', 'expected float'),
    ],
)
def test_validate_rejects_naming_the_parameter(name, value, words):
    with pytest.raises(ValueError, match=words) as e:
        BY_NAME[name].validate(value)
    assert repr(name) in str(e.value)


def test_typed_configs_use_the_table_defaults():
    m, n = ModelParams(), NodeParams()
    for p in PARAMS:
        target = m if p.group == 'model' else n
        value = getattr(target, p.name)
        assert (list(value) if isinstance(value, tuple) else value) == p.default, p.name
    assert NodeParams.from_mapping({'rate_hz': 5, 'top_k': 2}).model.top_k == 2
    with pytest.raises(ValueError, match='image_topics'):
        NodeParams(image_topics=())
    with pytest.raises(ValueError, match='prompt_template'):
        ModelParams(prompt_template='no slot')


def test_typed_configs_match_the_table_field_for_field():
    """ModelParams/NodeParams write their fields out; each is one row of the table: same names in the
    same order, the row's type (lists as tuples of str) and its default."""
    import typing
    from dataclasses import MISSING, fields
    for cls, group, extra in ((ModelParams, 'model', []), (NodeParams, 'node', ['model'])):
        rows = [p for p in PARAMS if p.group == group]
        assert [f.name for f in fields(cls)] == [p.name for p in rows] + extra, cls.__name__
        hints = typing.get_type_hints(cls)
        for p, f in zip(rows, fields(cls)):
            assert hints[f.name] == (tuple[str, ...] if p.type is list else p.type), f.name
            default = f.default if f.default is not MISSING else f.default_factory()
            assert (list(default) if p.type is list else default) == p.default, f.name
    assert typing.get_type_hints(NodeParams)['model'] is ModelParams


def test_cli_flags_come_from_the_table():
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    args = parser.parse_args(['--top-k', '2', '--beam-width', '4', '--labels', 'a', 'b', '--mode', 'prompted'])
    params = model_params_from_args(args)
    assert (params.top_k, params.beam_width, params.labels, params.mode) == (2, 4, ('a', 'b'), 'prompted')
    with pytest.raises(SystemExit):
        parser.parse_args(['--backend', 'nope'])


def test_ros_descriptors_carry_ranges_and_read_only():
    from novic_ros.ros.param_declaration import descriptor
    d = descriptor(BY_NAME['top_k'])
    assert d.integer_range[0].from_value == 1 and d.integer_range[0].to_value == 100
    assert descriptor(BY_NAME['rate_hz']).floating_point_range[0].to_value == 1000.0
    assert 'onnxruntime' in descriptor(BY_NAME['backend']).additional_constraints
    assert all(descriptor(p).read_only != p.live for p in PARAMS)
    assert not descriptor(BY_NAME['labels']).read_only and descriptor(BY_NAME['model']).read_only


def test_readme_documents_every_parameter():
    readme = (REPO / 'README.md').read_text()
    assert markdown_table() in readme, "README parameter table is stale: python -m novic_ros.params --update README.md"


def test_categories_are_checked_without_wordnet_and_stability_options_come_from_the_table():
    assert ModelParams(categories=['animal', 'vehicle=public_transport.n.01']).categories == \
        ('animal', 'vehicle=public_transport.n.01')
    with pytest.raises(ValueError, match=r"parameter 'categories': category 'dog.v.01' is not understood"):
        ModelParams(categories=['animal', 'dog.v.01'])
    options = NodeParams(
        smoothing_s=2.0, stable_margin=0.3, stable_dwell_s=0.0, stable_timeout_s=9.0
    ).stability_options()
    assert (options.smoothing_s, options.margin, options.dwell_s, options.timeout_s) == (2.0, 0.3, 0.0, 9.0)
    with pytest.raises(ValueError, match='stable_margin'):
        NodeParams(stable_margin=1.5)
