"""The README's "Your own model" example: a hand-written ResNet-18 (width 8, plain torch with nn.BatchNorm2d)
randomized with BN+IN, trained with the quick recipe's black-box RNA training on the bundled Fashion-MNIST subset,
then evaluated against PGD-10 under the paper and adaptive protocols; and the same model behind a randomization
rna-core does not draw (Gaussian input noise at inference) evaluated the same way.

    python docs/examples/own_model.py [--out runs/own-model] [--samples 500] [--epochs 4] [--train-samples 6000]

About 4 minutes on 2 CPU cores at the defaults; ``--epochs 1 --train-samples 512 --samples 64`` runs it in seconds.
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from torch import nn

import rna_core
from rna_core import pgd
from rna_core.data import load_bundled
from rna_core.torch import randomize


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, width: int = 8, in_channels: int = 1, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for mult, stride in zip((1, 2, 4, 8), (1, 2, 2, 2), strict=True):
            layers += [Block(cin, width * mult, stride), Block(width * mult, width * mult, 1)]
            cin = width * mult
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.layers(self.stem(x)).mean((2, 3)))


class NoisyInput(nn.Module):
    """Someone else's randomization: Gaussian noise (sigma 0.1) added to the input at inference, in front of a
    model. rna-core cannot hold this noise, so only the protocols that need no held draw apply."""

    def __init__(self, model: nn.Module, sigma: float = 0.1) -> None:
        super().__init__()
        self.model, self.sigma = model, sigma

    def forward(self, x):
        return self.model((x + self.sigma * torch.randn_like(x)).clamp(0, 1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/own-model")
    p.add_argument("--samples", type=int, default=500, help="test images (default 500)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the quick recipe's)")
    p.add_argument("--train-samples", type=int, default=None, help="training images (default: all 6,000)")
    args = p.parse_args()
    torch.manual_seed(0)
    model = randomize(ResNet18(), norms="bn+in", seed=0)
    size = {k: v for k, v in (("epochs", args.epochs), ("train_samples", args.train_samples)) if v is not None}
    rna_core.train("quick", model=model, out_dir=args.out, eval_attack=None, **size)
    test = load_bundled("test").subset(args.samples)
    ours = rna_core.evaluate(model, test, [pgd(10)], protocol="both", eot=4, answers=5)
    theirs = rna_core.evaluate(NoisyInput(model), test, [pgd(10)], protocol="both", eot=4, answers=5)
    keep = ("randomness", "protocol", "clean", "PGD-10/paper", "PGD-10/eot", "PGD-10/adaptive", "protocols_skipped")
    print(json.dumps({"rna-core randomized": {k: ours.get(k) for k in keep},
                      "input noise at inference": {k: theirs.get(k) for k in keep}}, indent=1))


if __name__ == "__main__":
    main()
