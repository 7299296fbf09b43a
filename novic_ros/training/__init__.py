"""Text-only training of the object decoder: the toy world and its CLIP, prompts about nouns,
the memory-mapped text-embedding cache, the data-parallel trainer (torchrun) with its resumable
state and stop signals, and the modality-gap tools.

May import: core, models (decoder, CLIP, checkpoints), lexicon (nouns), paths, atomic_file and
frames (image files). Never ros, backends, eval or cli.
"""
