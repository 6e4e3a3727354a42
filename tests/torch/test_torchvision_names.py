"""A torchvision ResNet-18 checkpoint starts rna-core's ``resnet18_imagenet``: a module written here with
torchvision's structure and names (``BasicBlock``: conv1, bn1, conv2, bn2, downsample; torchvision is not
installed on CI) saved as a bare safetensors file loads as ``init_checkpoint``, and the two models give the same
logits, the plain BN model and an RNA model on its all-BN path alike."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from rna_core.classifier import create_model
from rna_core.models.torchvision_names import from_torchvision, to_torchvision
from rna_core.training.run import init_weights, initialise_from


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchvisionResNet18(nn.Module):
    """torchvision.models.resnet18's layers and names (``width`` 64 is torchvision's)."""

    def __init__(self, width: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for i, (mult, stride) in enumerate(zip((1, 2, 4, 8), (1, 2, 2, 2), strict=True), start=1):
            setattr(self, f"layer{i}", nn.Sequential(BasicBlock(cin, width * mult, stride),
                                                     BasicBlock(width * mult, width * mult, 1)))
            cin = width * mult
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@pytest.fixture
def torchvision_file(tmp_path):
    torch.manual_seed(0)
    ref = TorchvisionResNet18(8, 10)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d):  # statistics and affine away from their defaults
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    return ref.eval(), path


@pytest.mark.parametrize("norms", ["bn", "bn+in"])
def test_a_torchvision_checkpoint_starts_resnet18_imagenet(torchvision_file, norms):
    ref, path = torchvision_file
    clf = create_model("resnet18_imagenet", norms, num_classes=10, width=8, seed=1)
    initialise_from(clf, str(path), verbose=False)
    x = np.random.default_rng(0).random((2, 3, 64, 64), dtype=np.float32)
    clf.model.set_train(False)
    with clf.controller.fixed(np.zeros(clf.space.num_layers, int)):  # the BN candidate in every slot
        ours = clf.logits(x)
    with torch.no_grad():
        theirs = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_the_name_maps_are_each_others_inverse(torchvision_file):
    _, path = torchvision_file
    ours = init_weights(str(path))
    assert "layer2.0.shortcut.norm.bn.running_var" in ours and "bn1.weight" not in ours
    back = to_torchvision(ours)
    assert set(back) == {k for k in TorchvisionResNet18(8, 10).state_dict() if "num_batches" not in k}
    assert from_torchvision(back).keys() == ours.keys()
    with pytest.raises(ValueError, match="layer1.0.se.weight: not a torchvision ResNet entry"):
        from_torchvision({**back, "layer1.0.se.weight": np.zeros(1)})
