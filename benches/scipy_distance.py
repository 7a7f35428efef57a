#!/usr/bin/env python3
"""SciPy's time for the signed distance maps `segloss bench` times as `distance`.

The same maps as shared/device/anchor_bench.py's `dist_cpu` (every image and
class of blob label maps, `edt(~pos)·~pos − (edt(pos) − 1)·pos`), without its
PyTorch dependency, so the CPU anchor can be timed where PyTorch is absent.

    python3 benches/scipy_distance.py [--scale 1.0] [--iters 3]
"""
import argparse, json, statistics, time

import numpy as np
from scipy.ndimage import distance_transform_edt as edt


def blobs(shape, classes, rng):
    """anchor_bench.py's label maps: two ellipses per class over background 0."""
    n, sp = shape[0], shape[1:]
    grids = np.meshgrid(*[np.arange(d) + 0.5 for d in sp], indexing="ij")
    lab = np.zeros((n,) + sp, np.int64)
    for i in range(n):
        for c in range(1, classes):
            for _ in range(2):
                centre = [rng.uniform(0, d) for d in sp]
                radius = [rng.uniform(d / 12, d / 4) for d in sp]
                inside = sum(((g - c0) / r) ** 2 for g, c0, r in zip(grids, centre, radius)) <= 1
                lab[i][inside] = c
    return lab


def dist_cpu(lab, c):
    out = np.zeros((lab.shape[0], c) + lab.shape[1:], np.float32)
    for i in range(lab.shape[0]):
        for k in range(c):
            pos = lab[i] == k
            if pos.any() and not pos.all():
                out[i, k] = edt(~pos) * ~pos - (edt(pos) - 1) * pos
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--iters", type=int, default=3)
    a = ap.parse_args()
    s = lambda v: max(1, int(round(v * a.scale)))
    rng = np.random.default_rng(0)
    for name, shape in [("semantic-8x19x256", (8, 19, s(256), s(256))), ("volume-2x4x64x128", (2, 4, s(64), s(128), s(128)))]:
        lab = blobs((shape[0],) + shape[2:], shape[1], rng)
        times = []
        for _ in range(a.iters):
            t = time.perf_counter()
            dist_cpu(lab, shape[1])
            times.append((time.perf_counter() - t) * 1e3)
        print(json.dumps({"workload": name, "loss": "distance", "anchor": "SciPy distance_transform_edt, all images and classes",
                          "ms": round(statistics.median(times), 4), "device": "cpu", "shape": list(shape)}), flush=True)


if __name__ == "__main__":
    main()
