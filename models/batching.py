"""Run work in batches as large as the accelerator allows, halving after an out-of-memory error."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from covermill.models.errors import OutOfMemory

T = TypeVar("T")


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _release_cached_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_in_batches(count: int, batch_size: int, run: Callable[[int, int], Sequence[T]],
                   on_halve: Callable[[int, int], None] | None = None) -> tuple[list[T], int]:
    """`run(start, stop)` over 0..count in slices of at most `batch_size` items.

    A slice that runs out of memory is retried at half its size (down to 1), and the smaller
    size is kept for the rest: the first failure says what fits. Returns the concatenated
    results and the batch size that fits (to start from next time).
    """
    results: list[T] = []
    size = max(1, batch_size)
    start = 0
    while start < count:
        stop = min(count, start + size)
        try:
            results.extend(run(start, stop))
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            _release_cached_memory()
            if stop - start == 1:
                raise OutOfMemory("out of memory with a batch of one; use a smaller model, another dtype or the CPU") from exc
            size = max(1, (stop - start) // 2)
            if on_halve is not None:
                on_halve(stop - start, size)
            continue
        start = stop
    return results, size
