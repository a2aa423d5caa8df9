"""Per-row seeded sampling: exact draws from the warped distribution, whatever the batch holds."""

from __future__ import annotations

import pytest
import torch

from covermill.models.seeded_sampling import SamplingSettings, SeededSampler, gumbel_noise, hash32, hash32_int, row_key

PROBABILITIES = torch.tensor([0.5, 0.3, 0.15, 0.05])


def draw(settings: SamplingSettings, rows: int = 20000, step: int = 7) -> torch.Tensor:
    """One token per row, each row with its own key, from the same logits."""
    keys = torch.tensor([row_key(seed, 1, 0) for seed in range(rows)], dtype=torch.int64)
    scores = PROBABILITIES.log().repeat(rows, 1).float()
    input_ids = torch.zeros((rows, step), dtype=torch.long)
    return SeededSampler(keys, settings)(input_ids, scores).argmax(dim=1)


def shares(tokens: torch.Tensor) -> list[float]:
    return (torch.bincount(tokens, minlength=4).float() / len(tokens)).tolist()


def test_draws_follow_the_model_distribution():
    assert shares(draw(SamplingSettings())) == pytest.approx(PROBABILITIES.tolist(), abs=0.015)


def test_temperature_top_k_and_top_p_warp_it():
    hot = PROBABILITIES ** (1 / 2.0)
    assert shares(draw(SamplingSettings(temperature=2.0))) == pytest.approx((hot / hot.sum()).tolist(), abs=0.015)
    assert shares(draw(SamplingSettings(top_k=2))) == pytest.approx([0.5 / 0.8, 0.3 / 0.8, 0, 0], abs=0.015)
    # nucleus 0.7: token 1 is kept (0.5 before it), token 2 is not (0.8 before it)
    assert shares(draw(SamplingSettings(top_p=0.7))) == pytest.approx([0.5 / 0.8, 0.3 / 0.8, 0, 0], abs=0.015)
    assert set(draw(SamplingSettings(top_p=0.1)).tolist()) == {0}  # the top token always survives


def test_noise_belongs_to_the_row_and_step_not_the_batch():
    keys = torch.tensor([row_key(0, a, s) for a in range(1, 4) for s in range(5)], dtype=torch.int64)
    together = gumbel_noise(keys, 12, 50)
    assert torch.equal(gumbel_noise(keys[7:8], 12, 50), together[7:8])
    assert not torch.equal(gumbel_noise(keys, 13, 50), together)
    assert len({row_key(seed, a, s) for seed in range(3) for a in range(1, 22) for s in range(200)}) == 3 * 21 * 200
    assert torch.isfinite(together).all()


def test_hash_is_a_32_bit_mix_with_known_values():
    numbers = [0, 1, 2, 12345, 0x9E3779B9, 0xFFFFFFFF]
    values = hash32(torch.tensor(numbers, dtype=torch.int64))
    assert values.min() >= 0 and values.max() < 2**32
    assert values.tolist() == [hash32_int(n) for n in numbers]  # tensors (noise) and ints (keys) agree
    # lowbias32 of 1, computed by hand from its definition, pins the arithmetic across torch versions
    x = 1
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    x ^= x >> 16
    assert int(values[1]) == x and int(values[0]) == 0
    assert len(set(values.tolist())) == len(numbers)
