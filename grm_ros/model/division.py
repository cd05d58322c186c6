"""GRM's idea in one place: token division and the three-group attention mask.

Every search token is sorted by a small MLP into one of two classes, given the pooled template:
class 0 stays "search only", class 1 may interact with the template. With the template tokens this gives
three groups (policy columns):

    0 template      attends to template and class-1 tokens
    1 search only   attends to class-0 and class-1 tokens
    2 interacting   attends to everyone, and everyone attends to it

So template and search-only tokens never exchange information, in either direction.

Two attention paths share one interface:
- ``reference`` reproduces the authors' masked softmax bit for bit: max over ALL keys, exp in float32,
  ``(e*A + eps/N) / (sum(e*A) + eps)``. It is differentiable in the policy, which is how the straight-through
  Gumbel decision passes gradients to the division MLP, so training always takes this path.
- ``fast`` gives the same result without the eps leakage, through ``scaled_dot_product_attention`` with a
  boolean mask built from the policy (exact zeros for forbidden pairs; any dtype).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ATTENTION_PATHS = ("fast", "reference")
POLICY_EPS = 1e-6  # the authors' softmax_with_policy eps


class DivisionPredictor(nn.Sequential):
    """MLP giving per-search-token log-probabilities of (class 0, class 1).

    The layer order fixes the checkpoint keys ``divide_predict.{0,2,4}``.
    """

    def __init__(self, dim: int, hidden: tuple[int, int]) -> None:
        super().__init__(
            nn.Linear(2 * dim, hidden[0]),
            nn.GELU(),
            nn.Linear(hidden[0], hidden[1]),
            nn.GELU(),
            nn.Linear(hidden[1], 2),
            nn.LogSoftmax(dim=-1),
        )


def division_features(tokens: Tensor, num_search: int) -> Tensor:
    """[search token ; channel-wise max over template tokens] for each search token, (B, Nx, 2C)."""
    search = tokens[:, -num_search:]
    target = tokens[:, :-num_search].amax(dim=1, keepdim=True)
    return torch.cat((search, target.expand_as(search)), dim=-1)


def decide(log_probs: Tensor, training: bool, threshold: float = 0.0, ratio: float = 0.0) -> Tensor:
    """One-hot (B, Nx, 2) decision in the dtype of ``log_probs``; column 1 = may interact.

    Training: hard Gumbel-Softmax (straight-through, so gradients reach the MLP); threshold/ratio ignored.
    Inference, ``threshold`` 0: class 1 iff log p1 > log p0. This is the authors' "argsort descending, first
    index" written as a comparison (exportable); on an exact tie argsort picks index 0, and so does ``>``.
    Inference, ``threshold`` tau != 0: class 1 iff softmax(log p)[0] < tau (the authors' ``if threshold:``).
    ``ratio`` > 0 then also forces the top int(Nx * ratio) tokens by log p1 into class 1.
    """
    if training:
        return F.gumbel_softmax(log_probs, tau=1.0, hard=True)
    if threshold:
        interact = F.softmax(log_probs, dim=-1)[..., 0] < threshold
    else:
        interact = log_probs[..., 1] > log_probs[..., 0]
    if ratio:
        k = int(log_probs.shape[1] * ratio)
        top = torch.topk(log_probs[..., 1], k=k, dim=-1).indices
        interact = interact.scatter(-1, top, True)
    return torch.stack((~interact, interact), dim=-1).to(log_probs.dtype)


def division_policy(decision: Tensor, num_template: int) -> Tensor:
    """(B, N, 3) group membership: template rows (1,0,0), search rows (0, decision)."""
    batch = decision.shape[0]
    template = decision.new_zeros(batch, num_template, 3)
    template[..., 0] = 1
    search = torch.cat((decision.new_zeros(batch, decision.shape[1], 1), decision), dim=-1)
    return torch.cat((template, search), dim=1)


def policy_links(policy: Tensor) -> Tensor:
    """A = P L P^T, (B, 1, N, N): 1 where query i may attend to key j.

    L links groups: every pair except template <-> search-only. Expanded, this is the authors'
    p0p0' + p1p1' + (p0+p1+p2)p2' + p2(p0+p1)', so it stays differentiable in a soft policy.
    """
    links = torch.ones(3, 3, dtype=policy.dtype, device=policy.device)
    links[0, 1] = 0
    links[1, 0] = 0
    return (policy @ links @ policy.transpose(1, 2)).unsqueeze(1)


def reference_policy_attention(q: Tensor, k: Tensor, v: Tensor, policy: Tensor,
                               eps: float = POLICY_EPS) -> Tensor:
    """The authors' softmax_with_policy, including max over masked keys and the eps/N leakage."""
    n = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    allowed = policy_links(policy)
    eye = torch.eye(n, dtype=allowed.dtype, device=allowed.device)
    allowed = allowed + (1.0 - allowed) * eye
    shifted = scores - scores.amax(dim=-1, keepdim=True)
    weights = shifted.to(torch.float32).exp() * allowed.to(torch.float32)
    attn = (weights + eps / n) / (weights.sum(dim=-1, keepdim=True) + eps)
    return attn.type_as(scores) @ v


def fast_policy_attention(q: Tensor, k: Tensor, v: Tensor, policy: Tensor) -> Tensor:
    """Fused attention with a boolean (B, 1, N, N) mask: forbidden pairs get exactly zero weight."""
    mask = policy_links(policy) > 0.5
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def plain_attention(q: Tensor, k: Tensor, v: Tensor, path: str) -> Tensor:
    """Unmasked attention of the first block, by the chosen path."""
    if path == "fast":
        return F.scaled_dot_product_attention(q, k, v)
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return scores.softmax(dim=-1) @ v


class DivisionAttention(nn.Module):
    """Multi-head self-attention; with ``divide`` the token division decides who attends to whom."""

    def __init__(self, dim: int, num_heads: int, divide: bool, division_hidden: tuple[int, int]) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.divide_predict = DivisionPredictor(dim, division_hidden) if divide else None

    def forward(self, tokens: Tensor, num_search: int, path: str, threshold: float = 0.0,
                ratio: float = 0.0) -> tuple[Tensor, Tensor | None]:
        """``tokens`` are the LN1 output, template tokens first. Returns (output, decision or None)."""
        b, n, c = tokens.shape
        qkv = self.qkv(tokens).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        if self.divide_predict is None:
            out, decision = plain_attention(q, k, v, path), None
        else:
            log_probs = self.divide_predict(division_features(tokens, num_search))
            decision = decide(log_probs, self.training, threshold, ratio)
            policy = division_policy(decision, n - num_search)
            if path == "fast" and not self.training:
                out = fast_policy_attention(q, k, v, policy)
            else:
                out = reference_policy_attention(q, k, v, policy)
        return self.proj(out.transpose(1, 2).reshape(b, n, c)), decision
