#!/usr/bin/env python3
"""The PyTorch side of `npm run -s cli -- bench`: the same networks and steps, in PyTorch's best CPU
configuration: every core (torch.set_num_threads(nproc) unless --threads says otherwise), each task
timed in channels_last and in the default (contiguous) layout with the faster counting, tcmalloc when
the caller preloads it. Prints one JSON object with the results, the configuration each task won with,
and what decides the speed: torch version, threads, oneDNN (mkldnn) on or off and its version, the CPU
capability it dispatches to, its BLAS; for MobileNet at 128 px, the share of the training step spent in
the depthwise convolutions (Debian's build is slow there).

ResNet-50 is torchvision's (v1.5: stride on the 3x3 conv, ~4.1 GFLOPs at 224 vs Keras v1's ~3.9).
Darknet-Tiny is rebuilt from the same model.json the TypeScript side loads (a chain of Conv2D,
BatchNormalization, LeakyReLU, MaxPooling2D, GlobalAveragePooling2D), and so is MobileNet v1 0.75
(Conv2D, DepthwiseConv2D as a grouped convolution, BatchNormalization, ReLU6, then its top: pooling,
dropout and the 1x1 conv to 1000 classes). Random weights: speed only.
"""
import argparse
import json
import os
import re
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


def build_info(torch):
    """What decides PyTorch's CPU speed here: threads, oneDNN (mkldnn), the vector ISA it dispatches to, its BLAS."""
    config = torch.__config__.show()
    parallel = torch.__config__.parallel_info()

    def grab(pattern, text):
        m = re.search(pattern, text)
        return m.group(1).strip() if m else None
    return {
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "mkldnn": {"available": bool(torch.backends.mkldnn.is_available()), "enabled": bool(torch.backends.mkldnn.enabled),
                   "version": grab(r"MKL-DNN (v[0-9.]+)", parallel) or grab(r"oneDNN (v[0-9.]+)", parallel)},
        "cpuCapability": grab(r"CPU capability usage: (\S+)", config),
        "blas": grab(r"BLAS_INFO=([^,]+)", config),
        "mkl": bool(torch.backends.mkl.is_available()),
        "parallelBackend": grab(r"ATen parallel backend: (.+)", parallel),
    }


def depthwise_share(torch, model, x, y, loss_fn):
    """Share of one training step's forward + backward CPU time spent in the depthwise (grouped)
    convolutions, from torch.profiler with shapes. Their FLOPs are ~3% of MobileNet's, so a large
    share means PyTorch's depthwise kernels are slow (not that the network is depthwise-bound)."""
    from torch.profiler import profile, ProfilerActivity
    model.zero_grad(set_to_none=True)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        loss_fn(model(x), y).backward()
    depthwise = 0.0
    for e in prof.key_averages(group_by_input_shape=True):
        shapes = e.input_shapes or []
        if e.key == "aten::convolution" and len(shapes) > 1:
            weight = shapes[1]
        elif e.key == "aten::convolution_backward" and len(shapes) > 2:
            weight = shapes[2]
        else:
            continue
        if len(weight) == 4 and weight[1] == 1 and weight[0] > 1:  # [C, 1, kh, kw]: one input channel per group
            depthwise += e.cpu_time_total
    total = sum(e.cpu_time_total for e in prof.events() if e.cpu_parent is None)
    return round(depthwise / total, 3) if total > 0 else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--darknet", help="Darknet-Tiny model.json")
    parser.add_argument("--mobilenet", help="MobileNet v1 0.75 model.json")
    parser.add_argument("--tasks", required=True, help="JSON: {model: {task: {size, batch, train}}}")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch.set_num_threads (default: every core)")
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--min-reps", type=int, default=2)
    parser.add_argument("--formats", default="channels_last,contiguous", help="memory formats to try; the faster per task counts")
    args = parser.parse_args()

    import torch
    import torch.nn as nn
    import torchvision

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = build_info(torch)
    out["results"] = {}
    out["configurations"] = {}
    formats = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
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
        results = out["results"].setdefault(model_name, {})
        configs = out["configurations"].setdefault(model_name, {})
        for task, spec in model_tasks.items():
            size, batch = spec["size"], spec["batch"]
            y = torch.randint(0, classes, (batch,))
            tried = {}
            for fmt_name in args.formats.split(","):
                fmt = formats[fmt_name]
                model = model.to(memory_format=fmt)
                x = torch.randn(batch, 3, size, size).to(memory_format=fmt)
                loss_fn = nn.CrossEntropyLoss()
                if spec["train"]:
                    model.train()
                    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

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
                tried[fmt_name] = round(images_per_second(fn, batch, args.min_seconds, args.min_reps), 3)
                if model_name == "mobilenet-v1-0.75" and task == "train128":
                    configs.setdefault("train128DepthwiseShare", {})[fmt_name] = depthwise_share(torch, model, x, y, loss_fn)
            best = max(tried, key=tried.get)
            results[task] = tried[best]
            configs[task] = {"best": best, "imagesPerSecond": tried}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
