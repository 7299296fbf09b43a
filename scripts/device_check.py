"""The GPU check in one command (scripts/device_check.sh): the torch backend's image encoder and
object decoder, random weights at the shapes of ViT-B/32 + our decoder and of NOVIC's ViT-H-14-378
+ its decoder, batch 1 and 8, timed in fp16 eager, fp16 with the encoder in a CUDA graph, and
optionally torch.compile; top-1 agreement of each with fp32 on the CPU (same weights, same inputs);
one markdown table.

Needs only python3, torch and numpy (what a lent GPU machine has): the decoder, its key/value cache
and the beam search are this repository's (novic_ros.models, novic_ros.core.generation, imported
from the tree); the encoder is open_clip's when it imports (a carried wheel), else a plain-torch
ViT of the same shapes (pre-norm, fused attention). Nothing is downloaded. `--device cpu` runs the
same path on the CPU in fp32 (the test that keeps this script working, test/test_device_check.py).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from novic_ros.core.generation import beam_search  # noqa: E402
from novic_ros.models.decoder import DecoderConfig, ObjectDecoder  # noqa: E402
from novic_ros.models.torch_runners import TorchCachedRunner  # noqa: E402

VOCAB = 12654            # the noun dictionary's compact vocabulary (12,653 tokens + end-of-text)
TYPICAL_STEPS = 4        # a typical label: 2.4 tokens on average, plus end-of-text
# name: open_clip model, image size, (width, layers, heads, patch, embed), decoder config
MODELS = {
    'b32': ('ViT-B-32', 224, (768, 12, 12, 32, 512),
            dict(width=384, layers=4, heads=6, mlp_ratio=4.0)),                     # config/train/gpu.yaml
    'h14-378': ('ViT-H-14-378-quickgelu', 378, (1280, 32, 16, 14, 1024),
                dict(width=512, layers=6, heads=8, mlp_ratio=0.25, bias=False,       # NOVIC's released decoder
                     prefix_mlp='linear', causal_prefix=False)),
    # The test's: seconds on a CPU, the same code path (plain-torch encoder: open_clip has no such model).
    'tiny': (None, 64, (64, 2, 4, 16, 32), dict(width=64, layers=2, heads=4, mlp_ratio=2.0)),
}


class PlainViT(nn.Module):
    """CLIP's image tower at given shapes in plain torch: patches, class token, pre-norm blocks,
    projection to a unit embedding."""

    def __init__(self, image: int, width: int, layers: int, heads: int, patch: int, embed: int):
        super().__init__()
        self.heads = heads
        self.conv = nn.Conv2d(3, width, patch, patch, bias=False)
        n = (image // patch) ** 2 + 1
        self.cls = nn.Parameter(torch.randn(width) * 0.02)
        self.pos = nn.Parameter(torch.randn(n, width) * 0.01)
        self.pre = nn.LayerNorm(width)
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                dict(
                    ln1=nn.LayerNorm(width),
                    qkv=nn.Linear(width, 3 * width),
                    out=nn.Linear(width, width),
                    ln2=nn.LayerNorm(width),
                    fc=nn.Linear(width, 4 * width),
                    proj=nn.Linear(4 * width, width),
                )
            )
            for _ in range(layers)
        )
        self.post = nn.LayerNorm(width)
        self.proj = nn.Linear(width, embed, bias=False)

    def forward(self, x):
        x = self.conv(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], 1) + self.pos
        x = self.pre(x)
        B, N, D = x.shape
        for b in self.blocks:
            q, k, v = b['qkv'](b['ln1'](x)).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
            x = x + b['out'](F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, D))
            x = x + b['proj'](F.gelu(b['fc'](b['ln2'](x))))
        return F.normalize(self.proj(self.post(x[:, 0])), dim=-1)


def make_encoder(name: str, kind: str):
    oc_name, image, shape, _ = MODELS[name]
    if oc_name is None:
        kind, why = 'plain', 'no such model'
    if kind in ('auto', 'open_clip'):
        try:
            import open_clip
            model = open_clip.create_model(oc_name, pretrained=None).visual
            return _Normalised(model), f"open_clip {open_clip.__version__} {oc_name}"
        except Exception as e:                     # not carried, or this open_clip lacks the model
            if kind == 'open_clip':
                raise
            why = f"{type(e).__name__}: {str(e)[:60]}"
    elif oc_name is not None:
        why = 'asked for'
    return PlainViT(image, *shape), f"plain-torch ViT at {oc_name}'s shapes (open_clip: {why})"


class _Normalised(nn.Module):
    def __init__(self, visual):
        super().__init__()
        self.visual = visual

    def forward(self, x):
        return F.normalize(self.visual(x), dim=-1)


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def median_ms(fn, device, repeat: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


class GraphedEncoder:
    """The encoder captured in a CUDA graph per batch size (static input, replayed)."""

    def __init__(self, encoder, device):
        self.encoder, self.device, self.graphs = encoder, device, {}

    @torch.inference_mode()
    def __call__(self, pixels):
        b = pixels.shape[0]
        if b not in self.graphs:
            static = pixels.clone()
            s = torch.cuda.Stream(self.device)
            s.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(s):
                for _ in range(2):
                    self.encoder(static)
            torch.cuda.current_stream(self.device).wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                out = self.encoder(static)
            self.graphs[b] = (g, static, out)
        g, static, out = self.graphs[b]
        static.copy_(pixels)
        g.replay()
        return out


def top1(runner, embeds: np.ndarray, beam: int) -> list[tuple[int, ...]]:
    seqs = beam_search(runner, embeds, beam, TYPICAL_STEPS)
    return [tuple(int(t) for t in row[0]) for row in seqs.tokens]


def check_model(name: str, args, device) -> list[list]:
    torch.manual_seed(0)
    _, image, (_, _, _, _, embed), dec_kw = MODELS[name]
    encoder, enc_desc = make_encoder(name, args.encoder)
    decoder = ObjectDecoder(DecoderConfig(embed_dim=embed, vocab_size=VOCAB, max_tokens=12, **dec_kw))
    encoder.eval(), decoder.eval()
    gen = torch.Generator().manual_seed(1)
    pixels = {b: torch.randn(b, 3, image, image, generator=gen) for b in args.batches}
    check = pixels[max(args.batches)]
    with torch.inference_mode():                     # the reference: fp32 on the CPU, same weights and inputs
        ref_emb = encoder(check).numpy()
    ref = top1(TorchCachedRunner(decoder, VOCAB - 1), ref_emb, args.beam)
    print(f"{name}: encoder {enc_desc}; decoder {decoder.cfg.width}x{decoder.cfg.layers}, vocab {VOCAB}", flush=True)
    half = device.type == 'cuda'
    dtype = torch.float16 if half else torch.float32
    enc = encoder.to(device, dtype)
    dec = decoder.to(device, dtype)
    runner = TorchCachedRunner(dec, VOCAB - 1)
    modes = {'eager': enc}
    if device.type == 'cuda':
        modes['cuda graph'] = GraphedEncoder(enc, device)
    if args.compile:
        modes['torch.compile'] = torch.compile(enc, mode='max-autotune-no-cudagraphs' if half else 'default')
    rows = []
    for mode, run_enc in modes.items():
        with torch.inference_mode():
            emb = run_enc(check.to(device, dtype)).float().cpu().numpy()
        got = top1(runner, emb, args.beam)
        agree = np.mean([a == b for a, b in zip(got, ref)])
        for b in args.batches:
            x = pixels[b].to(device, dtype)

            def encode(x=x):
                with torch.inference_mode():
                    return run_enc(x)

            def frame(x=x):
                with torch.inference_mode():
                    e = run_enc(x).float().cpu().numpy()
                beam_search(runner, e, args.beam, TYPICAL_STEPS)

            e_np = encode().float().cpu().numpy()
            t_enc = median_ms(encode, device, args.repeat)
            t_dec = median_ms(lambda: beam_search(runner, e_np, args.beam, TYPICAL_STEPS), device, args.repeat)
            t_frame = median_ms(frame, device, args.repeat)
            rows.append([name, f"{'fp16' if half else 'fp32'} {mode}", b, t_enc, t_dec, t_frame, t_frame / b,
                         f"{agree:.0%} of {len(ref)}"])
            print('  ' + ' | '.join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in rows[-1]), flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog='device_check', description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument('--device', default='cuda', help='cuda, cuda:N or cpu (cpu: fp32, no CUDA graphs; the test)')
    p.add_argument('--models', default='b32,h14-378', help=f"comma-separated from {', '.join(MODELS)}")
    p.add_argument('--batches', default='1,8')
    p.add_argument('--beam', type=int, default=5)
    p.add_argument('--repeat', type=int, default=20, help='timed runs per figure (median)')
    p.add_argument(
        '--encoder',
        default='auto',
        choices=('auto', 'open_clip', 'plain'),
        help="open_clip's image tower (a carried wheel) or the plain-torch one; auto: open_clip if it imports",
    )
    p.add_argument('--compile', action='store_true', help='also time torch.compile (minutes of compiling on ViT-H)')
    p.add_argument('--out', default=None, help='also write the table to this file')
    args = p.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(',')]
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print(
            f"device {args.device}: torch {torch.__version__} sees no CUDA GPU; run with --device cpu", file=sys.stderr
        )
        return 2
    unknown = set(args.models.split(',')) - set(MODELS)
    if unknown:
        print(f"--models: unknown {sorted(unknown)}; choose from {', '.join(MODELS)}", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    what = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'CPU'
    head = (f"# device check, {time.strftime('%Y-%m-%d %H:%M')}\n\n{what}; torch {torch.__version__}"
            f"{', CUDA ' + torch.version.cuda if device.type == 'cuda' else ''}; {os.cpu_count()} CPU cores; "
            f"beam {args.beam}, {TYPICAL_STEPS} decoding steps; random weights; agreement: top-1 token sequence "
            f"= fp32 on the CPU (batch {max(args.batches)} inputs)\n")
    print(head, flush=True)
    rows = []
    for name in args.models.split(','):
        rows += check_model(name, args, device)
    header = ['model', 'precision / mode', 'batch', 'encode ms', 'decode ms (beam)', 'full frame ms', 'ms / frame',
              'top-1 = CPU fp32']
    table = '\n'.join(
        ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
        + ['| ' + ' | '.join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in r) + ' |' for r in rows]
    )
    print('\n' + table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(head + '\n' + table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
