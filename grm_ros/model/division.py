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
  boolean mask built by comparing group ids (exact zeros for forbidden pairs). A boolean mask carries no
  dtype, so fp16/bf16 queries never meet an fp32 mask. It also splits the division MLP's first layer so the
  pooled-template half is computed once instead of once per search token.

Appendix C.2 of the paper notes that a converged model's division often never changes in some layers. Such a
layer can be fixed by its variant's ``division_modes`` (see ``skipping.py``): ``two_stream`` (every search
token class 0) or ``one_stream`` (every search token class 1); it then has no division MLP at all.

Appendix C.3 replaces the categorisation by continuous attention scaling (the variant's
``attention_scaling``): the division MLP's class-1 probability p_j of search token j multiplies the attention
weights of the pairs (template query, search key j) and (search query j, template key), i.e.
w_ij ∝ exp(s_ij) * p_j; template<->template and search<->search pairs are unscaled. "region" first averages
p over non-overlapping k x k windows of the search grid (``scaling_window``) and broadcasts it back. No
Gumbel sampling: training and inference compute the same function, differentiable end to end. The
reference path is that explicit softmax in float32; the fast path is SDPA with the additive bias log p
(p clamped at ``SCALING_FLOOR`` so no -inf), in the dtype of q.

Reading the division with a forward hook (``DivisionAttention`` returns ``(output, decision)``): in eval,
``decision`` of a dividing layer is (B, Nx, 2), column 1 per search token in row-major grid order, so
``decision[..., 1].reshape(B, F, F)`` is the map to plot. It is one-hot for a discrete or fixed layer and
(1 - p, p) for a C.3 layer, p being the probability that scaled the attention (pooled in "region" mode).
Non-dividing blocks return None.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from grm_ros.model.config import ATTENTION_SCALINGS, DIVISION_MODES

ATTENTION_PATHS = ("fast", "reference")

POLICY_EPS = 1e-6  # the authors' softmax_with_policy eps
# C.3 fast path: p is clamped here before its log, so the bias is finite; a pair's weight then differs
# from the reference's by at most this factor of its unscaled weight.
SCALING_FLOOR = 1e-6


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

    def split_forward(self, search: Tensor, template_max: Tensor) -> Tensor:
        """The same log-probabilities without building [search ; template] per token: the first layer is
        W_s s + (W_t t + b), and the template half is one row shared by every search token."""
        first = self[0]
        dim = search.shape[-1]
        hidden = F.linear(search, first.weight[:, :dim]) + F.linear(template_max, first.weight[:, dim:],
                                                                    first.bias)
        for layer in list(self)[1:]:
            hidden = layer(hidden)
        return hidden


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
                               eps: float = POLICY_EPS, bounded: bool = False) -> Tensor:
    """The authors' softmax_with_policy, including max over masked keys and the eps/N leakage.

    ``bounded`` (used in training) shifts by the max over *allowed* keys and caps forbidden keys' exponents
    at 0. The value is unchanged up to the eps leakage, but the denominator can no longer fall to eps, so
    the straight-through gradient of a forbidden key stays below 1 instead of reaching 1/eps. Unbounded,
    those gradients measured 1e6..1e11 on a model trained from scratch, and with the recipe's clipping of
    the total norm to 0.1 they scaled every other parameter's update to almost nothing.
    """
    n = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    allowed = policy_links(policy)
    eye = torch.eye(n, dtype=allowed.dtype, device=allowed.device)
    allowed = allowed + (1.0 - allowed) * eye
    if bounded:
        top = scores.masked_fill(allowed.detach() < 0.5, float("-inf")).amax(dim=-1, keepdim=True)
        shifted = (scores - top).clamp(max=0.0)
    else:
        shifted = scores - scores.amax(dim=-1, keepdim=True)
    weights = shifted.to(torch.float32).exp() * allowed.to(torch.float32)
    attn = (weights + eps / n) / (weights.sum(dim=-1, keepdim=True) + eps)
    return attn.type_as(scores) @ v


def policy_groups(policy: Tensor) -> Tensor:
    """(B, N) int8 group ids of a one-hot policy: 0 template, 1 search only, 2 interacting."""
    return (policy[..., 1] + 2 * policy[..., 2]).round().to(torch.int8)


