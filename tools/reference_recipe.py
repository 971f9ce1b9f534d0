#!/usr/bin/python3
"""The notebook's head recipe in PyTorch: the bar our Go training must beat.

Reads the FileDataset format of the train package (features: flat little-endian
float32 N*D; labels: CSV with header "label,group", 0 real / 1 fake, row i is
sample i), trains nn.Sequential(Flatten, BatchNorm1d(D), Dropout(0.5),
Linear(D, 2)) with Adam lr 1e-3, weight_decay 1e-2, cross-entropy + 1e-4 *
sum|W|, batch 64, 5 epochs on the train set, then scores the test set and
prints JSON: auc, accuracy, f1, precision, recall (argmax, i.e. threshold 0.5),
train_seconds, n_train, n_test.

Usage: reference_recipe.py TRAIN_FEATURES TRAIN_LABELS TEST_FEATURES TEST_LABELS [--seed N]
"""
import argparse
import csv
import json
import os
import time

import numpy as np
import torch
from torch import nn


def load(features, labels):
    with open(labels, newline="") as f:
        rows = list(csv.reader(f))
    if rows[:1] != [["label", "group"]]:
        raise SystemExit(f"{labels}: header must be label,group")
    y = np.array([int(r[0]) for r in rows[1:]], dtype=np.int64)
    n = len(y)
    size = os.path.getsize(features)
    if n == 0 or size % (4 * n):
        raise SystemExit(f"{features}: {size} bytes is not {n} float32 vectors")
    x = np.memmap(features, dtype="<f4", mode="r", shape=(n, size // (4 * n)))
    return x, y


def auc(y, s):
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j < len(s) and sorted_s[j] == sorted_s[i]:
            j += 1
        ranks[order[i:j]] = (i + j + 1) / 2
        i = j
    npos, nneg = (y == 1).sum(), (y == 0).sum()
    return float((ranks[y == 1].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("train_features")
    ap.add_argument("train_labels")
    ap.add_argument("test_features")
    ap.add_argument("test_labels")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    xtr, ytr = load(a.train_features, a.train_labels)
    xte, yte = load(a.test_features, a.test_labels)
    d = xtr.shape[1]

    head = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(d), nn.Dropout(0.5), nn.Linear(d, 2))
    opt = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=1e-2)
    crit = nn.CrossEntropyLoss()
    start = time.monotonic()
    head.train()
    for _ in range(5):
        perm = torch.randperm(len(ytr)).numpy()
        for s in range(0, len(perm), 64):
            idx = np.sort(perm[s:s + 64])
            if len(idx) < 2:  # BatchNorm cannot train on one sample
                continue
            xb = torch.from_numpy(np.ascontiguousarray(xtr[idx]))
            yb = torch.from_numpy(ytr[idx])
            opt.zero_grad()
            loss = crit(head(xb), yb) + 1e-4 * head[3].weight.abs().sum()
            loss.backward()
            opt.step()
    train_seconds = time.monotonic() - start

    head.eval()
    probs = []
    with torch.no_grad():
        for s in range(0, len(yte), 256):
            logits = head(torch.from_numpy(np.ascontiguousarray(xte[s:s + 256])))
            probs.append(torch.softmax(logits, 1)[:, 1].numpy())
    p = np.concatenate(probs).astype(np.float64)
    pred = (p >= 0.5).astype(np.int64)
    tp = int(((pred == 1) & (yte == 1)).sum())
    fp = int(((pred == 1) & (yte == 0)).sum())
    fn = int(((pred == 0) & (yte == 1)).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    print(json.dumps({
        "auc": auc(yte, p),
        "accuracy": float((pred == yte).mean()),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "precision": prec,
        "recall": rec,
        "train_seconds": train_seconds,
        "n_train": int(len(ytr)),
        "n_test": int(len(yte)),
    }))


if __name__ == "__main__":
    main()
