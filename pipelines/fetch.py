"""Stage 0 — fetch the raw corpora into data/ (official source, or $SEQFORGE_DATA_MIRROR)."""

import sys

from seqforge import paths
from seqforge.config import load_config
from seqforge.data.fetch import FetchError, fetch_corpus

if __name__ == "__main__":
    corpus = load_config().translation.corpus
    try:
        files = fetch_corpus(corpus, paths.raw_dir(corpus))
    except FetchError as err:
        sys.exit(f"fetch: {err}")
    print(f"fetch: {len(files)} {corpus} files verified in {paths.raw_dir(corpus)}")
