#!/usr/bin/python3
"""PyTorch reference for deepfaked's Go classifier (used by infer's equivalence tests).

make-weights: save a seeded torchvision mnasnet0_75 state_dict with random BatchNorm
  affine parameters and running statistics calibrated on random batches.
run: build the same backbone and head as tools/export_model.py (same --weights, --seed,
  --size), run the first B faces of a raw little-endian float32 NCHW file through them in
  eval mode for each B in --batches, and write features-B.f32, logits-B.f32 and
  p_fake-B.f32 (softmax column 1) into --out.
"""

import argparse
import os
import sys

sys.dont_write_bytecode = True  # don't leave __pycache__ in tools/ when importing export_model
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import export_model  # noqa: E402


def make_weights(args):
    import torch

    # Calibrated statistics make the output depend on the input, so the
    # equivalence test compares something.
    torch.save(export_model.random_mnasnet(args.seed).state_dict(), args.out)


def run(args):
    import numpy as np
    import torch

    torch.set_num_threads(1)
    batches = [int(b) for b in args.batches.split(",")]
    n = max(batches)
    backbone, head, _, _ = export_model.build_models(args.weights, args.seed, args.size)
    x = np.fromfile(args.input, dtype="<f4")
    want = n * 3 * args.size * args.size
    if x.size != want:
        export_model.fail("%s holds %d floats, want %d (%d faces at size %d)" % (
            args.input, x.size, want, n, args.size))
    x = torch.from_numpy(x.reshape(n, 3, args.size, args.size))
    os.makedirs(args.out, exist_ok=True)
    # Each batch size is its own run, as the Go side does it.
    for b in batches:
        with torch.no_grad():
            feats = backbone(x[:b])
            logits = head(feats)
            p = torch.softmax(logits, dim=1)[:, 1]
        for name, t in (("features", feats), ("logits", logits), ("p_fake", p)):
            t.numpy().astype("<f4").tofile(os.path.join(args.out, "%s-%d.f32" % (name, b)))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    mw = sub.add_parser("make-weights")
    mw.add_argument("--seed", type=int, default=0)
    mw.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--weights", default="random")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--size", type=int, default=128)
    r.add_argument("--batches", default="1,8",
                   help="batch sizes to run, each on the first faces of --input")
    r.add_argument("--input", required=True)
    r.add_argument("--out", required=True)
    args = p.parse_args()
    export_model.import_torch()
    {"make-weights": make_weights, "run": run}[args.cmd](args)


if __name__ == "__main__":
    main()
