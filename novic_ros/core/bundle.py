"""The deployable bundle: one self-describing folder per model variant, all a runtime needs.

    bundle.json                  what is inside: CLIP model and weights fingerprint, preprocessing,
                                 logit scale, decoder shape, tokenizer, graphs per precision, file
                                 sizes and hashes, the versions that made it
    image_encoder.onnx           pixels -> unit embeddings (+ image_encoder.fp16.onnx, .int8.onnx,
                                 .ov_int8.xml/.bin: OpenVINO's int8 graph, backends/ov_quantize.py)
    decoder_prefill.onnx         embeddings -> first logits + key/value cache (+ .int8.onnx, .ov_int8.xml)
    decoder_step.onnx            one token + cache -> logits + cache (+ .int8.onnx, .ov_int8.xml)
    text_encoder.onnx            CLIP token ids -> unit text embeddings (prompted and hybrid modes)
    label_vocab.json             the decoder's compact vocabulary (CLIP token ids; or, for a SigLIP NOVIC
                                 checkpoint, its tokenizer's ids with label_tokenizer.json, that tokenizer)
    novic_targets.npy            a NOVIC authors' checkpoint's decoder: its nouns as compact ids (W x
                                 token_length), the guide of its reference generation (bundle.json
                                 decoder.novic: token_length, default_generation)
    bpe_simple_vocab_16e6.txt.gz CLIP's byte-pair vocabulary (the tokenizer's data)
    tokenizer.json               for a text tower with a Hugging Face tokenizer (SigLIP): that tokenizer,
                                 run with the `tokenizers` package (core/hf_tokenizer.py)

novic-export writes bundles where torch is (backends/onnx_export.py); this module reads them with
numpy and the standard library only, so a robot without torch loads one. A bundle is written to a
temporary folder renamed into place, and its files are checked against bundle.json on loading, so
a half-copied bundle is an error that says so, never a wrong label.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic_file import atomic_write_text
from .clip_bpe import VOCAB_FILE, ClipBPE, clip_bpe
from .clip_properties import ClipFacts
from .errors import ModelLoadError
from .hf_tokenizer import NAME as HF_TOKENIZER
from .hf_tokenizer import HFTextTokenizer
from .label_tokens import HF_LABEL_TOKENS, TOKENIZER_NAME, HfLabelVocab, LabelVocab
from .novic_decoding import NovicDecoding
from .preprocess import PreprocessConfig

FORMAT = 'novic_ros.bundle/1'
# Bumped when the exporter writes different graphs for the same weights (2: backends/export_attention's
# self-attention), so cached bundles and export records (core/export_record.py) of older graphs are
# exported again.
GRAPH_REVISION = 2
BUNDLE_FILE = 'bundle.json'
LABEL_VOCAB_FILE = 'label_vocab.json'
NOVIC_TARGETS_FILE = 'novic_targets.npy'
LABEL_TOKENIZER_FILE = 'label_tokenizer.json'
IMAGE_ENCODER, DECODER_PREFILL, DECODER_STEP, TEXT_ENCODER = (
    'image_encoder',
    'decoder_prefill',
    'decoder_step',
    'text_encoder',
)
# Graph precisions a bundle may hold: fp16 for TensorRT, int8 for ONNX Runtime, ov_int8 for OpenVINO
# (its own intermediate representation, an .xml graph with its .bin weights).
PRECISIONS = ('fp32', 'fp16', 'int8', 'ov_int8')
OV_IR_PRECISIONS = ('ov_int8',)


def graph_file(graph: str, precision: str) -> str:
    if precision in OV_IR_PRECISIONS:
        return f"{graph}.{precision}.xml"
    return f"{graph}.onnx" if precision == 'fp32' else f"{graph}.{precision}.onnx"


def file_record(path: Path) -> dict:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return {'bytes': path.stat().st_size, 'sha256': h.hexdigest()}


@dataclass(frozen=True)
class DecoderShape:
    """What a runtime needs to know of the decoder graphs (sizes of the key/value cache)."""
    vocab_size: int
    layers: int
    heads: int
    head_dim: int
    prefix_len: int
    max_positions: int
    eot: int

    @property
    def max_tokens(self) -> int:
        return self.max_positions - self.prefix_len


@dataclass(frozen=True)
class TokenizerInfo:
    name: str                    # label_tokens.TOKENIZER_NAME (CLIP BPE as open_clip's SimpleTokenizer) or
                                 # hf_tokenizer.NAME (a Hugging Face tokenizer.json, as open_clip's HFTokenizer)
    context_length: int
    dynamic_length: bool         # the text graph takes any length up to context_length (else exactly it)
    file: str | None = None      # hf_tokenizers: the tokenizer.json in the bundle
    options: dict = field(default_factory=dict)   # hf_tokenizers: clean, pad_id, strip_sep_token, sep_id

    def text_tokenizer(self, folder: Path):
        """The runtime tokenizer: an object with tokenize(texts, context_length) -> N x L int64 ids."""
        if self.name == TOKENIZER_NAME:
            return clip_bpe(str(folder / VOCAB_FILE))
        if self.name == HF_TOKENIZER:
            return HFTextTokenizer(folder / self.file, self.context_length, **self.options)
        raise ModelLoadError(
            f"bundle {folder}: tokenizer {self.name!r} is unknown to this version of novic_ros "
            f"(it knows {TOKENIZER_NAME} and {HF_TOKENIZER}); update novic_ros or export the bundle again"
        )


@dataclass(frozen=True)
class Bundle:
    folder: Path
    variant: str
    key: str
    clip: ClipFacts
    clip_model: str
    clip_pretrained: str | None
    decoder: DecoderShape | None         # None: exported without a decoder (prompted mode only)
    tokenizer: TokenizerInfo | None      # None: no text encoder (its tokenizer cannot run without torch)
    graphs: dict                         # graph -> {precision: file name}
    files: dict                          # file name -> {'bytes', 'sha256'}
    max_batch: int
    meta: dict                           # bundle.json as read

    def has_graph(self, graph: str, precision: str = 'fp32') -> bool:
        return precision in self.graphs.get(graph, {})

    def graph(self, graph: str, precision: str = 'fp32') -> Path:
        if not self.has_graph(graph, precision):
            raise ModelLoadError(
                f"bundle {self.folder} has no {precision} {graph} graph (it has: "
                f"{', '.join(sorted(self.graphs.get(graph, {}))) or 'none'}); export it with "
                f"`novic-export --model {self.variant} --precisions fp32,{precision}` where torch is installed")
        return self.folder / self.graphs[graph][precision]

    def require_decoder(self) -> DecoderShape:
        """The decoder's shape, or the refusal every backend gives for a prompted-only bundle."""
        if self.decoder is None:
            raise ModelLoadError(f"bundle {self.folder} has no decoder (it was exported for prompted mode only); "
                                 "use mode prompted, or export the variant with its decoder")
        return self.decoder

    def sha256(self, name: str) -> str:
        return self.files[name]['sha256']

    def label_vocab(self) -> LabelVocab:
        if self.decoder is None:
            raise ModelLoadError(f"bundle {self.folder} has no decoder (exported for prompted mode only)")
        data = json.loads((self.folder / LABEL_VOCAB_FILE).read_text())
        if data.get('kind') == HF_LABEL_TOKENS:
            vocab = HfLabelVocab(data['token_ids'], self.folder / data['tokenizer_file'], data['clean'])
        else:
            vocab = LabelVocab(data['clip_token_ids'], self.folder / self.tokenizer_file(), data.get('token_texts'))
        if len(vocab) != self.decoder.vocab_size or vocab.eot != self.decoder.eot:
            raise ModelLoadError(f"bundle {self.folder}: {LABEL_VOCAB_FILE} does not fit the decoder graphs")
        return vocab

    def novic_decoding(self) -> NovicDecoding | None:
        """A NOVIC checkpoint's decoding (its nouns' targets, token length, default generation), or None
        for novic_ros's own decoders."""
        novic = (self.meta.get('decoder') or {}).get('novic')
        if not novic:
            return None
        try:
            targets = np.load(self.folder / novic['targets_file'], allow_pickle=False)
            decoding = NovicDecoding(int(novic['token_length']), targets.astype(np.int64),
                                     str(novic['default_generation']))
        except (OSError, KeyError, TypeError, ValueError) as e:
            raise ModelLoadError(f"bundle {self.folder}: the NOVIC decoding it records cannot be read ({e}); export "
                                 "it again") from None
        if targets.ndim != 2 or targets.shape[1] != decoding.token_length or targets.size == 0 \
                or targets.min() < 0 or targets.max() >= self.decoder.vocab_size:
            raise ModelLoadError(
                f"bundle {self.folder}: {novic['targets_file']} does not fit its decoder; export it again"
            )
        return decoding

    def tokenizer_file(self) -> str:
        return self.meta['bpe_file']       # labels are spelled in CLIP BPE whether or not there is a text encoder

    def bpe(self) -> ClipBPE:
        return clip_bpe(str(self.folder / self.tokenizer_file()))

    def text_tokenizer(self):
        """The tokenizer of the text encoder graph (ClipBPE or HFTextTokenizer: tokenize(texts, length))."""
        if self.tokenizer is None:
            raise ModelLoadError(f"bundle {self.folder} has no text encoder: its CLIP model's tokenizer could not be "
                                 "carried (see its export log); prompted and hybrid modes need torch for this model")
        return self.tokenizer.text_tokenizer(self.folder)


