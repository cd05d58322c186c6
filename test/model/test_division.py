"""Token division and the three-group mask, on hand-made policies and log-probabilities."""

from __future__ import annotations

import math

import pytest
import torch

from grm_ros.model.division import (
    decide,
    division_policy,
    fast_policy_attention,
    policy_links,
    reference_policy_attention,
)

PATHS = {"reference": reference_policy_attention, "fast": fast_policy_attention}
NUM_TEMPLATE = 4
SEARCH_CLASSES = [0, 1, 0, 0, 1, 0]  # class 1 = may interact with the template
TEMPLATE = list(range(NUM_TEMPLATE))
SEARCH_ONLY = [NUM_TEMPLATE + i for i, c in enumerate(SEARCH_CLASSES) if c == 0]
INTERACTING = [NUM_TEMPLATE + i for i, c in enumerate(SEARCH_CLASSES) if c == 1]
N = NUM_TEMPLATE + len(SEARCH_CLASSES)


def hand_policy(classes: list[int] = SEARCH_CLASSES) -> torch.Tensor:
    decision = torch.nn.functional.one_hot(torch.tensor([classes]), 2).float()
    return division_policy(decision, NUM_TEMPLATE)


def qkv(seed: int = 0, batch: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 2, N, 8, generator=gen, requires_grad=True) for _ in range(3)]


def grad_norms(path: str, rows: list[int], cols: list[int]) -> tuple[float, float]:
    """|d out[rows] / d (k, v)[cols]| and the same over all columns, for scale."""
    q, k, v = qkv()
    out = PATHS[path](q, k, v, hand_policy())
    out[:, :, rows].square().sum().backward()
    grads = torch.cat((k.grad, v.grad), dim=-1)
    return grads[:, :, cols].abs().max().item(), grads.abs().max().item()


def test_policy_groups_and_links() -> None:
    policy = hand_policy()
    assert policy.shape == (1, N, 3)
    assert policy[0, TEMPLATE].tolist() == [[1, 0, 0]] * NUM_TEMPLATE
    assert policy[0, SEARCH_ONLY, 1].eq(1).all() and policy[0, INTERACTING, 2].eq(1).all()
    allowed = policy_links(policy)[0, 0]
    assert torch.equal(allowed, allowed.T)
    for i in range(N):
        for j in range(N):
            forbidden = (i in TEMPLATE and j in SEARCH_ONLY) or (i in SEARCH_ONLY and j in TEMPLATE)
            assert allowed[i, j].item() == (0.0 if forbidden else 1.0), (i, j)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("rows", "cols"), [(TEMPLATE, SEARCH_ONLY), (SEARCH_ONLY, TEMPLATE)])
def test_template_and_search_only_never_exchange(path: str, rows: list[int], cols: list[int]) -> None:
    blocked, scale = grad_norms(path, rows, cols)
    assert scale > 1e-2
    if path == "fast":
        assert blocked == 0.0
    else:  # the authors' eps/N leakage
        assert blocked < 1e-6 * scale


@pytest.mark.parametrize("path", PATHS)
def test_perturbing_forbidden_side_leaves_outputs_unchanged(path: str) -> None:
    q, k, v = (t.detach() for t in qkv())
    base = PATHS[path](q, k, v, hand_policy())
    k2, v2 = k.clone(), v.clone()
    k2[:, :, SEARCH_ONLY] += 0.3 * torch.randn_like(k2[:, :, SEARCH_ONLY])  # keeps the row max allowed
    v2[:, :, SEARCH_ONLY] += 3.0 * torch.randn_like(v2[:, :, SEARCH_ONLY])
    moved = PATHS[path](q, k2, v2, hand_policy())
    diff = (moved - base)[:, :, TEMPLATE].abs().max().item()
    if path == "fast":
        assert diff == 0.0
    else:
        assert diff < 1e-6 * base.abs().max().item()
    assert (moved - base)[:, :, INTERACTING].abs().max() > 1e-3  # the change is real


def test_reference_leaks_when_a_forbidden_key_holds_the_row_max() -> None:
    """The authors' quirk, kept on purpose: the max runs over masked keys too, so a forbidden key that
    out-scores every allowed one by ~10 shrinks the allowed weights towards eps and lets eps/N through."""
    q, k, v = (t.detach() for t in qkv())
    k2, v2 = k.clone(), v.clone()
    k2[:, :, SEARCH_ONLY] = 6.0 * q[:, :, TEMPLATE].mean(dim=2, keepdim=True)
    v2[:, :, SEARCH_ONLY] += 10.0
    policy = hand_policy()
    leak = {path: (fn(q, k2, v2, policy) - fn(q, k, v, policy))[:, :, TEMPLATE].abs().max().item()
            for path, fn in PATHS.items()}
    assert leak["fast"] == 0.0
    assert leak["reference"] > 1e-4


