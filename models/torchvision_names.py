"""torchvision's ResNet parameter names and ours (``docs/methods.md``): a torchvision ``resnet18`` / ``resnet50``
checkpoint, converted to safetensors, starts an rna-core ``resnet18_imagenet`` / ``resnet50`` (``init_checkpoint``).

torchvision names a block's layers ``conv1, bn1, conv2, bn2[, conv3, bn3], downsample.0, downsample.1``; rna-core's
graph names them ``main.conv1, main.norm1, ...`` and ``shortcut.conv, shortcut.norm``, and every normalization
slot holds its candidates by kind, so a BN layer's entries live under ``<slot>.bn.``: torchvision's BN initialises
the BN candidate of every slot (an RNA model's other candidates keep their own start). ``num_batches_tracked``
has no counterpart (our BN takes its momentum as given) and is dropped.
"""

from __future__ import annotations

import re

import numpy as np

BN = r"(weight|bias|running_mean|running_var)"
RULES = [
    (rf"^bn1\.{BN}$", r"norm1.bn.\1"),
    (r"^(layer\d+\.\d+)\.conv(\d)\.weight$", r"\1.main.conv\2.weight"),
    (rf"^(layer\d+\.\d+)\.bn(\d)\.{BN}$", r"\1.main.norm\2.bn.\3"),
    (r"^(layer\d+\.\d+)\.downsample\.0\.weight$", r"\1.shortcut.conv.weight"),
    (rf"^(layer\d+\.\d+)\.downsample\.1\.{BN}$", r"\1.shortcut.norm.bn.\2"),
    (r"^(conv1\.weight|fc\.weight|fc\.bias)$", r"\1"),
]


def is_torchvision(names) -> bool:
    """Whether a state's names are torchvision's ResNet names (``layer1.0.conv1.weight``, ``bn1.weight``)."""
    names = set(names)
    return "bn1.weight" in names and any(re.match(r"^layer1\.0\.conv1\.weight$", n) for n in names)


def from_torchvision(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``state`` under rna-core's canonical names; an entry no rule maps is a ValueError naming it."""
    out = {}
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        for pattern, repl in RULES:
            if re.match(pattern, name):
                out[re.sub(pattern, repl, name)] = value
                break
        else:
            raise ValueError(f"{name}: not a torchvision ResNet entry rna-core knows (expected conv, bn, layerI.J, "
                             "downsample and fc entries)")
    return out


def to_torchvision(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of ``from_torchvision`` for the BN candidates and weights a torchvision ResNet has (other
    candidates, such as an RNA model's IN, are left out)."""
    back = [
        (rf"^norm1\.bn\.{BN}$", r"bn1.\1"),
        (r"^(layer\d+\.\d+)\.main\.conv(\d)\.weight$", r"\1.conv\2.weight"),
        (rf"^(layer\d+\.\d+)\.main\.norm(\d)\.bn\.{BN}$", r"\1.bn\2.\3"),
        (r"^(layer\d+\.\d+)\.shortcut\.conv\.weight$", r"\1.downsample.0.weight"),
        (rf"^(layer\d+\.\d+)\.shortcut\.norm\.bn\.{BN}$", r"\1.downsample.1.\2"),
        (r"^(conv1\.weight|fc\.weight|fc\.bias)$", r"\1"),
    ]
    out = {}
    for name, value in state.items():
        for pattern, repl in back:
            if re.match(pattern, name):
                out[re.sub(pattern, repl, name)] = value
                break
    return out
