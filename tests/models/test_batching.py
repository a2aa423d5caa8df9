"""Batches evenly split, halved after an out-of-memory, and sized by a GPU's free memory (pure parts)."""

from __future__ import annotations

import pytest
import torch

from covermill.models import gpu_memory
from covermill.models.batching import describe_slices, even_slices, run_in_batches
from covermill.models.errors import OutOfMemory


def sizes(slices: list[tuple[int, int]]) -> list[int]:
    return [stop - start for start, stop in slices]


def test_rows_are_split_into_the_fewest_even_calls():
    assert sizes(even_slices(4368, 2048)) == [1456, 1456, 1456]  # not 2048 + 2048 + 272
    assert even_slices(10, 4) == [(0, 4), (4, 7), (7, 10)]
    assert even_slices(26, 128) == [(0, 26)]
    assert even_slices(7, 7) == [(0, 7)]
    assert sizes(even_slices(4369, 2048)) == [1457, 1456, 1456]
    assert sizes(even_slices(5, 1)) == [1] * 5
    assert even_slices(0, 8) == []
    assert describe_slices(even_slices(4368, 2048)) == "3 calls of 1456"
    assert describe_slices(even_slices(10, 4)) == "3 calls of 3-4"
    assert describe_slices(even_slices(26, 128)) == "1 call of 26"


def test_after_an_out_of_memory_the_remaining_rows_are_split_evenly_again():
    calls: list[tuple[int, int]] = []

    def run(start: int, stop: int) -> list[int]:
        calls.append((start, stop))
        if stop - start > 3 and start > 0:  # the first call fits; later ones past 3 rows do not
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return list(range(start, stop))

    halvings: list[tuple[int, int]] = []
    results, fits = run_in_batches(20, 8, run, on_halve=lambda tried, size: halvings.append((tried, size)))
    assert results == list(range(20))
    # 20 at 8: 7 + 7 + 6. The second call fails at 7 -> 3 a call, and the 13 left go as 3+3+3+2+2.
    assert calls == [(0, 7), (7, 14), (7, 10), (10, 13), (13, 16), (16, 18), (18, 20)]
    assert halvings == [(7, 3)] and fits == 3


def test_a_batch_of_one_that_does_not_fit_is_one_sentence_and_other_errors_pass_through():
    def never_fits(start: int, stop: int) -> list[int]:
        raise RuntimeError("CUDA error: out of memory")

    with pytest.raises(OutOfMemory, match="out of memory with a batch of one"):
        run_in_batches(4, 4, never_fits)

    def broken(start: int, stop: int) -> list[int]:
        raise ValueError("a bug, not memory")

    with pytest.raises(ValueError, match="a bug"):
        run_in_batches(4, 2, broken)


def test_rows_that_fit_keep_a_margin_of_the_free_memory():
    mb = 1_000_000
    assert gpu_memory.rows_that_fit(120_000 * mb, 4 * mb) == 27_000  # 120 GB free, 10 % kept, 4 MB a row
    assert gpu_memory.rows_that_fit(100 * mb, 4 * mb, margin=0.0) == 25
    assert gpu_memory.rows_that_fit(3 * mb, 4 * mb) == 1  # never none: the halving decides then


def test_the_fallback_cost_is_the_h200_figure_scaled_for_dtype_and_length():
    assert gpu_memory.fallback_row_bytes(256, 2) == 4_050_000
    assert gpu_memory.fallback_row_bytes(256, 4) == 8_100_000  # float32 rows are twice as large
    assert gpu_memory.fallback_row_bytes(512, 2) == 8_100_000
    assert gpu_memory.fallback_row_bytes(64, 2) == 4_050_000  # shorter: not less (the encoder's share stays)
