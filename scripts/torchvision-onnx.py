#!/usr/bin/env python3
"""
Exports torchvision classifiers to ONNX the way the workbench's importer reads them best, and
(optionally) PyTorch's own gradients of one step as a reference for the importer's tests.

  /usr/bin/python3 scripts/torchvision-onnx.py --out DIR [--size 64] [--opset 13] [--weights none|default]
                                               [--calibrate-bn N] [--reference] ARCH [ARCH ...]

ARCH is a torchvision.models name, or workbench_ops (a small network of the ops the classifiers do
not use). Writes DIR/ARCH.onnx with the BatchNormalization layers kept (TrainingMode.PRESERVE: the default
export folds them into the convolutions, which leaves nothing for the workbench to freeze or
train, and PyTorch's parameter count no longer matches). --weights default downloads torchvision's
ImageNet weights (internet needed); none (default) keeps the seeded random initialisation.

--calibrate-bn N sets a random network's BatchNorm running statistics to those of its own
activations on N random batches (cumulative averages, as a trained network's describe its
activations), so that inference mode and frozen-BN training behave as on a pretrained network.

--reference also writes DIR/ARCH.reference.json and .bin: a seeded input batch [2, 3, size, size]
and labels, the eval-mode logits, the mean cross-entropy, and its gradient for a few parameters
(float32, little-endian, in the order the JSON lists them).
"""
import argparse
import json
import os
import sys

import torch
import torchvision


def reference(model, arch, size, out_dir):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, size, size, generator=gen)
    labels = torch.tensor([3, 7])
    model.zero_grad()
    logits = model(x)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    named = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
    # The first and last weights, and one in the middle of each kind (conv, norm, other).
    picks = {named[0][0], named[-2][0], named[-1][0]}
    for kind in ('conv', 'norm', 'other'):
        rows = [n for n, p in named if (kind == 'conv' and p.dim() == 4) or (kind == 'norm' and p.dim() == 1 and n.endswith('.weight')) or (kind == 'other' and p.dim() == 3)]
        if rows:
            picks.add(rows[len(rows) // 2])
    entries = []
    blobs = [x.numpy().astype('<f4').tobytes(), logits.detach().numpy().astype('<f4').tobytes()]
    for n, p in named:
        if n in picks:
            entries.append({'name': n, 'shape': list(p.shape)})
            blobs.append(p.grad.numpy().astype('<f4').tobytes())
    meta = {
        'arch': arch,
        'input': [2, 3, size, size],
        'labels': labels.tolist(),
        'logits': list(logits.shape),
        'loss': float(loss),
        'grads': entries,
        'params': sum(p.numel() for p in model.parameters()),
    }
    with open(os.path.join(out_dir, arch + '.reference.bin'), 'wb') as f:
        for b in blobs:
            f.write(b)
    with open(os.path.join(out_dir, arch + '.reference.json'), 'w') as f:
        json.dump(meta, f)


class WorkbenchOps(torch.nn.Module):
    """A small network using the ops torchvision's classifiers do not (the importer's op tests): pooling
    with pads and ceil mode, Concat, Pad, GELU (Erf), arithmetic, a Shape-computed Reshape, Transpose,
    LayerNorm, a mean without keepdims, Softmax."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(16, 16, 3, stride=2, bias=False)
        self.ln = torch.nn.LayerNorm(16)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        F = torch.nn.functional
        x = F.hardswish(self.bn(self.conv1(x)))
        a = F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        b = F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
        y = F.pad(torch.cat([a, b], 1), (1, 1, 1, 1))
        y = F.gelu(self.conv2(y))
        y = y * torch.sigmoid(y) - 0.5 / (1 + y.abs())
        z = y.reshape(y.shape[0], 16, -1).transpose(1, 2)
        z = self.ln(z).mean(1)
        return F.softmax(self.fc(z), -1)


def calibrate_bn(model, batches, size):
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(16, 3, size, size, generator=gen))
    for m in norms:
        m.momentum = 0.1
    model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('arch', nargs='+')
    ap.add_argument('--out', required=True)
    ap.add_argument('--size', type=int, default=64)
    ap.add_argument('--opset', type=int, default=13)
    ap.add_argument('--weights', choices=['none', 'default'], default='none')
    ap.add_argument('--reference', action='store_true')
    ap.add_argument('--calibrate-bn', type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    for arch in args.arch:
        torch.manual_seed(0)
        build = WorkbenchOps if arch == 'workbench_ops' else getattr(torchvision.models, arch, None)
        if build is None:
            sys.exit(f'{arch}: not a torchvision model')
        model = (build() if build is WorkbenchOps else build(weights='DEFAULT' if args.weights == 'default' else None)).eval()
        if args.calibrate_bn > 0:
            calibrate_bn(model, args.calibrate_bn, args.size)
        target = os.path.join(args.out, arch + '.onnx')
        tmp = target + '.part'
        with torch.no_grad():
            torch.onnx.export(model, torch.randn(1, 3, args.size, args.size), tmp, opset_version=args.opset,
                              training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
                              input_names=['input'], output_names=['logits'])
        os.replace(tmp, target)
        if args.reference:
            reference(model, arch, args.size, args.out)
        print(target, flush=True)


if __name__ == '__main__':
    main()
