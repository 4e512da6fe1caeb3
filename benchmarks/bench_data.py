"""Speed of the data layer on the real corpora: reading, tokenizing and tagging every NCBI/BC5CDR file.

MERNLIB_DATA=../shared/corpora python benchmarks/bench_data.py
"""

import time

from mernlib.data import corpus_files
from mernlib.pubtator import read_pubtator_with_notes
from mernlib.tags import concept_tags, ner_tags, sentence_mentions
from mernlib.tokenize import tokenize_document


def main() -> None:
    for corpus in ("ncbi-disease", "bc5cdr"):
        began = time.perf_counter()
        documents = [d for path in corpus_files(corpus).values() for d in read_pubtator_with_notes(path)[0]]
        read = time.perf_counter() - began
        began = time.perf_counter()
        sentences = [(d, s) for d in documents for s in tokenize_document(d)]
        tokenized = time.perf_counter() - began
        began = time.perf_counter()
        for d, s in sentences:
            here = sentence_mentions(s, d)
            ner_tags(s, here)
            concept_tags(s, here)
        tagged = time.perf_counter() - began
        print(
            f"{corpus}: {len(documents)} documents, {len(sentences)} sentences; read {read:.2f} s, "
            f"tokenize {tokenized:.2f} s ({len(sentences) / tokenized:,.0f} sentences/s), tag {tagged:.2f} s"
        )


if __name__ == "__main__":
    main()
