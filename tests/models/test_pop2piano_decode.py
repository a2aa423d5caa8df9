"""Pop2Piano's compiled token reading gives exactly the notes transformers' tokenizer gives: on random
token rows over the whole vocabulary (and ids beyond it), and on the tiny model's covers of a real song."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import BatchFeature, Pop2PianoProcessor

from covermill.models import pop2piano
from covermill.models.notes import Note, sort_notes
from covermill.models.pop2piano_decode import notes_in_seconds, read_rows, token_table

from conftest import FEW_TOKENS


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return Pop2PianoProcessor.from_pretrained(tiny_model).tokenizer


def tokenizer_notes(tokenizer, ids: np.ndarray, features: BatchFeature) -> list[tuple[float, float, int, int]]:
    decoded = tokenizer.batch_decode(token_ids=ids, feature_extractor_output=features, return_midi=False)
    return sorted((float(n.start), float(n.end), int(n.pitch), int(n.velocity)) for n in decoded["notes"])


def compiled_notes(tokenizer, ids: np.ndarray, features: BatchFeature) -> list[tuple[float, float, int, int]]:
    table = token_table(tokenizer)
    starts, ends, pitches = notes_in_seconds(read_rows(ids, table), features["extrapolated_beatstep"][0], features["beatsteps"][0])
    return sorted((float(a), float(b), int(p), table.velocity) for a, b, p in zip(starts, ends, pitches))


def random_rows(tokenizer, rows: int, width: int, seed: int) -> np.ndarray:
    """Token rows as a model might write them, closed by EOS: mostly time steps and notes, some
    velocities, pads, early EOS, and ids the vocabulary lacks (read as a step back)."""
    rng = np.random.default_rng(seed)
    by_kind: dict[str, list[int]] = {}
    for token_id, text in tokenizer.decoder.items():
        by_kind.setdefault(text.split("_", 1)[1], []).append(token_id)
    pools = [by_kind["TOKEN_TIME"], by_kind["TOKEN_NOTE"], by_kind["TOKEN_VELOCITY"], by_kind["TOKEN_SPECIAL"],
             [max(tokenizer.decoder) + 1, max(tokenizer.decoder) + 7]]
    kinds = rng.choice(len(pools), size=(rows, width), p=[0.3, 0.55, 0.1, 0.02, 0.03])
    ids = np.array([[rng.choice(pools[k]) for k in row] for row in kinds], dtype=np.int64)
    ids[:, -1] = int(tokenizer.eos_token)
    return ids


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_random_rows_read_as_the_tokenizer_reads_them(tokenizer, dtype):
    rows, width = 40, 48
    rng = np.random.default_rng(7)
    beats = np.cumsum(rng.uniform(0.3, 0.7, size=rows * 8 + 24)).astype(dtype) + dtype(1.5)
    features = BatchFeature({"beatsteps": beats[None, : rows * 8], "extrapolated_beatstep": (beats - beats[0] * dtype(0.5))[None]})
    for seed in range(5):
        ids = random_rows(tokenizer, rows, width, seed)
        expected = tokenizer_notes(tokenizer, ids, features)
        assert len(expected) > 100  # the rows hold notes of every kind of ending
        assert compiled_notes(tokenizer, ids, features) == expected


def test_a_tiny_models_covers_decode_to_the_tokenizers_notes(tiny_model, wavs):
    generator = pop2piano.load({"model": str(tiny_model), "max_new_tokens": FEW_TOKENS, "arrangers": "1,2", "seeds": [0]})
    song = generator.song_features(wavs["song_a"])
    rows = [(variant, segment) for variant in generator.variants() for segment in range(song.segments)]
    tokens = generator.generate_rows(song, rows, len(rows), lambda: __import__("contextlib").nullcontext(), lambda _: None)
    for variant in generator.variants():
        row_tokens = [t for (v, _), t in zip(rows, tokens) if v == variant]
        ids = np.zeros((len(row_tokens), max(len(t) for t in row_tokens) + 1), dtype=np.int64)
        for i, t in enumerate(row_tokens):
            ids[i, : len(t)] = t.numpy()
        ids[:, -1] = int(generator.model.generation_config.eos_token_id)
        expected = sort_notes([Note(a, b, p, v) for a, b, p, v in tokenizer_notes(generator.processor.tokenizer, ids, song.features)
                               if b > a and v > 0])
        assert expected and generator.decode(song, row_tokens) == expected
