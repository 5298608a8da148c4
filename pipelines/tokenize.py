"""Stage — train the subword tokenizer on train, encode every split to token ids."""

import sys

from seqforge import paths
from seqforge.config import ConfigError, load_config
from seqforge.data.tokenize import tokenize_splits

if __name__ == "__main__":
    try:
        cfg = load_config()
    except ConfigError as err:
        sys.exit(f"tokenize: {err}")
    splits, tokenizer = tokenize_splits(paths.prepared_dir("translation"), cfg.tokenizer)
    out = paths.tokenized_dir("translation")
    splits.save_to_disk(str(out))
    tokenizer.save(paths.tokenizer_file("translation"))
    print(f"tokenize: vocab {tokenizer.vocab_size('source')}/{tokenizer.vocab_size('target')} "
          f"(joint={tokenizer.joint}) -> {out}")
