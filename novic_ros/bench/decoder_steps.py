"""Benchmark section `decoder_steps`: where the decoder's time goes at batch 1, per CPU backend
(ONNX Runtime fp32 / int8, OpenVINO fp32 / bf16 / int8), ViT-B/32's decoder (random weights).

Per step, side by side in one run: the step graph called as before 2026-12-04 (ONNX Runtime's run()
and OpenVINO's infer with copied outputs: new output arrays each step) against the session the
backends use now (IO binding into preallocated buffers; two OpenVINO requests in turn, outputs read in
place); beside them the bare cost of a call (an Identity graph on each runtime), the numpy
bookkeeping of greedy and beam search per step (a runner that returns fixed logits), and what the
step's weights cost to read (the step graph's weight bytes; numpy's product over the vocabulary
projection, 5 rows, as the memory-bound reference). Minima and medians: the machine is shared."""
from __future__ import annotations

import statistics
import time

import numpy as np

from ..backends.base import PAST_K, PAST_V, STEP_TOKEN_INPUT
from ..core.bundle import DECODER_STEP
from ..core.generation import beam_search, greedy
from .models import TYPICAL_STEPS, b32_models_file
from .openvino import _build, candidates, cpu_line
from .sections import _table

ROWS = (1, 5)          # greedy at batch 1; beam 5 at batch 1


def _times(fns: dict, repeat: int, warmup: int = 3) -> dict:
    """(min, median) ms of each function, measured in alternation."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append((time.perf_counter() - t) * 1e3)
    return {k: (min(v), statistics.median(v)) for k, v in times.items()}


def _plain_call(backend, step_graph):
    """The step graph called as the backends did before: fresh output arrays every step."""
    if backend.name == 'onnxruntime':
        return lambda feeds: step_graph.run(None, feeds)
    return lambda feeds: step_graph.run(feeds)


def _identity_calls() -> dict:
    """A one-node Identity graph on each runtime: the cost of a call with no arithmetic."""
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'identity',
                              [helper.make_tensor_value_info('x', TensorProto.INT64, [None])],
                              [helper.make_tensor_value_info('y', TensorProto.INT64, [None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    data, x = model.SerializeToString(), np.arange(5, dtype=np.int64)
    import onnxruntime as ort
    sess = ort.InferenceSession(data, providers=['CPUExecutionProvider'])
    out = {'ONNX Runtime run()': lambda: sess.run(None, {'x': x})}
    try:
        import openvino as ov
    except ImportError:
        return out
    core = ov.Core()
    request = core.compile_model(core.read_model(data, b''), 'CPU').create_infer_request()
    out['OpenVINO infer'] = lambda: request.infer({'x': x}, share_inputs=True, share_outputs=True)
    return out


class _FixedLogits:
    """A decoder runner whose every step returns the same logits: generation.py's own cost."""

    def __init__(self, vocab: int, rows: int, max_tokens: int):
        rng = np.random.default_rng(0)
        self.vocab_size, self.eot, self.max_tokens = vocab, -1, max_tokens
        self.first = rng.standard_normal((1, vocab)).astype(np.float32)
        self.logits = rng.standard_normal((rows, vocab)).astype(np.float32)

    def start(self, embeds):
        return self.first, self

    def step(self, tokens):
        return self.logits

    def reorder(self, index):
        pass


def _weight_bytes(bundle) -> float:
    import onnx
    model = onnx.load(str(bundle.graph(DECODER_STEP)))
    return sum(int(np.prod(t.dims)) * 4 for t in model.graph.initializer)


