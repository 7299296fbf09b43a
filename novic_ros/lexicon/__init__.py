"""Shared lexical data: a reader of Debian's WordNet 3.0 noun database (wordnet.py), the noun
dictionary built from it (nouns.py), the sense a free-text label means (label_senses.py) and the
coarse categories labels fall under (categories.py). Training draws its target nouns from here,
evaluation its synonyms and hypernyms for scoring, and stable labels and categories their senses
and ancestors.

May import: the standard library and novic_ros.atomic_file. Never torch, ROS or other subpackages.
"""