def group_mask(groups: Tensor) -> Tensor:
    """Boolean (B, 1, N, N) "query i may attend to key j" from (B, N) group ids.

    The one forbidden pair {template, search only} = {0, 1} is the only one whose ids sum to 1, so the
    mask is a single comparison (no matmul, exportable to ONNX), the same links as ``policy_links``.
    """
    return ((groups[:, :, None] + groups[:, None, :]) != 1).unsqueeze(1)


def fast_policy_attention(q: Tensor, k: Tensor, v: Tensor, policy: Tensor) -> Tensor:
    """Fused attention with a boolean mask from a one-hot policy: forbidden pairs get exactly zero weight."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=group_mask(policy_groups(policy)))


def two_stream_attention(q: Tensor, k: Tensor, v: Tensor, num_search: int) -> Tensor:
    """All search tokens class 0: template and search attend only within themselves, so two smaller
    attentions replace the masked N x N one. Queries may be the search rows alone (``search_only``)."""
    nz = k.shape[-2] - num_search
    search = F.scaled_dot_product_attention(q[..., -num_search:, :], k[..., nz:, :], v[..., nz:, :])
    if q.shape[-2] == num_search:
        return search
    template = F.scaled_dot_product_attention(q[..., :nz, :], k[..., :nz, :], v[..., :nz, :])
    return torch.cat((template, search), dim=-2)


def fixed_decision(tokens: Tensor, num_search: int, mode: str) -> Tensor:
    """The one-hot decision a fixed-mode layer stands for (used by the reference path)."""
    decision = tokens.new_zeros(tokens.shape[0], num_search, 2)
    decision[..., 1 if mode == "one_stream" else 0] = 1
    return decision


def interaction_probability(log_probs: Tensor, scaling: str, window: int) -> Tensor:
    """(B, Nx) class-1 probability per search token; "region" averages it over window x window cells of
    the (square, row-major) search grid and gives every token its window's value."""
    p = log_probs[..., 1].exp()
    if scaling == "token":
        return p
    b, nx = p.shape
    side = math.isqrt(nx)
    if side * side != nx or side % window:
        raise ValueError(f"region scaling needs a square search grid divisible by {window}, got {nx} tokens")
    cells = side // window
    grid = p.reshape(b, cells, window, cells, window)
    return grid.mean(dim=(2, 4), keepdim=True).expand_as(grid).reshape(b, nx)


def cross_pairs(search_values: Tensor, num_template: int, neutral: float) -> Tensor:
    """(B, 1, N, N): ``neutral`` everywhere except template<->search pairs, which take the search token's
    value (either direction). Built from products of indicator vectors, so it exports to ONNX."""
    b, nx = search_values.shape
    options = {"dtype": search_values.dtype, "device": search_values.device}
    template = torch.cat((torch.ones(num_template, **options), torch.zeros(nx, **options)))
    delta = torch.cat((search_values.new_zeros(b, num_template), search_values - neutral), dim=1)
    pairs = template[None, :, None] * delta[:, None, :] + delta[:, :, None] * template[None, None, :]
    return (pairs + neutral).unsqueeze(1)


