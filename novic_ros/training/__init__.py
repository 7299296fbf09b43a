"""Text-only training of the object decoder: the toy world and its CLIP, prompts about nouns,
cached text embeddings, the modality-gap tools and the trainer.

May import: core (models, checkpoints), lexicon (nouns), paths, atomic_file, image_files. Never ros,
backends, eval or cli.
"""
