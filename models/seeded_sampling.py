"""Sampling whose randomness belongs to each sequence, not to the batch it happens to run in.

`generate(do_sample=True)` draws every row from one shared random stream, so a candidate's notes
would depend on which other candidates shared its batch, and on the batch size (which halves after
a CUDA out-of-memory). Here each row carries a key (seed, arranger, segment) and the noise for a
step is a hash of (key, step, token): the Gumbel-max trick then turns greedy decoding into exact
sampling from the warped distribution. Same seed, same MIDI, in any batch, on any device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MASK32 = 0xFFFFFFFF


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (Chris Wellons' lowbias32) on int64 tensors holding values below 2**32.

    Products are taken in int64 and masked back to 32 bits; the low 32 bits of a wrapped int64
    product are exact, so CPU and CUDA agree bit for bit.
    """
    x = x & MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def hash32_int(x: int) -> int:
    """hash32 on one Python int (for keys, which are made one row at a time)."""
    x &= MASK32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK32
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK32
    return x ^ (x >> 16)


def row_key(seed: int, arranger: int, segment: int) -> int:
    """One sequence's identity as a 32-bit key."""
    key = seed & MASK32
    for part in (arranger, segment):
        key = hash32_int(key ^ hash32_int((part & MASK32) + 0x9E3779B9))
    return key


def gumbel_noise(keys: torch.Tensor, step: int, vocab_size: int) -> torch.Tensor:
    """Standard Gumbel noise of shape (rows, vocab), a pure function of (row key, step, token)."""
    base = hash32(keys.to(torch.int64) ^ hash32(torch.full_like(keys, step & MASK32, dtype=torch.int64)))
    tokens = torch.arange(vocab_size, device=keys.device, dtype=torch.int64)
    bits = hash32(base[:, None] ^ hash32(tokens[None, :] + 0x632BE5AB))
    uniform = (bits.to(torch.float64) + 0.5) / 4294967296.0  # strictly inside (0, 1)
    return -torch.log(-torch.log(uniform))


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    top_p: float = 1.0  # 1: no nucleus cut


class SeededSampler:
    """A logits processor for `generate(do_sample=False)`: warp, then add each row's own noise.

    `keys` holds one key per row of the batch, in batch order (greedy search never reorders rows).
    """

    def __init__(self, keys: torch.Tensor, settings: SamplingSettings):
        self.keys = keys
        self.settings = settings

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logits = scores.to(torch.float64) / self.settings.temperature
        logits = _top_k(logits, self.settings.top_k)
        logits = _top_p(logits, self.settings.top_p)
        noise = gumbel_noise(self.keys.to(scores.device), input_ids.shape[1], scores.shape[1])
        return (logits + noise).to(scores.dtype)


def _top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    if k <= 0 or k >= logits.shape[1]:
        return logits
    threshold = torch.topk(logits, k, dim=1).values[:, -1:]
    return logits.masked_fill(logits < threshold, float("-inf"))


def _top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches p (always the top one)."""
    if p >= 1.0:
        return logits
    ordered, order = torch.sort(logits, dim=1, descending=True)
    probabilities = torch.softmax(ordered, dim=1)
    mass_before = probabilities.cumsum(dim=1) - probabilities
    drop_sorted = mass_before >= p
    drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))