def reference_scaled_attention(q: Tensor, k: Tensor, v: Tensor, p: Tensor) -> Tensor:
    """C.3 as written: softmax weights exp(s_ij) times the pair's probability, renormalised, in float32."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    weights = (scores - scores.amax(dim=-1, keepdim=True)).to(torch.float32).exp()
    weights = weights * cross_pairs(p.to(torch.float32), k.shape[-2] - p.shape[-1], 1.0)
    return (weights / weights.sum(dim=-1, keepdim=True)).type_as(scores) @ v


def fast_scaled_attention(q: Tensor, k: Tensor, v: Tensor, p: Tensor) -> Tensor:
    """C.3 through SDPA: the same weights as an additive log p bias in q's dtype; ``q`` may hold the
    search rows alone."""
    log_p = p.to(torch.float32).clamp(min=SCALING_FLOOR).log()
    bias = cross_pairs(log_p, k.shape[-2] - p.shape[-1], 0.0).to(q.dtype)[..., -q.shape[-2]:, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


def plain_attention(q: Tensor, k: Tensor, v: Tensor, path: str) -> Tensor:
    """Unmasked attention of the first block, by the chosen path."""
    if path == "fast":
        return F.scaled_dot_product_attention(q, k, v)
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return scores.softmax(dim=-1) @ v


class DivisionAttention(nn.Module):
    """Multi-head self-attention; with ``divide`` the token division decides who attends to whom.

    ``mode`` (see ``DIVISION_MODES``) fixes a dividing layer's decision instead of predicting it; such a
    layer has no ``divide_predict``. The reference path treats a fixed layer as the authors' masked softmax
    with that constant decision, so it stays the parity baseline for a derived variant too. ``scaling``
    (see ``ATTENTION_SCALINGS``) turns a predicting layer into C.3's continuous attention scaling, with
    ``window`` the side of a "region" window.
    """

    def __init__(self, dim: int, num_heads: int, divide: bool, division_hidden: tuple[int, int],
                 mode: str = "auto", scaling: str = "none", window: int = 2) -> None:
        super().__init__()
        if mode not in DIVISION_MODES:
            raise ValueError(f"unknown division mode {mode!r}; choose one of {DIVISION_MODES}")
        if scaling not in ATTENTION_SCALINGS:
            raise ValueError(f"unknown attention scaling {scaling!r}; choose one of {ATTENTION_SCALINGS}")
        self.num_heads = num_heads
        self.divide = divide
        self.mode = mode if divide else "auto"
        self.scaling = scaling if divide and self.mode == "auto" else "none"
        self.window = window
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.divide_predict = (DivisionPredictor(dim, division_hidden) if divide and self.mode == "auto"
                               else None)

    def forward(self, tokens: Tensor, num_search: int, path: str, threshold: float = 0.0,
                ratio: float = 0.0, search_only: bool = False,
                log_probs_out: list[Tensor] | None = None) -> tuple[Tensor, Tensor | None]:
        """``tokens`` are the LN1 output, template tokens first. Returns (output, decision or None).

        ``search_only`` (fast path) attends from the search rows alone and returns (B, Nx, C): the last
        block's template rows feed nothing the head reads. A layer with a division MLP appends its
        (B, Nx, 2) log-probabilities to ``log_probs_out`` when given (the C.1 loss reads them), so the
        return value a forward hook sees stays (output, decision).
        """
        b, n, c = tokens.shape
        qkv = self.qkv(tokens).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        fast = path == "fast" and not self.training
        if search_only:
            if not fast:
                raise ValueError("search_only attention is part of the fast inference path only")
            q = q[..., -num_search:, :]
        if not self.divide:
            out, decision = plain_attention(q, k, v, path), None
        elif self.mode != "auto":
            decision = fixed_decision(tokens, num_search, self.mode)
            if not fast:
                out = reference_policy_attention(q, k, v, division_policy(decision, n - num_search))
            elif self.mode == "one_stream":
                out = F.scaled_dot_product_attention(q, k, v)
            else:
                out = two_stream_attention(q, k, v, num_search)
        elif self.scaling != "none":
            if threshold or ratio:
                raise ValueError(f"attention scaling ({self.scaling!r}, appendix C.3) has no discrete "
                                 f"division to tune: threshold and ratio must be 0, got {threshold}, {ratio}")
            log_probs = self._log_probs(tokens, num_search, fast)
            p = interaction_probability(log_probs, self.scaling, self.window)
            out = fast_scaled_attention(q, k, v, p) if fast else reference_scaled_attention(q, k, v, p)
            decision = torch.stack((1.0 - p, p), dim=-1)
        elif fast:
            log_probs = self._log_probs(tokens, num_search, fast)
            decision = decide(log_probs, False, threshold, ratio)
            groups = torch.cat((decision.new_zeros(b, n - num_search), decision[..., 1] + 1), dim=1)
            mask = group_mask(groups.to(torch.int8))[..., -q.shape[-2]:, :]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            log_probs = self._log_probs(tokens, num_search, fast)
            decision = decide(log_probs, self.training, threshold, ratio)
            out = reference_policy_attention(q, k, v, division_policy(decision, n - num_search),
                                             bounded=self.training)
        if log_probs_out is not None and self.divide_predict is not None:
            log_probs_out.append(log_probs)
        return self.proj(out.transpose(1, 2).reshape(b, q.shape[-2], c)), decision

    def _log_probs(self, tokens: Tensor, num_search: int, fast: bool) -> Tensor:
        """The division MLP's (B, Nx, 2) log-probabilities; the fast path shares the template half."""
        if fast:
            template_max = tokens[:, :-num_search].amax(dim=1, keepdim=True)
            return self.divide_predict.split_forward(tokens[:, -num_search:], template_max)
        return self.divide_predict(division_features(tokens, num_search))
