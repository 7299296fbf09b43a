"""How the classifier turns embeddings into labels: one frozen value per classifier, so a change of
settings (a new label list, another mode) builds a new classifier and is never half-applied.

The defaults, documentation and per-field ranges live in the parameter table (novic_ros.params),
which converts into this type; what is checked here is what must hold between the fields.
"""
from __future__ import annotations

from dataclasses import dataclass

from .novic_decoding import AUTO, check_generation

MODES = ('generate', 'prompted', 'hybrid')


@dataclass(frozen=True)
class ClassifierOptions:
    mode: str                       # generate | prompted | hybrid (see classifier.py)
    labels: tuple[str, ...]         # prompted mode: the label list (unique, in order)
    prompt_template: str            # prompted and hybrid modes; '{}' is the label
    beam_width: int                 # 1 = greedy decoding
    max_tokens: int                 # most tokens per label; 0 = the decoder's own maximum
    top_k: int                      # labels per frame, best first
    min_score: float                # labels scoring below are dropped
    # A NOVIC checkpoint's decoder: auto (the reference's default configuration) or a reference
    # configuration name (core/novic_decoding.py); novic_ros's own decoders take auto only.
    generation: str = 'auto'
    # How frames become encoder input (core/preprocess.py): fast (banded matrix products, within a
    # measured tolerance of open_clip's pixels) or exact (Pillow: open_clip's pixels to the bit).
    preprocessing: str = 'fast'

    def __post_init__(self):
        object.__setattr__(self, 'labels', tuple(dict.fromkeys(self.labels)))
        # Each field's own range (mode's choices, top_k's bounds, ...) is the table's check (params.py).
        check_generation(self.generation)
        # A named configuration has its own beam width (its k): beam_width is then not used.
        if self.mode in ('generate', 'hybrid') and self.generation == AUTO and self.top_k > self.beam_width:
            raise ValueError(f"top_k ({self.top_k}) cannot exceed beam_width ({self.beam_width}) in {self.mode} mode: "
                             "the decoder only produces beam_width candidates; raise beam_width or lower top_k")
        if self.mode == 'prompted' and not self.labels:
            raise ValueError("mode 'prompted' needs a label list: set the `labels` or `labels_file` parameter")
        if '{}' not in self.prompt_template:
            raise ValueError(f"prompt_template {self.prompt_template!r} must contain {{}} where the label goes")
        try:        # '{0!r:>{1}}' or '{x}' also hold '{}' but fail on every label: refuse them here, not per frame
            self.prompt_template.format('label')
        except (IndexError, KeyError, ValueError, AttributeError) as e:
            raise ValueError(f"prompt_template {self.prompt_template[:80]!r} cannot be filled with a label ({e}): "
                             "write it with one plain {} and no other braces (double them: {{ }})") from None

