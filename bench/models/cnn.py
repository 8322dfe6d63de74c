"""ResNet-50, SqueezeNet 1.0, MobileNetV2 and the digits CNN, written once against the
PyTorch-style API that amber and PyTorch share: ``build(lib)`` returns constructors for
``lib`` = :data:`AMBER` or :func:`torch_lib`. The layer names (and so the state-dict
keys) are torchvision's, so weights move between the two by key."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import amber as am

AMBER = SimpleNamespace(nn=am.nn, F=am.nn.functional, cat=am.cat)


def torch_lib() -> SimpleNamespace:
    import torch

    return SimpleNamespace(nn=torch.nn, F=torch.nn.functional, cat=torch.cat)


def build(lib: SimpleNamespace) -> SimpleNamespace:
    nn, F = lib.nn, lib.F

    def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list:
        return [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                nn.BatchNorm2d(cout)]

    class Bottleneck(nn.Module):
        def __init__(self, cin: int, width: int, stride: int, down: bool) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(width * 4)
            self.downsample = nn.Sequential(nn.Conv2d(cin, width * 4, 1, stride, bias=False),
                                            nn.BatchNorm2d(width * 4)) if down else None

        def forward(self, x: Any) -> Any:
            h = F.relu(self.bn1(self.conv1(x)))
            h = F.relu(self.bn2(self.conv2(h)))
            h = self.bn3(self.conv3(h))
            return F.relu(h + (self.downsample(x) if self.downsample is not None else x))

    class ResNet50(nn.Module):
        def __init__(self, classes: int = 1000) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (width, blocks, stride) in enumerate(
                    [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]):
                layer = []
                for b in range(blocks):
                    layer.append(Bottleneck(cin, width, stride if b == 0 else 1, b == 0))
                    cin = width * 4
                setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            self.fc = nn.Linear(2048, classes)

        def forward(self, x: Any) -> Any:
            x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(x.mean((2, 3)))

    class Fire(nn.Module):
        def __init__(self, cin: int, squeeze: int, e1: int, e3: int) -> None:
            super().__init__()
            self.squeeze = nn.Conv2d(cin, squeeze, 1)
            self.expand1x1 = nn.Conv2d(squeeze, e1, 1)
            self.expand3x3 = nn.Conv2d(squeeze, e3, 3, padding=1)

        def forward(self, x: Any) -> Any:
            s = F.relu(self.squeeze(x))
            return lib.cat([F.relu(self.expand1x1(s)), F.relu(self.expand3x3(s))], 1)

    class SqueezeNet(nn.Module):
        """SqueezeNet 1.0 (dropout omitted: inference)."""

        def __init__(self, classes: int = 1000) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 96, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
                Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128),
                nn.MaxPool2d(3, 2, ceil_mode=True),
                Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256), nn.MaxPool2d(3, 2, ceil_mode=True),
                Fire(512, 64, 256, 256))
            self.conv = nn.Conv2d(512, classes, 1)

        def forward(self, x: Any) -> Any:
            return F.relu(self.conv(self.features(x))).mean((2, 3))

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            layers = conv_bn(cin, hidden, 1) + [nn.ReLU6()] if expand != 1 else []
            layers += conv_bn(hidden, hidden, 3, stride, hidden) + [nn.ReLU6()]
            layers += conv_bn(hidden, cout, 1)
            self.conv = nn.Sequential(*layers)
            self.res = stride == 1 and cin == cout

        def forward(self, x: Any) -> Any:
            return x + self.conv(x) if self.res else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self, classes: int = 1000) -> None:
            super().__init__()
            layers = conv_bn(3, 32, 3, 2) + [nn.ReLU6()]
            cin = 32
            for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
                for i in range(n):
                    layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                    cin = c
            layers += conv_bn(cin, 1280, 1) + [nn.ReLU6()]
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Linear(1280, classes)

        def forward(self, x: Any) -> Any:
            return self.classifier(self.features(x).mean((2, 3)))

    class DigitsCNN(nn.Module):
        """The CNN of examples/train_digits.py's shape class: two conv/ReLU/max-pool
        stages and a linear head, on 28x28 inputs."""

        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(1, 8, 3, padding=1)
            self.c2 = nn.Conv2d(8, 16, 3, padding=1)
            self.fc = nn.Linear(16 * 7 * 7, 10)

        def forward(self, x: Any) -> Any:
            x = F.max_pool2d(F.relu(self.c1(x)), 2)
            x = F.max_pool2d(F.relu(self.c2(x)), 2)
            return self.fc(x.reshape(x.shape[0], -1))

    return SimpleNamespace(resnet50=ResNet50, squeezenet1_0=SqueezeNet,
                           mobilenet_v2=MobileNetV2, digits_cnn=DigitsCNN)


def layer_defs(lib: SimpleNamespace) -> dict[str, tuple[Any, tuple[int, ...]]]:
    """Single-layer cases: name -> (module, input (C, H, W) or (features,))."""
    nn, F = lib.nn, lib.F

    class Pool(nn.Module):
        def __init__(self, kind: str) -> None:
            super().__init__()
            self.kind = kind

        def forward(self, x: Any) -> Any:
            if self.kind == "max":
                return F.max_pool2d(x, 3, 2, 1)
            return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)

    return {
        "conv3x3 64->64 56x56": (nn.Conv2d(64, 64, 3, padding=1, bias=False), (64, 56, 56)),
        "conv1x1 256->64 56x56": (nn.Conv2d(256, 64, 1, bias=False), (256, 56, 56)),
        "depthwise3x3 144 56x56": (nn.Conv2d(144, 144, 3, padding=1, groups=144, bias=False),
                                   (144, 56, 56)),
        "maxpool3x3s2 64x112x112": (Pool("max"), (64, 112, 112)),
        "avgpool3x3s1 64x56x56": (Pool("avg"), (64, 56, 56)),
        "MLP 784-512-512-10": (nn.Sequential(nn.Linear(784, 512), nn.ReLU(),
                                             nn.Linear(512, 512), nn.ReLU(),
                                             nn.Linear(512, 10)), (784,)),
    }


# (name, constructor name, input (C, H, W))
MODELS = [("resnet50", "resnet50", (3, 224, 224)),
          ("squeezenet1_0", "squeezenet1_0", (3, 224, 224)),
          ("mobilenet_v2", "mobilenet_v2", (3, 224, 224)),
          ("digits_cnn", "digits_cnn", (1, 28, 28))]