def test_bounded_training_attention_keeps_the_value_and_bounds_the_policy_gradient() -> None:
    """Same setting as above: a forbidden key far above every allowed one. The authors' form sends the
    policy gradient towards 1/eps; the bounded form used in training gives the same output (up to the
    eps leakage) with a gradient of order |v|."""
    q, k, v = (t.detach() for t in qkv())
    k[:, :, SEARCH_ONLY] = 12.0 * q[:, :, TEMPLATE].mean(dim=2, keepdim=True)
    grads, outs = {}, {}
    for bounded in (False, True):
        policy = hand_policy().requires_grad_(True)
        out = reference_policy_attention(q, k, v, policy, bounded=bounded)
        out.sum().backward()
        grads[bounded], outs[bounded] = policy.grad.abs().max().item(), out.detach()
    assert grads[False] > 1e3
    assert grads[True] < 20 * v.abs().max().item()
    reference = fast_policy_attention(q, k, v, hand_policy())
    torch.testing.assert_close(outs[True], reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_interacting_tokens_see_and_are_seen_by_everyone(path: str) -> None:
    q, k, v = qkv()
    out = PATHS[path](q, k, v, hand_policy())
    (out[:, :, INTERACTING].sum()).backward(retain_graph=True)
    assert (v.grad[0].abs().sum(dim=(0, 2)) > 1e-4).all()  # every key feeds the interacting queries
    v.grad = None
    out[:, :, TEMPLATE + SEARCH_ONLY].sum().backward()
    assert (v.grad[0][:, INTERACTING].abs().sum(dim=(0, 2)) > 1e-4).all()


def test_paths_agree_and_each_sample_has_its_own_policy() -> None:
    q, k, v = (t.detach() for t in qkv(seed=3, batch=2))
    policy = torch.cat((hand_policy(), hand_policy([1, 0, 0, 1, 1, 0])))
    fast = fast_policy_attention(q, k, v, policy)
    ref = reference_policy_attention(q, k, v, policy)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)
    for i in range(2):
        single = fast_policy_attention(q[i:i + 1], k[i:i + 1], v[i:i + 1], policy[i:i + 1])
        torch.testing.assert_close(fast[i:i + 1], single, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(fast[0], fast_policy_attention(q[:1], k[:1], v[:1], policy[1:]))


def test_fast_path_keeps_half_precision() -> None:
    q, k, v = (t.detach().to(torch.bfloat16) for t in qkv())
    policy = hand_policy().to(torch.bfloat16)
    assert (policy_links(policy) > 0.5).dtype == torch.bool
    out = fast_policy_attention(q, k, v, policy)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference_policy_attention(q, k, v, policy).float(),
                               rtol=0, atol=3e-2)


def log_probs_for(p0: list[float]) -> torch.Tensor:
    p = torch.tensor([p0], dtype=torch.float64)
    return torch.stack((p.log(), (1 - p).log()), dim=-1)


@pytest.mark.parametrize(("threshold", "expected"), [
    (0.0, [1, 1, 0, 0, 0, 0]),   # argmax; the exact tie at p0 = 0.5 goes to class 0
    (0.4, [1, 0, 0, 0, 0, 0]),   # LaSOT: stricter, needs p1 > 0.6
    (0.55, [1, 1, 1, 0, 0, 0]),  # UAV
    (0.6, [1, 1, 1, 1, 0, 0]),   # NfS: admits more
])
def test_threshold_rule(threshold: float, expected: list[int]) -> None:
    logp = log_probs_for([0.3, 0.45, 0.5, 0.55, 0.65, 0.9])
    decision = decide(logp, training=False, threshold=threshold)
    assert decision.dtype == logp.dtype
    assert decision.sum(-1).eq(1).all()
    assert decision[0, :, 1].long().tolist() == expected


def test_argmax_rule_matches_authors_argsort_including_ties() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 500, 2, generator=gen)
    logits[:, ::7, 1] = logits[:, ::7, 0]  # exact ties
    logp = torch.log_softmax(logits, dim=-1)
    authors = torch.argsort(logp, dim=-1, descending=True)[..., 0]
    assert torch.equal(decide(logp, training=False)[..., 1].long(), authors)


def test_ratio_forces_top_k_into_interaction() -> None:
    logp = log_probs_for([0.9, 0.2, 0.8, 0.7, 0.95, 0.6, 0.85, 0.99, 0.75, 0.65])
    decision = decide(logp, training=False, ratio=0.3)  # K = 3 on top of the argmax choice
    assert decision[0, :, 1].long().tolist() == [0, 1, 0, 0, 0, 1, 0, 0, 0, 1]
    strict = decide(logp, training=False, threshold=0.1, ratio=0.2)
    assert strict[0, :, 1].long().tolist() == [0, 1, 0, 0, 0, 1, 0, 0, 0, 0]


def test_training_decisions_are_one_hot_and_differentiable() -> None:
    logits = torch.zeros(2, 50, 2, requires_grad=True)
    decision = decide(torch.log_softmax(logits, -1), training=True, threshold=0.9)
    assert torch.allclose(decision.sum(-1), torch.ones(2, 50))
    assert set(decision.detach().flatten().tolist()) <= {0.0, 1.0}
    assert 0 < decision[..., 1].sum() < 100  # sampled, not thresholded
    (decision[..., 1] * torch.arange(50.0)).sum().backward()
    assert logits.grad.abs().sum() > 0 and math.isfinite(logits.grad.sum().item())
