#!/usr/bin/python3
"""Train the reference head in PyTorch on exactly what the Go test hands over.

Usage: reference_head.py DIR

DIR/config.json: {"d", "n", "lr", "l1", "weight_decay", "class_weights": [w0, w1],
                  "batches": [[sample indices], ...]}
DIR/x.f32:       n*d little-endian float32 features
DIR/labels.json: n labels (0 real, 1 fake)
DIR/init.f32:    initial gamma, beta, running_mean, running_var (d each),
                 linear weight (2*d, row-major), linear bias (2)
Writes DIR/out.json: {"losses": per-step loss (cross-entropy + L1),
                      "logits": eval-mode logits of all n samples, flattened}.
Dropout is off (p=0): the Go side cannot share PyTorch's random stream.
"""
import json
import sys

import numpy as np
import torch
from torch import nn


def main(d):
    cfg = json.load(open(f"{d}/config.json"))
    D, N = cfg["d"], cfg["n"]
    x = torch.from_numpy(np.fromfile(f"{d}/x.f32", dtype="<f4").reshape(N, D).copy())
    y = torch.tensor(json.load(open(f"{d}/labels.json")), dtype=torch.long)
    init = np.fromfile(f"{d}/init.f32", dtype="<f4")
    assert init.size == 6 * D + 2, f"init.f32 has {init.size} floats, want {6 * D + 2}"

    head = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(D), nn.Dropout(0.0), nn.Linear(D, 2))
    bn, lin = head[1], head[3]
    with torch.no_grad():
        parts = np.split(init, [D, 2 * D, 3 * D, 4 * D, 6 * D])
        bn.weight.copy_(torch.from_numpy(parts[0]))
        bn.bias.copy_(torch.from_numpy(parts[1]))
        bn.running_mean.copy_(torch.from_numpy(parts[2]))
        bn.running_var.copy_(torch.from_numpy(parts[3]))
        lin.weight.copy_(torch.from_numpy(parts[4].reshape(2, D)))
        lin.bias.copy_(torch.from_numpy(parts[5]))

    opt = torch.optim.Adam(head.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    crit = nn.CrossEntropyLoss(weight=torch.tensor(cfg["class_weights"], dtype=torch.float32))
    losses = []
    head.train()
    for batch in cfg["batches"]:
        idx = torch.tensor(batch, dtype=torch.long)
        opt.zero_grad()
        loss = crit(head(x[idx]), y[idx]) + cfg["l1"] * lin.weight.abs().sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    head.eval()
    with torch.no_grad():
        logits = head(x).reshape(-1).tolist()
    json.dump({"losses": losses, "logits": logits}, open(f"{d}/out.json", "w"))


if __name__ == "__main__":
    main(sys.argv[1])
