"""Run work in batches as large as the accelerator allows, evenly split, halving after an out-of-memory error."""

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


def even_slices(count: int, limit: int) -> list[tuple[int, int]]:
    """0..count in the fewest slices of at most `limit` items, their sizes differing by at most one
    (larger first): 4368 at 2048 is 3 x 1456, not 2048 + 2048 + 272, whose last call would cost
    a GPU as many decoding steps as a full one for a seventh of the rows."""
    if count <= 0:
        return []
    calls = -(-count // max(1, limit))
    size, larger = divmod(count, calls)
    slices, start = [], 0
    for call in range(calls):
        stop = start + size + (call < larger)
        slices.append((start, stop))
        start = stop
    return slices


def describe_slices(slices: list[tuple[int, int]]) -> str:
    """'3 calls of 1456', '3 calls of 3-4', '1 call of 26'."""
    sizes = [stop - start for start, stop in slices]
    if not sizes:
        return "no call"
    each = f"{max(sizes)}" if min(sizes) == max(sizes) else f"{min(sizes)}-{max(sizes)}"
    return f"{len(sizes)} call{'s' if len(sizes) > 1 else ''} of {each}"


def run_in_batches(count: int, batch_size: int, run: Callable[[int, int], Sequence[T]],
                   on_halve: Callable[[int, int], None] | None = None) -> tuple[list[T], int]:
    """`run(start, stop)` over 0..count in even slices of at most `batch_size` items (even_slices).

    A slice that runs out of memory is retried at half its size (down to 1), and the rows still to
    run are split evenly again under that smaller size, which is kept for the rest: the first
    failure says what fits. Returns the concatenated results and the batch size that fits (to
    start from next time).
    """
    results: list[T] = []
    size = max(1, batch_size)
    pending = even_slices(count, size)
    while pending:
        start, stop = pending[0]
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
            pending = [(start + a, start + b) for a, b in even_slices(count - start, size)]
            continue
        pending.pop(0)
    return results, size
