"""How many sequences fit in one generate call on a GPU: free memory over a measured cost per sequence.

On a GPU the decoding loop is bound by its per-step cost, so fewer, fuller calls win (H200, 4368
sequences of 256 tokens warm: one call 4.2 s, three calls 10.8 s): a call takes every row that fits.
The cost of a sequence is measured once per loaded model (models/pop2piano.py's warm-up); the
pure functions here turn it into a number of rows, and the torch calls stay thin.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

# Kept free: the caching allocator cannot always reuse the blocks a growing decoder cache frees
# (fragmentation), and cuBLAS workspaces and other processes' use are not in the measured cost.
# The out-of-memory halving stays as the safety net when 10 % is not enough.
MARGIN = 0.10
# When nothing could be measured: H200, bfloat16, 4368 sequences of 256 tokens peaked at 17.7 GB
# (4.05 MB a sequence; 2048 a call peaked at 8.4 GB, the same 4.1 MB).
FALLBACK_ROW_BYTES = 4_050_000
FALLBACK_TOKENS = 256
FALLBACK_DTYPE_BYTES = 2


def rows_that_fit(free_bytes: int, row_bytes: int, margin: float = MARGIN) -> int:
    """Sequences one call may take when each costs `row_bytes` and `margin` of the free memory is kept (at least one)."""
    return max(1, int(free_bytes * (1.0 - margin)) // max(1, int(row_bytes)))


def fallback_row_bytes(max_new_tokens: int, dtype_bytes: int) -> int:
    """The H200 figure scaled to this dtype and to longer sequences (never below it for shorter
    ones: the encoder's share does not shrink with the tokens)."""
    tokens = max(max_new_tokens, FALLBACK_TOKENS) / FALLBACK_TOKENS
    return round(FALLBACK_ROW_BYTES * tokens * dtype_bytes / FALLBACK_DTYPE_BYTES)


def free_bytes(device: str) -> int:
    """Memory a call may still use: what the driver has free plus what torch's allocator caches unused."""
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


@dataclass
class Peak:
    """Device memory a block of work allocated at its peak beyond what was allocated before it."""

    bytes: int = 0


@contextmanager
def peak_memory(device: str) -> Iterator[Peak]:
    """Measure the peak of the work inside (resets torch's peak statistics for the device)."""
    import torch

    peak = Peak()
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    yield peak
    torch.cuda.synchronize(device)
    peak.bytes = int(torch.cuda.max_memory_allocated(device) - before)
