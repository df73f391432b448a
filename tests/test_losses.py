"""Unlearning losses on hand-computable inputs: sign, reduction, masking, NPO's small-beta limit."""
import math

import pytest
import torch

from mmunlearn.train.losses import LOSSES, get_loss, kl_to_reference, mean_nll, npo_loss, token_nll


def _logits_for(probs_of_target: list[float], vocab=4):
    """Logits whose softmax gives `p` to token 1 at each position (rest shared)."""
    rows = []
    for p in probs_of_target:
        rest = (1 - p) / (vocab - 1)
        rows.append([math.log(rest), math.log(p)] + [math.log(rest)] * (vocab - 2))
    return torch.tensor([rows])


def test_token_nll_masks_and_shifts():
    logits = _logits_for([0.5, 0.25, 0.9])
    labels = torch.tensor([[-100, 1, -100]])  # only position 1 is scored, predicted from position 0
    total, count = token_nll(logits, labels)
    assert count.item() == 1 and total.item() == pytest.approx(-math.log(0.5))


def test_mean_nll_is_token_mean_over_batch():
    logits = torch.cat([_logits_for([0.5, 0.5, 0.5]), _logits_for([0.25, 0.25, 0.25])])
    labels = torch.tensor([[-100, 1, 1], [-100, 1, -100]])
    expected = (2 * -math.log(0.5) - math.log(0.25)) / 3
    assert mean_nll(logits, labels).item() == pytest.approx(expected)


class Fixed(torch.nn.Module):
    """A 'model' returning fixed logits scaled by a parameter, to check loss signs through gradients."""

    def __init__(self, logits):
        super().__init__()
        self.logits, self.scale = logits, torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, input_ids, attention_mask=None, use_cache=None):
        return type("Out", (), {"logits": self.logits * self.scale})()


def _batch(labels):
    return {"input_ids": torch.zeros_like(labels), "attention_mask": torch.ones_like(labels), "labels": labels}


def test_ga_is_negative_nll():
    logits = _logits_for([0.5, 0.5, 0.5])
    batch = _batch(torch.tensor([[-100, 1, 1]]))
    loss, logs = get_loss("ga").fn(Fixed(logits), {"forget": batch}, {}, {})
    assert loss.item() == pytest.approx(math.log(0.5)) and logs["forget_nll"] == pytest.approx(-math.log(0.5))


def test_grad_diff_weights_retain():
    f, r = _logits_for([0.5, 0.5, 0.5]), _logits_for([0.25, 0.25, 0.25])
    model = Fixed(f)
    batches = {"forget": _batch(torch.tensor([[-100, 1, 1]])), "retain": _batch(torch.tensor([[-100, 1, 1]]))}
    loss, _ = get_loss("grad_diff").fn(model, batches, {}, {"retain_weight": 2.0})
    assert loss.item() == pytest.approx(math.log(0.5) + 2 * -math.log(0.5))  # same logits for both streams


def test_npo_small_beta_limit_is_ga_gradient():
    theta = torch.tensor([1.3, 2.0], requires_grad=True)
    ref = torch.tensor([1.0, 1.5])
    npo_loss(theta, ref, beta=1e-4).backward()
    # d/dNLL of -(2/β) log σ(β(NLL-ref)) -> -1 per sequence as β -> 0, averaged over 2 -> -0.5 each
    assert theta.grad.tolist() == pytest.approx([-0.5, -0.5], abs=1e-3)
    theta.grad = None
    npo_loss(theta, ref, beta=10.0).backward()  # large beta: saturates where NLL >> ref
    assert abs(theta.grad[1].item()) < abs(theta.grad[0].item()) + 1e-9


def test_kl_is_zero_for_identical_and_masked():
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, 5], [-100, 1, 2, -100, -100]])
    assert kl_to_reference(logits, logits, labels, "answer").item() == pytest.approx(0.0, abs=1e-6)
    assert kl_to_reference(logits, logits, labels, "all").item() == pytest.approx(0.0, abs=1e-6)
    other = logits.clone()
    other[0, 0, 0] += 5.0  # a change only at a position whose next token is unlabelled
    assert kl_to_reference(logits, other, labels, "answer").item() == pytest.approx(0.0, abs=1e-6)
    assert kl_to_reference(logits, other, labels, "all").item() > 0.01


def test_registry():
    assert {"ga", "grad_diff", "kl_min", "npo", "nll"} <= set(LOSSES)
    assert get_loss("npo").refs == ("oracle",) and get_loss("kl_min").refs == ("vanilla",)
    with pytest.raises(KeyError, match="unknown unlearning method 'gaa'"):
        get_loss("gaa")


def test_sequential_steps_use_only_the_terms_of_the_stream_present():
    model = Fixed(_logits_for([0.5, 0.5, 0.5]))
    batch = _batch(torch.tensor([[-100, 1, 1]]))
    for method in ("grad_diff", "kl_min"):
        forget_only, logs = get_loss(method).fn(model, {"forget": batch}, {"vanilla": model}, {})
        assert forget_only.item() == pytest.approx(math.log(0.5)) and set(logs) == {"forget_nll"}
    retain_only, logs = get_loss("kl_min").fn(model, {"retain": batch}, {"vanilla": model}, {})
    assert retain_only.item() == pytest.approx(-math.log(0.5)) and logs["kl"] == pytest.approx(0.0, abs=1e-6)


def test_simnpo_is_length_normalised_and_reference_free():
    # per-token forget NLL: one sequence with 2 tokens at p = 0.5 -> NLL/|y| = log 2; retain NLL = log 4
    f, r = _batch(torch.tensor([[-100, 1, 1]])), _batch(torch.tensor([[-100, 1, -100]]))
    beta, gamma = 2.0, 0.5
    model = Fixed(_logits_for([0.5, 0.5, 0.5]))
    loss, logs = get_loss("simnpo").fn(model, {"forget": f, "retain": r}, {}, {"beta": beta, "gamma": gamma,
                                                                               "retain_weight": 0.0})
    expected = -(2 / beta) * math.log(1 / (1 + math.exp(-(beta * math.log(2) - gamma))))
    assert loss.item() == pytest.approx(expected) and logs["forget_nll"] == pytest.approx(math.log(2))
    assert get_loss("simnpo").refs == ()
    # minimising it raises the forget NLL: d loss / d NLL < 0
    nll = torch.tensor(math.log(2), requires_grad=True)
    (-(2 / beta) * torch.nn.functional.logsigmoid(beta * nll - gamma)).backward()
    assert nll.grad.item() < 0


def test_idkpo_prefers_idk_over_the_true_answer():
    from mmunlearn.train.losses import dpo_loss

    # equal to the reference: margin 0 -> loss (2/β) log 2; gradient lowers the idk NLL and raises the true NLL
    idk, true = torch.tensor([2.0], requires_grad=True), torch.tensor([1.0], requires_grad=True)
    loss = dpo_loss(idk, torch.tensor([2.0]), true, torch.tensor([1.0]), beta=0.5)
    assert loss.item() == pytest.approx((2 / 0.5) * math.log(2))
    loss.backward()
    assert idk.grad.item() > 0 and true.grad.item() < 0  # descent: idk NLL down, true NLL up
    spec = get_loss("idkpo")
    assert spec.paired == {"forget_idk": "forget"} and spec.refs == ("vanilla",)
