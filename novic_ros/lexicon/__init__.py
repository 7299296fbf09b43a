"""Shared lexical data: a reader of Debian's WordNet 3.0 noun database (wordnet.py) and the noun
dictionary built from it (nouns.py). Training draws its target nouns from here, evaluation its
synonyms and hypernyms for scoring, and the category mapping its ancestors.

May import: the standard library and novic_ros.atomic_file. Never torch, ROS or other subpackages.
"""
