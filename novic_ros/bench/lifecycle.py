"""What the lifecycle node's operations cost, through the real novic_node process: start to first
label in prompted mode with the whole noun dictionary (empty label-embedding cache against a warm
one), a live vocabulary switch (new labels to embed, labels on disk, labels in memory): how long the
parameter call takes to answer, how long until the new settings are in use (VisionInfo's new
version) and how long frames wait meanwhile, and the memory a cleanup hands back."""
from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from ..backends.devices import cpu_model
from ..lexicon.nouns import build_dictionary, save_dictionary
from ..lexicon.wordnet import WordNet
from ..paths import use_large_frames_profile
from ..ros.memory import rss_mb, settle_loaded
from ..ros.node_process import NodeProcess
from ..training import toy_world
from .models import b32_models_file, bench_dir
from .sections import _table


class _Client:
    """Publishes frames, times labels, and calls the node's parameter and lifecycle services."""

    def __init__(self, namespace: str):
        # rclpy and the messages come from ROS: only this benchmark needs them.
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter_client import AsyncParameterClient
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from rclpy.qos import DurabilityPolicy
        from vision_msgs.msg import Classification, VisionInfo
        from lifecycle_msgs.srv import ChangeState
        self.ns, self.Image, self.ChangeState = namespace, Image, ChangeState
        self.node = rclpy.create_node(f"novic_bench_{namespace.strip('/')}")
        self.times: list[float] = []
        self.node.create_subscription(
            Classification, f'{namespace}/labels', lambda m: self.times.append(time.monotonic()), 50
        )
        self.versions: list[tuple[int, float]] = []      # VisionInfo's database_version, arrival time
        self.node.create_subscription(VisionInfo, f'{namespace}/vision_info',
                                      lambda m: self.versions.append((m.database_version, time.monotonic())),
                                      QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                                 durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.pub = self.node.create_publisher(
            Image, f'{namespace}/image', QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        )
        self.params = AsyncParameterClient(self.node, f'{namespace}/novic_node')
        self.change = self.node.create_client(ChangeState, f'{namespace}/novic_node/change_state')
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self.executor.spin, daemon=True)
        self._spin.start()
        frame = toy_world.render_set(1, (240, 320), seed=5, classes=[3])[0].image
        self.frame = Image(height=240, width=320, encoding='rgb8', step=320 * 3, data=frame.tobytes())

    def wait(self, fut, timeout: float = 1800.0):
        end = time.monotonic() + timeout
        while not fut.done():
            if time.monotonic() > end:
                raise RuntimeError("no answer from novic_node")
            time.sleep(0.01)
        return fut.result()

    def first_label(self, proc: NodeProcess, t0: float, timeout: float = 1800.0) -> float:
        """Seconds from t0 (process start) to the first label, publishing a frame every 0.2 s."""
        end = time.monotonic() + timeout
        while not self.times:
            if not proc.alive() or time.monotonic() > end:
                raise RuntimeError(f"novic_node gave no label:\n{proc.log()[-2000:]}")
            self.pub.publish(self.frame)
            time.sleep(0.2)
        return self.times[0] - t0

    def set(self, **values) -> float:
        from rclpy.parameter import Parameter
        t0 = time.monotonic()
        result = self.wait(
            self.params.set_parameters_atomically([Parameter(k, value=v) for k, v in values.items()])
        ).result
        if not result.successful:
            raise RuntimeError(f"parameter change refused: {result.reason}")
        return time.monotonic() - t0

    def in_use(self, version: int, timeout: float = 1800.0) -> float:
        """When VisionInfo's version passed `version` (the new vocabulary in use)."""
        end = time.monotonic() + timeout
        while True:
            later = [t for v, t in list(self.versions) if v > version]
            if later:
                return later[0]
            if time.monotonic() > end:
                raise RuntimeError("the change never came into use")
            time.sleep(0.01)

    def transition(self, transition_id: int) -> None:
        req = self.ChangeState.Request()
        req.transition.id = transition_id
        if not self.wait(self.change.call_async(req)).success:
            raise RuntimeError(f"transition {transition_id} failed")

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()


def _stream(client: _Client, period: float, stop: threading.Event):
    while not stop.is_set():
        client.pub.publish(client.frame)
        time.sleep(period)


