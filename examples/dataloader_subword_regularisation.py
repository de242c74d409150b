#!/usr/bin/env python
"""Subword regularisation in a PyTorch DataLoader, reproducibly.

Trains a tiny vocabulary on the bundled corpora (falls back to the vendored
test model if the trainer is unavailable), then builds two loaders whose every
sample is a pure function of (seed, epoch, document index, text):

1. a map-style dataset of sentences, padded batches, two workers;
2. a stream over a text file, packed into fixed-length blocks for
   language-model training, with <eos> between documents.

    python examples/dataloader_subword_regularisation.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parent.parent
try:
    import bytepiece  # noqa: F401
except ImportError:  # running from a checkout built with `setup.py build_ext --inplace`
    sys.path.insert(0, str(ROOT))

from bytepiece import Tokenizer  # noqa: E402
from bytepiece.data import EncodeTransform, TextStream, TokenizedDataset, pad  # noqa: E402

CORPORA = sorted((ROOT / "corpora").glob("*.train.txt"))
VENDORED = ROOT / "tests" / "data" / "bytepiece.plus.40k.zip"


def tiny_model(directory: Path) -> Path:
    """A 3,000-piece vocabulary trained on the English corpus (a few seconds)."""
    try:
        from bytepiece.trainer import Trainer
    except ImportError:
        print(f"(no trainer here: using the vendored model {VENDORED.name})")
        return VENDORED
    path = directory / "tiny.model"
    trainer = Trainer(order=6, max_vocab_size=3000, verbose=False)
    trainer.train_files([str(p) for p in CORPORA if p.name.startswith("en.")])
    trainer.save(path)
    print(f"trained {path.name} on {', '.join(p.name for p in CORPORA if p.name.startswith('en.'))}")
    return path


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model(Path(tmp))
        tok = Tokenizer(model)
        # alpha: 0 samples uniformly over all segmentations, larger is closer to Viterbi.
        transform = EncodeTransform(tok, alpha=0.3, seed=0, add_bos=True, add_eos=True, max_length=48)

        sentences = [
            "Subword regularisation samples a new segmentation every epoch.",
            "The same seed gives the same samples in every worker and process.",
            "Workers never repeat each other's samples.",
            "In the beginning, God created the heavens and the earth.",
        ]
        dataset = TokenizedDataset(sentences, transform)
        loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=pad)
        for epoch in range(2):
            dataset.set_epoch(epoch)  # before iterating: fresh workers get this epoch
            batch = next(iter(loader))
            print(f"\nepoch {epoch}: input_ids {tuple(batch['input_ids'].shape)}, lengths {batch['lengths'].tolist()}")
            first = batch["input_ids"][0, 1 : batch["lengths"][0] - 1].tolist()
            print("  " + " | ".join(tok.decode_bytes([i]).decode("utf-8", "replace") for i in first))

        stream = TextStream(
            ROOT / "corpora" / "en.heldout.txt", EncodeTransform(tok, alpha=0.3, seed=0), block_size=16, output="torch"
        )  # <eos> after each document
        blocks = DataLoader(stream, batch_size=4, num_workers=2)
        for epoch in range(2):
            stream.set_epoch(epoch)
            batch = next(iter(blocks))
            print(f"\npacked, epoch {epoch}: {tuple(batch.shape)} {batch.dtype}")
            print("  " + repr(tok.decode(batch[0].tolist())))


if __name__ == "__main__":
    main()
