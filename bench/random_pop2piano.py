"""A randomly initialised Pop2Piano saved as a model folder, for tests and the generate bench.

The real checkpoint (sweetcocoa/pop2piano) cannot be downloaded here, so tests and benches build
a model folder with the same files and load it through the real `from_pretrained` code. The
files are what the published checkpoint ships: config.json and the weights, generation_config.json
(the composer map, which a model built from a bare config lacks), and the processor's feature
extractor and tokenizer (vocab.json) configs.

    python bench/random_pop2piano.py FOLDER [--size tiny|real]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

ARRANGERS = 21
COMPOSER_TOKEN_BASE = 2052  # composer1 -> 2052 ... composer21 -> 2072 in the published checkpoint

# Pop2Piano's published size: a T5-small (59 M parameters); vocab 2400 holds the 21 composer tokens.
REAL = dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8, vocab_size=2400)
TINY = dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4)


def vocabulary() -> dict[str, int]:
    """The tokenizer's vocab: 2 special, 128 note, 2 velocity (on/off) and 100 time tokens."""
    names = [f"{v}_TOKEN_SPECIAL" for v in range(2)]
    names += [f"{p}_TOKEN_NOTE" for p in range(128)]
    names += [f"{v}_TOKEN_VELOCITY" for v in range(2)]
    names += [f"{t}_TOKEN_TIME" for t in range(100)]
    return {name: index for index, name in enumerate(names)}


def save_random_pop2piano(folder: Path, size: str = "tiny", seed: int = 0) -> Path:
    import torch
    from transformers import (
        GenerationConfig,
        Pop2PianoConfig,
        Pop2PianoFeatureExtractor,
        Pop2PianoForConditionalGeneration,
        Pop2PianoProcessor,
        Pop2PianoTokenizer,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    if size == "real":
        dims = dict(REAL)
        base = COMPOSER_TOKEN_BASE
    elif size == "tiny":
        dims = dict(TINY, vocab_size=len(vocab) + ARRANGERS)
        base = len(vocab)
    else:
        raise ValueError(f"size must be 'tiny' or 'real', got {size!r}")

    torch.manual_seed(seed)
    model = Pop2PianoForConditionalGeneration(Pop2PianoConfig(**dims))
    # Assigned whole: one derived from the model config would be saved as `_from_model_config`
    # and lose the composer map when read back.
    model.generation_config = GenerationConfig(
        composer_to_feature_token={f"composer{i}": base + i - 1 for i in range(1, ARRANGERS + 1)},
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    model.save_pretrained(folder)

    with tempfile.TemporaryDirectory() as scratch:
        vocab_file = Path(scratch) / "vocab.json"
        vocab_file.write_text(json.dumps(vocab))
        tokenizer = Pop2PianoTokenizer(vocab=str(vocab_file))
        # The features' width must equal d_model: the encoder reads them as embeddings.
        processor = Pop2PianoProcessor(Pop2PianoFeatureExtractor(feature_size=dims["d_model"]), tokenizer)
        processor.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    from random_model_cli import run

    run(save_random_pop2piano, __doc__)
