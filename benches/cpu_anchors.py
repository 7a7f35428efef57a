#!/usr/bin/env python3
"""The anchors of `hausdorff_dt`, `mcc`, `cl_dice`, `hausdorff_er` and
`unified_focal` (MONAI and kornia), timed as shared/device/anchor_bench.py
times them, on its workloads, without the anchors that need other
libraries: for a side-by-side with `segloss bench --loss …` on a CPU.

It imports anchor_bench.py (workloads, blob targets, timer, EDT backend) from
../shared/device, so the inputs, the anchors' calls and the timing are the
anchor's own. Needs torch, MONAI, kornia and SciPy (a scratch venv outside
the repository will do).

    python3 benches/cpu_anchors.py [--loss hausdorff_dt,mcc,cl_dice,hausdorff_er,unified_focal]
        [--iters 5] [--only semantic-8x19x256,volume-2x4x64x128,binary-16x512] [--device cpu]
"""
import argparse, json, os, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "device"))
import numpy as np
import torch
import torch.nn.functional as F
import anchor_bench as ab
import monai.losses as ml

ap = argparse.ArgumentParser()
ap.add_argument("--loss", default="hausdorff_dt,mcc,cl_dice,hausdorff_er,unified_focal")
ap.add_argument("--iters", type=int, default=5)
ap.add_argument("--only", default="semantic-8x19x256,volume-2x4x64x128,binary-16x512")
ap.add_argument("--device", default="cpu")
a = ap.parse_args()
dev, rng = a.device, np.random.default_rng(0)
time_it = ab.timer(dev, a.iters)
losses = a.loss.split(",")
for wname, w in ab.workloads(1.0).items():
    if wname not in a.only.split(","):
        continue
    timed = []
    if w["kind"] == "binary":
        x = torch.randn(w["shape"], device=dev, requires_grad=True)
        y = torch.tensor(ab.blobs((w["shape"][0],) + w["shape"][2:], 2, rng), device=dev)[:, None].float()
        if "unified_focal" in losses:
            uf = ml.AsymmetricUnifiedFocalLoss()  # takes probabilities: the sigmoid is part of the step
            timed.append(("unified_focal", "MONAI AsymmetricUnifiedFocalLoss on sigmoid", lambda: uf(torch.sigmoid(x), y).backward()))
    elif w["kind"] == "multiclass":
        n, c = w["shape"][:2]
        y = torch.tensor(ab.blobs((n,) + tuple(w["shape"][2:]), c, rng), device=dev)
        x = torch.randn(w["shape"], device=dev, requires_grad=True)
        if "hausdorff_dt" in losses:
            # anchor_bench.py's hausdorff_dt logits: leaning towards the target, so the predicted masks look like a network's.
            xh = (torch.randn(w["shape"], device=dev) + 4 * F.one_hot(y, c).movedim(-1, 1).float()).requires_grad_(True)
            hd = ml.HausdorffDTLoss(softmax=True, to_onehot_y=True)
            timed.append(("hausdorff_dt", f"MONAI HausdorffDTLoss(softmax), {ab.edt_backend(dev)} EDT, distance maps each call",
                          lambda: hd(xh, y[:, None]).backward()))
        if "mcc" in losses:
            mc = ml.MCCLoss(softmax=True, to_onehot_y=True)
            timed.append(("mcc", "MONAI MCCLoss(softmax)", lambda: mc(x, y[:, None]).backward()))
        if "cl_dice" in losses:
            cl = ml.SoftclDiceLoss(iter_=3, softmax=True)
            y1 = F.one_hot(y, c).movedim(-1, 1).float()
            timed.append(("cl_dice", "MONAI SoftclDiceLoss(iter_=3, softmax)", lambda: cl(x, y1).backward()))
        if "hausdorff_er" in losses:
            import kornia.losses as kl
            he = (kl.HausdorffERLoss if len(w["shape"]) == 4 else kl.HausdorffERLoss3D)(alpha=2.0, k=10)
            timed.append(("hausdorff_er", f"kornia {type(he).__name__}(k=10) on softmax",
                          lambda: he(torch.softmax(x, 1), y[:, None]).backward()))
    for loss, anchor, step in timed:
        print(json.dumps({"workload": wname, "loss": loss, "anchor": anchor, "ms": round(time_it(step), 4),
                          "device": dev, "threads": torch.get_num_threads(), "shape": list(w["shape"])}), flush=True)
