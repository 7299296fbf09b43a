"""Which tokenizer a bundle's text encoder runs with, written into the bundle at export: CLIP BPE
(open_clip's SimpleTokenizer with its default cleaning: OpenAI, LAION, DFN CLIPs) or a Hugging Face
fast tokenizer (open_clip's HFTokenizer: SigLIP), carried as its tokenizer.json and run by the
`tokenizers` package (core/hf_tokenizer.py). Before a text encoder goes into a bundle, the runtime
tokenizer must give open_clip's ids on probe texts; otherwise the bundle gets no text encoder, and
the reason is logged, never a text encoder that embeds other tokens on the robot."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from open_clip.tokenizer import HFTokenizer, SimpleTokenizer, _clean_canonicalize, _clean_lower, _clean_whitespace

from ..core.clip_bpe import ClipBPE
from ..core.hf_tokenizer import NAME as HF_TOKENIZER
from ..core.hf_tokenizer import HFTextTokenizer
from ..core.label_tokens import TOKENIZER_NAME

TOKENIZER_JSON = 'tokenizer.json'
_CLEAN_NAMES = {_clean_whitespace: 'whitespace', _clean_lower: 'lower', _clean_canonicalize: 'canonicalize'}

# Nouns, prompts, case, punctuation, underscores, HTML entities, unicode, digits, and a text longer than
# any context (truncation keeps the end token): what a label list or a prompt template can hold.
PROBE_TEXTS = (
    'dog', 'a photo of a dog.', 'A photo of a Hot-Air Balloon!', 'traffic_light', 'fire  hydrant ', "o'clock",
    'caf\u00e9 cr\u00e8me', 'Schr\u00f6dinger\u2019s cat', '&amp; tom &amp;amp; jerry', 'r2-d2 robot, 3rd edition',
    '\u00bfqu\u00e9?', 'emoji \U0001F600 face', 'x-ray', '', ' '.join(['a very long caption'] * 40),
)


def _same(runtime, reference, texts, context: int) -> str | None:
    ours = runtime.tokenize(list(texts), context)
    theirs = reference(list(texts)).numpy()
    if ours.shape != theirs.shape:
        return f"token shape {ours.shape} differs from open_clip's {theirs.shape}"
    bad = [t for t, a, b in zip(texts, ours, theirs) if not np.array_equal(a, b)]
    return (
        f"ids differ from open_clip's for {bad[0][:40]!r}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else '')
        if bad
        else None
    )


def bundle_tokenizer(tokenizer, folder: Path, dynamic_length: bool) -> tuple[dict | None, object | None, str | None]:
    """(bundle.json's tokenizer entry, the runtime tokenizer, None) for a tokenizer a bundle can carry
    (writing its files into `folder`); (None, None, why not) otherwise. `dynamic_length`: whether the text
    graph can be cut after end-of-text (CLIP's causal towers only)."""
    if type(tokenizer) is SimpleTokenizer:
        if tokenizer.clean_fn is not _clean_lower or tokenizer.reduction_fn is not None:
            return (
                None,
                None,
                "its CLIP BPE tokenizer uses another cleaning or a token reduction than open_clip's default",
            )
        if tokenizer.vocab_size != 49408:
            return None, None, f"its tokenizer has {tokenizer.vocab_size} tokens, not CLIP's 49408"
        context = int(tokenizer.context_length)
        return {'name': TOKENIZER_NAME, 'context_length': context, 'dynamic_length': dynamic_length}, ClipBPE(), None
    if isinstance(tokenizer, HFTokenizer):
        if tokenizer.tokenizer_mode:
            return (
                None,
                None,
                f"its Hugging Face tokenizer runs in mode {tokenizer.tokenizer_mode!r}, which the runtime lacks",
            )
        clean = _CLEAN_NAMES.get(tokenizer.clean_fn)
        backend = getattr(tokenizer.tokenizer, 'backend_tokenizer', None)
        if clean is None or backend is None:
            return None, None, ("its Hugging Face tokenizer has no fast (tokenizer.json) form" if backend is None
                                else "its Hugging Face tokenizer cleans text in a way the runtime lacks")
        hf = tokenizer.tokenizer
        pad_id = hf.pad_token_id
        if pad_id is None:
            return None, None, "its Hugging Face tokenizer has no pad token"
        (folder / TOKENIZER_JSON).write_text(backend.to_str())
        options = {'clean': clean, 'pad_id': int(pad_id), 'strip_sep_token': bool(tokenizer.strip_sep_token),
                   'sep_id': None if hf.sep_token_id is None else int(hf.sep_token_id)}
        context = int(tokenizer.context_length)
        runtime = HFTextTokenizer(folder / TOKENIZER_JSON, context, **options)
        problem = _same(runtime, tokenizer, PROBE_TEXTS, context)
        if problem:
            (folder / TOKENIZER_JSON).unlink()
            return None, None, f"its Hugging Face tokenizer without transformers: {problem}"
        # A non-causal tower (SigLIP) pools over every position: the graph always takes the full context.
        return ({'name': HF_TOKENIZER, 'context_length': context, 'dynamic_length': False, 'file': TOKENIZER_JSON,
                 'options': options}, runtime, None)
    return None, None, f"its tokenizer ({type(tokenizer).__name__}) is neither CLIP BPE nor a Hugging Face tokenizer"
