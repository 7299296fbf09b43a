"""ament_python package: `colcon build` in a ROS 2 workspace, or `pip install -e .` in .venv."""
from glob import glob
import os

from setuptools import find_packages, setup

PACKAGE = 'novic_ros'


# Training state and half-written files may lie in a source tree; they are not package data.
SKIP = ('train_state.pt', '.tmp')
HERE = os.path.dirname(os.path.abspath(__file__))


def requirements(name):
    """The requirement ranges of a requirements file (comments and includes left out)."""
    with open(os.path.join(HERE, name)) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line and not line.startswith('-')]


def tree(src):
    """data_files entries that install every file under `src` to share/novic_ros/<src>."""
    entries = []
    for dirpath, _, filenames in os.walk(src):
        files = [os.path.join(dirpath, f) for f in sorted(filenames) if not f.endswith(SKIP)]
        if files:
            entries.append((os.path.join('share', PACKAGE, dirpath), files))
    return entries


setup(
    name=PACKAGE,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + PACKAGE]),
        ('share/' + PACKAGE, ['package.xml']),
        ('share/' + PACKAGE + '/launch', glob('launch/*.launch.py')),
        *tree('config'),
        *tree('models'),
        *tree('interfaces'),      # message definitions, read by novic-eval to write vision_msgs into bags
        ('share/' + PACKAGE + '/engines', ['engines/README.md']),   # the engine cache's home when writable
    ],
    # Only setuptools: in a ROS workspace rosdep and apt provide numpy, Pillow and PyYAML (numpy 1.x on
    # Humble and Jazzy), and the entry-point scripts of older setuptools refuse to start when an
    # install_requires entry is not met by pip's metadata. The ranges are the extras below.
    install_requires=['setuptools'],
    # A robot running exported bundles: no torch (README: Deploying without torch); eval: novic-eval's bags
    # and reports; export: torch, open_clip, onnx (novic-export, novic-train, the torch backend).
    extras_require={'runtime': requirements('requirements-runtime.txt'),
                    'eval': requirements('requirements-eval.txt'),
                    'export': requirements('requirements-core.txt'),
                    'openvino': requirements('requirements-openvino.txt'),    # backend openvino (optional)
                    'ray': requirements('requirements-ray.txt')},             # novic-eval offline --ray (optional)
    zip_safe=False,
    maintainer='novic_ros developers',
    maintainer_email='novic-ros@example.org',
    description='Open-vocabulary image classification (NOVIC) for ROS 2: names what a camera sees in free English.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'novic_node = novic_ros.ros.exit_signals:run_node',
            'novic-classify = novic_ros.cli.classify:main',
            'novic-nouns = novic_ros.cli.nouns:main',
            'novic-toy = novic_ros.cli.torch_tools:toy',
            'novic-train = novic_ros.cli.torch_tools:train',
            'novic-export = novic_ros.cli.torch_tools:export',
            'novic-build-engines = novic_ros.cli.build_engines:main',
            'novic-eval = novic_ros.cli.torch_tools:eval_tool',
            'novic-bench = novic_ros.cli.torch_tools:bench',
            'novic-fetch = novic_ros.cli.fetch:main',
        ],
    },
)