def decoder_steps(repeat: int) -> str:
    models = str(b32_models_file())
    rng = np.random.default_rng(0)
    embeds = rng.standard_normal((max(ROWS), 512)).astype(np.float32)
    embeds /= np.linalg.norm(embeds, axis=1, keepdims=True)
    fns, names = {}, []
    for name, backend, precision in candidates():
        clf = _build('b32-random', backend, precision, models_file=models, beam_width=5, max_tokens=TYPICAL_STEPS)
        runner, names = clf.backend.runner, names + [name]
        plain = _plain_call(clf.backend, runner.step)
        for rows in ROWS:
            _, session = runner.start(embeds[:rows])
            tokens = np.arange(rows, dtype=np.int64)
            k, v = np.array(session.k), np.array(session.v)         # the prefill's cache, kept for every call
            feeds = {STEP_TOKEN_INPUT: tokens, PAST_K: k, PAST_V: v}

            def now(s=session, t=tokens, k=k, v=v):
                s.k, s.v = k, v
                s.step(t)
            fns[(name, rows, 'before')] = lambda p=plain, f=feeds: p(f)
            fns[(name, rows, 'now')] = now
        e1 = embeds[:1]
        fns[(name, 'greedy')] = lambda r=runner, e=e1: greedy(r, e, TYPICAL_STEPS)
        fns[(name, 'beam')] = lambda r=runner, e=e1: beam_search(r, e, 5, TYPICAL_STEPS)
        fns[(name, 'prefill')] = lambda r=runner, e=e1: r.start(e)
    vocab = runner.vocab_size
    calls = _identity_calls()
    fns.update({('call', k): f for k, f in calls.items()})
    fixed1, fixed5 = _FixedLogits(vocab, 1, TYPICAL_STEPS), _FixedLogits(vocab, 5, TYPICAL_STEPS)
    fns[('numpy', 'greedy')] = lambda: greedy(fixed1, embeds[:1], TYPICAL_STEPS)
    fns[('numpy', 'beam')] = lambda: beam_search(fixed5, embeds[:1], 5, TYPICAL_STEPS)
    proj = rng.standard_normal((384, vocab)).astype(np.float32)
    x5 = rng.standard_normal((5, 384)).astype(np.float32)
    fns[('numpy', 'proj')] = lambda: x5 @ proj
    t = _times(fns, repeat)
    fmt = lambda x: f"{x[0]:.2f} / {x[1]:.2f}"  # noqa: E731
    rows = []
    for name in names:
        rows.append([name, fmt(t[(name, 'prefill')]), fmt(t[(name, 1, 'before')]), fmt(t[(name, 1, 'now')]),
                     fmt(t[(name, 5, 'before')]), fmt(t[(name, 5, 'now')]),
                     f"{t[(name, 5, 'before')][0] / t[(name, 5, 'now')][0]:.2f}x",
                     fmt(t[(name, 'greedy')]), fmt(t[(name, 'beam')])])
    table = _table(['candidate', 'prefill, 1 row', 'step 1 row: before', 'step 1 row: now', 'step 5 rows: before',
                    'step 5 rows: now', 'step 5 rows: before / now (min)', f'greedy {TYPICAL_STEPS} tokens',
                    f'beam 5, {TYPICAL_STEPS} tokens'], rows)
    weights = _weight_bytes(clf.backend.bundle) / 1e6
    steps = TYPICAL_STEPS - 1
    parts = [f"{k}: {fmt(t[('call', k)])} ms" for k in calls]
    note = (f"All ms as min / median of {repeat}. CPU: {cpu_line()}.\n\n"
            f"Where a step's time goes: a call with no arithmetic costs {'; '.join(parts)}; generation.py's numpy "
            f"per step (greedy / beam 5, from {TYPICAL_STEPS}-token runs over fixed logits, {steps} steps) "
            f"{t[('numpy', 'greedy')][0] / steps:.3f} / {t[('numpy', 'beam')][0] / steps:.3f} ms (min); the step "
            f"graph holds {weights:.1f} MB of fp32 weights, read once per step whatever the rows (1 and 5 rows cost "
            f"about the same), and numpy's 5 x 384 @ 384 x {vocab} product over the vocabulary projection alone "
            f"({384 * vocab * 4 / 1e6:.1f} MB) takes {fmt(t[('numpy', 'proj')])} ms.")
    return table + '\n\n' + note
