import pytest
import torch

from nested_learning import AssociativeMemory


def cosine(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


@pytest.mark.parametrize("n_pairs", [1, 16, 64])
def test_delta_rule_recalls_orthonormal_keys(n_pairs):
    d = 64
    keys = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(0)))[0][:n_pairs]
    values = torch.randn(n_pairs, d, generator=torch.Generator().manual_seed(1))
    memory = AssociativeMemory(d, rule="delta")
    memory.write(keys, values)
    assert cosine(memory.read(keys), values).min() > 0.99


def test_correlated_keys_crosstalk_hebbian_but_not_delta():
    d, n = 32, 8
    g = torch.Generator().manual_seed(0)
    shared = torch.randn(d, generator=g)
    keys = torch.nn.functional.normalize(shared + torch.randn(n, d, generator=g), dim=-1)  # correlated
    assert (keys @ keys.T - torch.eye(n)).abs().max() > 0.5
    values = torch.randn(n, d, generator=g)
    errors = {}
    for rule in ("hebbian", "delta"):
        memory = AssociativeMemory(d, rule=rule)
        # The delta rule needs a few passes when keys overlap; give Hebbian the same passes (scaled).
        for _ in range(20):
            memory.write(keys, values / (20 if rule == "hebbian" else 1))
        errors[rule] = ((memory.read(keys) - values).norm(dim=-1) / values.norm(dim=-1)).mean().item()
    assert errors["hebbian"] > 0.5  # crosstalk: each recall mixes in the other values
    assert errors["delta"] < 0.05  # the delta rule subtracts what is already stored


def test_hebbian_single_write_is_outer_product():
    memory = AssociativeMemory(4, rule="hebbian", learning_rate=0.5, normalize_keys=False)
    update = memory.write(torch.tensor([1.0, 0, 0, 0]), torch.tensor([0, 2.0, 0, 0]))
    assert torch.equal(update, 0.5 * torch.outer(torch.tensor([0, 2.0, 0, 0]), torch.tensor([1.0, 0, 0, 0])))


def test_bad_arguments():
    with pytest.raises(ValueError, match="rule"):
        AssociativeMemory(4, rule="oja")
    with pytest.raises(ValueError, match="learning_rate"):
        AssociativeMemory(4, learning_rate=5)
