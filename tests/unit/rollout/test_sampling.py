"""Per-row sampling: greedy, temperature, top-k and top-p keep exactly the tokens they should."""

from __future__ import annotations

import torch

from services.rollout.sampling import sample_next

LOGITS = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))


def draw(n: int, *, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
         seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    logits = LOGITS.expand(n, -1)
    return sample_next(logits, torch.full((n,), temperature), torch.full((n,), top_k),
                       torch.full((n,), top_p), generator=gen)


def test_greedy_rows_take_the_argmax_with_the_plain_logprob():
    tokens, logps = draw(50, temperature=0.0)
    assert tokens.eq(0).all()
    assert torch.allclose(logps, torch.log(torch.tensor(0.5)))


def test_top_k_keeps_only_the_k_most_likely():
    tokens, logps = draw(2000, top_k=2)
    assert set(tokens.tolist()) == {0, 1}
    # renormalised over the two kept tokens: 0.5/0.8 and 0.3/0.8
    assert torch.allclose(logps[tokens == 0], torch.log(torch.tensor(0.625)), atol=1e-5)


def test_top_p_keeps_the_smallest_set_reaching_p():
    assert set(draw(2000, top_p=0.75)[0].tolist()) == {0, 1}  # 0.5 < 0.75 <= 0.8
    assert set(draw(2000, top_p=0.5)[0].tolist()) == {0}  # the top token alone reaches 0.5
    assert set(draw(4000, top_p=1.0)[0].tolist()) == {0, 1, 2, 3}


def test_frequencies_follow_the_distribution():
    tokens, _ = draw(20000, seed=3)
    freq = torch.bincount(tokens, minlength=4).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.02)


def test_rows_keep_their_own_parameters():
    gen = torch.Generator().manual_seed(0)
    logits = LOGITS.expand(3, -1)
    for _ in range(200):
        tokens, _ = sample_next(logits, torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0, 1, 0]),
                                torch.tensor([1.0, 1.0, 0.5]), generator=gen)
        assert tokens[0] == 0 and tokens[1] == 0 and tokens[2] == 0