def is_bundle(path: str | os.PathLike) -> bool:
    return (Path(path) / BUNDLE_FILE).is_file()


def _check_files(folder: Path, files: dict) -> None:
    """Every listed file present with its recorded size: a copy cut short is named, not loaded. (Sizes,
    not hashes: hashing a ViT-L bundle would cost seconds at every start.)"""
    for name, rec in files.items():
        p = folder / name
        if not p.is_file():
            raise ModelLoadError(f"bundle {folder} is incomplete: {name} is missing; copy the whole folder again")
        if p.stat().st_size != rec['bytes']:
            raise ModelLoadError(f"bundle {folder} is damaged: {name} has {p.stat().st_size} bytes, bundle.json "
                                 f"says {rec['bytes']}; copy the bundle again (or export it anew)")


def read_bundle(folder: str | os.PathLike, check: bool = True) -> Bundle:
    """The bundle in `folder`, checked; ModelLoadError says what is missing or wrong and how to fix it."""
    folder = Path(os.path.expanduser(str(folder)))
    path = folder / BUNDLE_FILE
    if not path.is_file():
        raise ModelLoadError(f"{folder} is not a novic_ros bundle ({BUNDLE_FILE} not found); make one with "
                             "novic-export --model VARIANT --out FOLDER")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"cannot read {path}: {e}") from None
    if meta.get('format') != FORMAT:
        raise ModelLoadError(f"{path}: format {meta.get('format')!r} is not {FORMAT!r}; export the bundle again "
                             "with this version of novic-export")
    try:
        c, d, t = meta['clip'], meta.get('decoder'), meta.get('tokenizer')
        pre = c['preprocess']
        clip = ClipFacts(PreprocessConfig(tuple(pre['size']), tuple(pre['mean']), tuple(pre['std']),
                                          pre['interpolation'], pre['resize_mode'], int(pre['fill_color'])),
                         float(c['logit_scale']), int(c['embed_dim']), c.get('fingerprint', ''))
        decoder = DecoderShape(**{k: int(d[k]) for k in DecoderShape.__dataclass_fields__}) if d else None
        tokenizer = TokenizerInfo(t['name'], int(t['context_length']), bool(t['dynamic_length']), t.get('file'),
                                  dict(t.get('options') or {})) if t else None
        if tokenizer is not None and tokenizer.name not in (TOKENIZER_NAME, HF_TOKENIZER):
            raise ValueError(f"tokenizer {tokenizer.name!r} is unknown to this version of novic_ros")
        bundle = Bundle(folder, meta['variant'], meta['key'], clip, c['model'], c.get('pretrained'), decoder,
                        tokenizer, meta['graphs'], meta['files'], int(meta['max_batch']), meta)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelLoadError(
            f"{path} is not a valid bundle description ({type(e).__name__}: {e}); export it again"
        ) from None
    if check:
        _check_files(folder, bundle.files)
    return bundle


def graph_files(folder: Path, name: str) -> list[str]:
    """A graph file and its weights file: ONNX external data (the exporter keeps large weights beside
    the graph) or an OpenVINO .xml graph's .bin."""
    weights = name[:-4] + '.bin' if name.endswith('.xml') else name + '.data'
    return [n for n in (name, weights) if (folder / n).is_file()]


def add_graphs(folder: str | os.PathLike, added: dict[str, dict[str, str]]) -> Bundle:
    """Record graph files written into an existing bundle (int8 or fp16 graphs made later): bundle.json
    is rewritten atomically, so a reader sees the bundle without them or with them complete."""
    folder = Path(folder)
    meta = json.loads((folder / BUNDLE_FILE).read_text())
    for graph, by_precision in added.items():
        for precision, name in by_precision.items():
            meta['graphs'].setdefault(graph, {})[precision] = name
            for f in graph_files(folder, name):
                meta['files'][f] = file_record(folder / f)
    atomic_write_text(folder / BUNDLE_FILE, json.dumps(meta, indent=2) + '\n')
    return read_bundle(folder)
