"""Next-token sampling for a batch of rows, each with its own temperature, top-k and top-p.

Pure tensor code (no model, no I/O), so the engine's decode loop stays short and these rules
are tested on their own. The order is the one vLLM and `transformers` use: temperature, then
top-k, then top-p (nucleus) on what top-k kept; temperature 0 means greedy (argmax).
"""

from __future__ import annotations

import torch


def sample_next(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row.

    Parameters
    ----------
    logits : (B, V) float
        Next-token logits.
    temperature : (B,) float
        0 means greedy for that row.
    top_k : (B,) int
        Most likely tokens kept; 0 keeps all.
    top_p : (B,) float in (0, 1]
        Smallest set of most likely tokens whose mass reaches top_p is kept.

    Returns
    -------
    tokens : (B,) long
    logprobs : (B,) float
        Log-probability of each drawn token under the distribution it was drawn from (after
        temperature, top-k and top-p; the plain softmax for greedy rows).
    """
    logits = logits.float()
    greedy = temperature <= 0
    safe_t = torch.where(greedy, torch.ones_like(temperature), temperature).float()
    scaled = logits / safe_t[:, None]
    if bool(((top_k > 0) | (top_p < 1.0)).any()):
        scaled = _truncate(scaled, top_k, top_p)
    logp = torch.log_softmax(scaled, dim=-1)
    drawn = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
    tokens = torch.where(greedy, logits.argmax(dim=-1), drawn)
    return tokens, logp.gather(1, tokens[:, None]).squeeze(1)


def _truncate(scaled: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Set to -inf every logit outside the row's top-k and top-p sets (one sort per call)."""
    sorted_logits, order = scaled.sort(dim=-1, descending=True)
    vocab = scaled.shape[-1]
    rank = torch.arange(vocab, device=scaled.device)[None, :]
    k = torch.where(top_k > 0, top_k, torch.full_like(top_k, vocab))
    drop = rank >= k[:, None]
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(sorted_logits, dim=-1)
    # Mass strictly before each token: a token is kept while that mass is below top_p, so the
    # most likely token is always kept and the kept set is the smallest reaching top_p.
    before = probs.cumsum(dim=-1) - probs
    drop = drop | (before >= top_p[:, None].float())
    return scaled.scatter(1, order, sorted_logits.masked_fill(drop, float("-inf")))
