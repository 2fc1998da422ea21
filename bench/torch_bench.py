#!/usr/bin/env python3
"""The PyTorch side of `npm run -s cli -- bench`: the same networks and steps, in PyTorch's best CPU
configuration (channels_last, 2 threads; the caller preloads tcmalloc). Prints one JSON object.

ResNet-50 is torchvision's (v1.5: stride on the 3x3 conv, ~4.1 GFLOPs at 224 vs Keras v1's ~3.9).
Darknet-Tiny is rebuilt from the same model.json the TypeScript side loads (a chain of Conv2D,
BatchNormalization, LeakyReLU, MaxPooling2D, GlobalAveragePooling2D), and so is MobileNet v1 0.75
(Conv2D, DepthwiseConv2D as a grouped convolution, BatchNormalization, ReLU6, then its top: pooling,
dropout and the 1x1 conv to 1000 classes). Random weights: speed only.
"""
import argparse
import json
import sys
import time


def darknet_from_keras_json(path):
    import torch.nn as nn
    with open(path) as f:
        topology = json.load(f)["modelTopology"]
    config = topology.get("model_config", topology)["config"]
    layers, channels = [], 3
    for layer in config["layers"]:
        kind, c = layer["class_name"], layer["config"]
        if kind == "InputLayer":
            continue
        if kind == "Conv2D":
            k = c["kernel_size"][0]
            if c["strides"] != [1, 1] or c["padding"] != "same":
                raise ValueError(f"{path}: {c['name']}: only stride-1 'same' convolutions are mapped")
            layers.append(nn.Conv2d(channels, c["filters"], k, padding=k // 2, bias=c["use_bias"]))
            channels = c["filters"]
        elif kind == "BatchNormalization":
            layers.append(nn.BatchNorm2d(channels, eps=c.get("epsilon", 1e-3), momentum=1 - c.get("momentum", 0.99)))
        elif kind == "LeakyReLU":
            layers.append(nn.LeakyReLU(c["alpha"]))
        elif kind == "MaxPooling2D":
            layers.append(nn.MaxPool2d(c["pool_size"][0], c["strides"][0], ceil_mode=c["padding"] == "same"))
        elif kind == "GlobalAveragePooling2D":
            layers.append(nn.AdaptiveAvgPool2d(1))
            layers.append(nn.Flatten())
        else:
            raise ValueError(f"{path}: layer class {kind} is not mapped")
    return nn.Sequential(*layers), channels


def mobilenet_from_keras_json(path):
    """A Keras MobileNet v1 topology as torch layers. 'same' padding becomes k // 2 on every side:
    TensorFlow pads stride-2 convolutions of even inputs on the bottom/right only, so the values differ
    but the output sizes and the work do not (this is a speed peer)."""
    import torch.nn as nn
    with open(path) as f:
        topology = json.load(f)["modelTopology"]
    config = topology.get("model_config", topology)["config"]
    layers, channels = [], 3
    for layer in config["layers"]:
        kind, c = layer["class_name"], layer["config"]
        if kind == "InputLayer":
            continue
        if kind in ("Conv2D", "DepthwiseConv2D"):
            k, stride = c["kernel_size"][0], c["strides"][0]
            pad = k // 2 if c["padding"] == "same" else 0
            if kind == "Conv2D":
                layers.append(nn.Conv2d(channels, c["filters"], k, stride, pad, bias=c["use_bias"]))
                channels = c["filters"]
            else:
                out = channels * c.get("depth_multiplier", 1)
                layers.append(nn.Conv2d(channels, out, k, stride, pad, groups=channels, bias=c["use_bias"]))
                channels = out
        elif kind == "BatchNormalization":
            layers.append(nn.BatchNorm2d(channels, eps=c.get("epsilon", 1e-3), momentum=1 - c.get("momentum", 0.99)))
        elif kind == "Activation":
            if c["activation"] == "relu6":
                layers.append(nn.ReLU6())
            elif c["activation"] == "relu":
                layers.append(nn.ReLU())
            elif c["activation"] != "softmax":  # the loss applies the softmax
                raise ValueError(f"{path}: activation {c['activation']} is not mapped")
        elif kind == "GlobalAveragePooling2D":
            layers.append(nn.AdaptiveAvgPool2d(1))  # stays [N, C, 1, 1], as Keras' Reshape to (1, 1, C)
        elif kind == "Reshape":
            if len(c["target_shape"]) == 1:
                layers.append(nn.Flatten())
        elif kind == "Dropout":
            layers.append(nn.Dropout(c["rate"]))
        else:
            raise ValueError(f"{path}: layer class {kind} is not mapped")
    return nn.Sequential(*layers), channels


def images_per_second(fn, batch, min_seconds, min_reps):
    fn()  # warm-up
    reps, start = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < min_seconds:
        fn()
        reps += 1
    return batch * reps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--darknet", help="Darknet-Tiny model.json")
    parser.add_argument("--mobilenet", help="MobileNet v1 0.75 model.json")
    parser.add_argument("--tasks", required=True, help="JSON: {model: {task: {size, batch, train}}}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--min-reps", type=int, default=2)
    args = parser.parse_args()

    import torch
    import torch.nn as nn
    import torchvision

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = {"version": torch.__version__, "threads": torch.get_num_threads(), "results": {}}
    tasks = json.loads(args.tasks)
    for model_name, model_tasks in tasks.items():
        if model_name == "resnet50":
            model, classes = torchvision.models.resnet50(), 1000
        elif model_name == "darknet-tiny":
            if not args.darknet:
                continue
            model, classes = darknet_from_keras_json(args.darknet)
        elif model_name == "mobilenet-v1-0.75":
            if not args.mobilenet:
                continue
            model, classes = mobilenet_from_keras_json(args.mobilenet)
        else:
            continue
        model = model.to(memory_format=torch.channels_last)
        results = out["results"].setdefault(model_name, {})
        for task, spec in model_tasks.items():
            size, batch = spec["size"], spec["batch"]
            x = torch.randn(batch, 3, size, size).to(memory_format=torch.channels_last)
            y = torch.randint(0, classes, (batch,))
            if spec["train"]:
                model.train()
                optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
                loss_fn = nn.CrossEntropyLoss()

                def step():
                    optimizer.zero_grad(set_to_none=True)
                    loss_fn(model(x), y).backward()
                    optimizer.step()
                fn = step
            else:
                model.eval()

                def infer():
                    with torch.inference_mode():
                        model(x)
                fn = infer
            results[task] = round(images_per_second(fn, batch, args.min_seconds, args.min_reps), 3)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