def _switch_cost(client: _Client, period: float, **values) -> tuple[float, float, float, float, float]:
    """(seconds the parameter call took to answer, seconds until the change was in use, longest wait
    between labels meanwhile, median and longest wait over the 10 labels before). Every change
    measured changes the vocabulary."""
    stop = threading.Event()
    streamer = threading.Thread(target=_stream, args=(client, period, stop), daemon=True)
    streamer.start()
    try:
        time.sleep(4 * period + 1.0)
        before = list(client.times)
        version = max((v for v, _ in client.versions), default=0)
        t0 = time.monotonic()
        took = client.set(**values)
        t1 = client.in_use(version)
        time.sleep(4 * period + 1.0)
    finally:
        stop.set()
        streamer.join()
    gaps_before = np.diff(before[-11:]) if len(before) > 2 else np.array([float('nan')])
    during = [t0] + [t for t in client.times if t0 <= t <= t1] + [next((t for t in client.times if t > t1), t1)]
    return (took, t1 - t0, float(np.max(np.diff(during))), float(np.median(gaps_before)),
            float(np.max(gaps_before)))


def lifecycle(models: tuple[str, ...] = ('toy', 'b32-random')) -> str:
    import rclpy
    from lifecycle_msgs.msg import Transition
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    use_large_frames_profile()
    work = Path(tempfile.mkdtemp(prefix='lifecycle-', dir=bench_dir()))
    nouns = work / 'nouns.jsonl'
    save_dictionary(build_dictionary(WordNet.load()), nouns)
    n_nouns = sum(1 for _ in nouns.open())
    # This process holds WordNet now: a full collection (over 200 ms) on the client's executor thread
    # would read as a wait between the node's labels.
    settle_loaded()
    rclpy.init(args=[])
    starts, switches, memory = [], [], []
    try:
        for model in models:
            extra = {'models_file': str(b32_models_file())} if model == 'b32-random' else {}
            base = {
                'model': model,
                'backend': 'torch',
                'qos': 'reliable',
                'mode': 'prompted',
                'labels_file': str(nouns),
                'labels_dirs': [str(work)],
                'text_cache_dir': str(work / f'cache-{model}'),
                **extra,
            }
            first = second = 0.0
            for run in ('first', 'second'):
                ns = f"/bench_{model.replace('-', '_')}_{run}"
                client = _Client(ns)
                t0 = time.monotonic()
                proc = NodeProcess(base, namespace=ns, log_path=work / f'{model}-{run}.log')
                try:
                    took = client.first_label(proc, t0)
                    if run == 'first':
                        first = took
                        rss_active = rss_mb(proc.proc.pid)
                        client.transition(Transition.TRANSITION_DEACTIVATE)
                        client.transition(Transition.TRANSITION_CLEANUP)
                        time.sleep(1.0)
                        rss_clean = rss_mb(proc.proc.pid)
                        memory.append([model, rss_active, rss_clean, rss_active - rss_clean])
                    else:
                        second = took
                        period = 0.1 if model == 'toy' else 0.25
                        rows = [('generate', {'mode': 'generate'}),
                                ('prompted, labels in memory', {'mode': 'prompted'}),
                                (f'new template: {n_nouns} labels to embed', {'prompt_template': 'a picture of a {}.'}),
                                ('template back: labels on disk', {'prompt_template': 'a photo of a {}.'})]
                        for what, values in rows:
                            took, in_use, gap, usual, longest = _switch_cost(client, period, **values)
                            switches.append([model, what, took * 1e3, in_use, gap * 1e3, longest * 1e3,
                                             usual * 1e3])
                finally:
                    proc.stop()
                    client.close()
            starts.append([model, n_nouns, first, second, first / second])
    finally:
        rclpy.try_shutdown()
    return '\n\n'.join(
        [
            _table(
                [
                    'model',
                    'labels',
                    'first start to first label s (empty cache)',
                    'second start s (cached)',
                    'speed-up (target >= 10)',
                ],
                starts,
            ),
            f"CPU: {cpu_model()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
            _table(
                [
                    'model',
                    'live change',
                    'parameter call answered ms',
                    'in use after s',
                    'longest wait between labels meanwhile ms (target: at most the longest without a change + 100)',
                    'longest wait before, without a change ms',
                    'usual wait ms (frames offered every 0.1 s toy / 0.25 s b32)',
                ],
                switches,
            ),
            _table(['model', 'VmRSS active MB', 'after cleanup MB', 'returned MB'], memory),
        ]
    )
