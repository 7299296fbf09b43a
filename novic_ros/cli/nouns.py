"""novic-nouns: build the WordNet noun dictionary the object decoder trains on, or show what
WordNet knows about one label.

    novic-nouns build --out nouns.jsonl [--min-freq N] [--max-words N] [--wordnet DIR]
    novic-nouns show LABEL [--wordnet DIR]
"""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn, Sequence

from novic_ros.lexicon.categories import CategoryMap
from novic_ros.lexicon.nouns import build_dictionary, dictionary_summary, lookup_entry, save_dictionary
from novic_ros.lexicon.wordnet import ROOT_ENV, WordNet

PROG = 'novic-nouns'


class CliError(Exception):
    """A failure to report as one line on stderr, exit code 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse would print the whole usage and exit 2; one line and 1 like every other error
        raise CliError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="WordNet noun dictionary for training the NOVIC object decoder.")
    sub = parser.add_subparsers(dest='command', required=True, parser_class=_Parser)
    wordnet_help = f"WordNet 3.0 database directory (default: ${ROOT_ENV} or /usr/share/wordnet)"

    build = sub.add_parser('build', help="build the dictionary and write it as JSON Lines")
    build.add_argument('--out', required=True, help="output file (.jsonl)")
    build.add_argument(
        '--min-freq',
        type=int,
        default=0,
        help="keep senses tagged more often than this even when not a word's first object sense (default 0)",
    )
    build.add_argument('--max-words', type=int, default=3, help="longest label in words (default 3)")
    build.add_argument('--wordnet', help=wordnet_help)

    show = sub.add_parser('show', help="print the entry for one label")
    show.add_argument('label', help="a noun, e.g. 'hot dog'")
    show.add_argument('--wordnet', help=wordnet_help)
    return parser


def cmd_build(args: argparse.Namespace) -> None:
    if args.max_words < 1:
        raise CliError("--max-words must be at least 1")
    wn = WordNet.load(args.wordnet)
    entries = build_dictionary(wn, min_freq=args.min_freq, max_words=args.max_words)
    save_dictionary(entries, args.out)
    summary = dictionary_summary(entries)
    print(f"wrote {summary['count']} labels to {args.out} "
          f"({summary['multi_word_share']:.0%} multi-word, {summary['tagged_share']:.0%} tagged)")
    for lexname, count in summary['lexnames'].items():
        print(f"  {lexname:<16} {count:>6}")


def cmd_show(args: argparse.Namespace) -> None:
    wn = WordNet.load(args.wordnet)
    entry = lookup_entry(wn, args.label)
    if entry is None:
        raise CliError(f"no WordNet noun for {args.label!r}")
    synset = wn.synset(entry.synset)
    # The category and chain novic-classify --json and the node give this label (the default
    # categories): one hypernym chain per label everywhere.
    found = CategoryMap(wn).categorise(args.label)
    print(f"{entry.label}  [{entry.lexname}, synset {entry.synset:08d}, tagged {entry.freq}x]")
    print(f"  synonyms:  {', '.join(entry.synonyms) or '-'}")
    print(f"  category:  {found.category} (default categories; sense {found.sense or '-'})")
    print(f"  hypernyms: {' > '.join(found.hypernyms) or '-'}")
    print(f"  gloss:     {synset.gloss}")


COMMANDS = {'build': cmd_build, 'show': cmd_show}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        COMMANDS[args.command](args)
    except (CliError, FileNotFoundError, ValueError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
