"""The loss: cross-entropy with void ignored, class weights, the soft Dice term."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as nnf

from seg.model.losses import SegLoss, distillation_loss


def test_default_loss_is_cross_entropy_ignoring_void():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 23, 5, 7), torch.randint(-1, 23, (2, 5, 7))
    expected = nnf.cross_entropy(logits, target, ignore_index=-1)
    torch.testing.assert_close(SegLoss()(logits, target), expected)


def test_class_weights_are_median_frequency_to_a_power():
    loss = SegLoss(num_classes=4, class_weight_power=1.0)
    loss.set_class_counts(torch.tensor([10, 20, 40, 0]))  # freqs 1/7, 2/7, 4/7; median 2/7; class 3 absent
    torch.testing.assert_close(loss.class_weights, torch.tensor([2.0, 1.0, 0.5, 0.0]))
    half = SegLoss(num_classes=4, class_weight_power=0.5)
    half.set_class_counts(torch.tensor([10, 20, 40, 0]))
    torch.testing.assert_close(half.class_weights, torch.tensor([2**0.5, 1.0, 0.5**0.5, 0.0]))
    logits, target = torch.randn(1, 4, 3, 3), torch.tensor([[[0, 1, 2], [2, 2, -1], [0, 1, 1]]])
    torch.testing.assert_close(
        loss(logits, target), nnf.cross_entropy(logits, target, weight=loss.class_weights, ignore_index=-1)
    )
    with pytest.raises(ValueError, match="expected 4 class counts"):
        loss.set_class_counts(torch.ones(3))


def test_dice_term_is_zero_for_a_confident_right_answer_and_ignores_void():
    target = torch.tensor([[[0, 0, 1], [1, 2, -1]]])
    logits = nnf.one_hot(target.clamp(min=0), 3).permute(0, 3, 1, 2).float() * 50
    logits[0, :, 1, 2] = torch.tensor([0.0, 0.0, 50.0])  # a void pixel predicted as class 2: must not count
    loss = SegLoss(num_classes=3, dice_weight=1.0, smooth=0.0)
    assert loss.dice(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    wrong = logits.roll(1, dims=1)  # every labelled pixel predicted as another class
    assert loss.dice(wrong, target).item() == pytest.approx(1.0, abs=1e-6)
    ce = nnf.cross_entropy(wrong, target, ignore_index=-1)
    torch.testing.assert_close(loss(wrong, target), ce + loss.dice(wrong, target))
    # against a direct one-hot computation on random maps (with smoothing)
    torch.manual_seed(0)
    rand, labels = torch.randn(2, 3, 4, 5), torch.randint(-1, 3, (2, 4, 5))
    valid = (labels != -1)[:, None]
    probs = rand.softmax(1) * valid
    onehot = nnf.one_hot(labels.clamp(min=0), 3).permute(0, 3, 1, 2) * valid
    inter, total = (probs * onehot).sum((0, 2, 3)), probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    expected = 1 - ((2 * inter + 1) / (total + 1))[present].mean()
    smooth = SegLoss(num_classes=3, dice_weight=0.5)
    rand_a, rand_b = rand.clone().requires_grad_(), rand.clone().requires_grad_()
    got = smooth.dice(rand_a, labels)
    torch.testing.assert_close(got, expected)
    # and the same gradient as the one-hot form
    got.backward()
    pb = rand_b.softmax(1) * valid
    dice_b = (2 * (pb * onehot).sum((0, 2, 3)) + 1) / (pb.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)
    (1 - dice_b[present].mean()).backward()
    torch.testing.assert_close(rand_a.grad, rand_b.grad)
    torch.testing.assert_close(smooth(rand, labels), nnf.cross_entropy(rand, labels, ignore_index=-1) + 0.5 * expected)
    all_void = torch.full((1, 2, 3), -1)
    assert loss.dice(logits, all_void).item() == 0.0


def test_class_weights_without_counts_are_a_clear_error():
    loss = SegLoss(num_classes=3, class_weight_power=0.5)
    assert loss.needs_class_counts and not SegLoss(num_classes=3).needs_class_counts
    with pytest.raises(RuntimeError, match=r"set_class_counts\(datamodule.class_pixel_counts\('train'\)\)"):
        loss(torch.randn(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


def test_label_smoothing_spreads_eps_over_the_classes_with_and_without_dice():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 3, 5), torch.randint(-1, 4, (2, 3, 5))
    eps, valid = 0.2, target != -1
    logp = logits.log_softmax(1).permute(0, 2, 3, 1)[valid]  # labelled pixels x classes
    soft = torch.full_like(logp, eps / 4)
    soft[torch.arange(len(soft)), target[valid]] += 1 - eps
    by_hand = -(soft * logp).sum(1).mean()
    torch.testing.assert_close(SegLoss(num_classes=4, label_smoothing=eps)(logits, target), by_hand)
    with_dice = SegLoss(num_classes=4, label_smoothing=eps, dice_weight=0.5)
    torch.testing.assert_close(with_dice(logits, target), by_hand + 0.5 * with_dice.dice(logits, target))
    assert SegLoss(num_classes=4)(logits, target) < by_hand  # smoothing costs a sharp model something


def test_focal_and_ohem_terms_match_their_definitions_by_hand():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 6, 5), torch.randint(-1, 4, (2, 6, 5))
    valid = target != -1
    logp = logits.log_softmax(1).permute(0, 2, 3, 1)[valid]
    ce = -logp[torch.arange(len(logp)), target[valid]]  # per labelled pixel
    p_true = (-ce).exp()
    focal = SegLoss(num_classes=4, focal_gamma=2.0)
    torch.testing.assert_close(focal(logits, target), (ce * (1 - p_true) ** 2).mean())
    k = math.ceil(0.25 * len(ce))
    ohem = SegLoss(num_classes=4, ohem_keep=0.25)
    torch.testing.assert_close(ohem(logits, target), ce.sort(descending=True).values[:k].mean())
    assert ohem(logits, target) > SegLoss(num_classes=4)(logits, target)  # the hardest pixels cost more
    with_dice = SegLoss(num_classes=4, focal_gamma=2.0, ohem_keep=0.25, dice_weight=0.5)
    both = (ce * (1 - p_true) ** 2).sort(descending=True).values[:k].mean()
    torch.testing.assert_close(with_dice(logits, target), both + 0.5 * with_dice.dice(logits, target))


def test_the_per_pixel_path_averages_as_torch_does_with_weights_and_smoothing():
    torch.manual_seed(1)
    logits, target = torch.randn(2, 3, 4, 4), torch.randint(-1, 3, (2, 4, 4))
    # keeping a share just under 1 keeps every pixel, but takes the per-pixel path
    loss = SegLoss(num_classes=3, class_weight_power=1.0, label_smoothing=0.1, ohem_keep=0.999999)
    loss.set_class_counts(torch.tensor([50.0, 10.0, 5.0]))
    expected = nnf.cross_entropy(logits, target, weight=loss.class_weights, ignore_index=-1, label_smoothing=0.1)
    torch.testing.assert_close(loss(logits, target), expected)
    void = torch.full((2, 4, 4), -1)
    rand = logits.clone().requires_grad_()
    SegLoss(num_classes=3, focal_gamma=2.0, ohem_keep=0.5)(rand, void).backward()
    assert rand.grad.abs().sum().item() == 0.0  # an all-void batch moves nothing


def test_distillation_loss_is_the_soft_cross_entropy_over_covered_pixels():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 6, 6)
    teacher = torch.randn(2, 4, 6, 6).softmax(1)
    soft = (teacher * 255).round().to(torch.uint8)
    soft[0, :, :3] = 0  # no teacher on these pixels
    q = soft.float() / soft.float().sum(1, keepdim=True).clamp_min(1)
    per_pixel = -(q * logits.log_softmax(1)).sum(1)
    covered = soft.sum(1) > 0
    assert torch.allclose(distillation_loss(logits, soft), per_pixel[covered].mean())
    # a temperature softens both sides and keeps the gradient's scale (x T^2)
    t = 2.0
    qt = q.pow(1 / t) / q.pow(1 / t).sum(1, keepdim=True)
    expected = -(qt * (logits / t).log_softmax(1)).sum(1)[covered].mean() * t * t
    assert torch.allclose(distillation_loss(logits, soft, t), expected, atol=1e-6)
    assert distillation_loss(logits, torch.zeros_like(soft)).item() == 0.0
