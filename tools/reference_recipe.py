#!/usr/bin/python3
"""The notebook's head recipe in PyTorch: the bar our Go training must beat.

Reads the FileDataset format of the train package (features: flat little-endian
float32 N*D; labels: CSV with header "label,group", 0 real / 1 fake, row i is
sample i), trains nn.Sequential(Flatten, BatchNorm1d(D), Dropout(0.5),
Linear(D, 2)) with Adam lr 1e-3, weight_decay 1e-2, cross-entropy + 1e-4 *
sum|W|, batch 64, 5 epochs.

Like the notebook it first runs 5-fold cross-validation over the train set, a
fresh head per fold trained 5 epochs. The notebook's folds did not rotate (it
trained the same split five times); here they do: stratified by label,
grouped by the labels.csv group (so one identity never straddles a split),
which costs the same five fits and also gives honest out-of-fold scores. Then
the final head trains on the whole train set and scores the test set.

Prints JSON: auc, accuracy, f1, precision, recall on test (argmax, i.e.
threshold 0.5), cv_auc (pooled out-of-fold), cv_seconds (the five folds),
train_seconds (the final fit alone), total_seconds (both), n_train, n_test.
--folds 0 skips the cross-validation.

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
    groups = np.array([r[1] for r in rows[1:]])
    n = len(y)
    size = os.path.getsize(features)
    if n == 0 or size % (4 * n):
        raise SystemExit(f"{features}: {size} bytes is not {n} float32 vectors")
    x = np.memmap(features, dtype="<f4", mode="r", shape=(n, size // (4 * n)))
    return x, y, groups


def folds(y, groups, k, rng):
    """Stratified grouped k-fold: groups shuffled, then dealt round-robin to
    the folds within each class (a group's class: its majority label)."""
    names, inv = np.unique(groups, return_inverse=True)
    glabel = np.array([np.round(y[inv == g].mean()) for g in range(len(names))])
    fold_of = np.empty(len(names), dtype=np.int64)
    for c in (0, 1):
        gs = rng.permutation(np.flatnonzero(glabel == c))
        fold_of[gs] = np.arange(len(gs)) % k
    return [np.flatnonzero(fold_of[inv] == f) for f in range(k)]


def train_head(x, y, idx, d):
    """The notebook's head trained 5 epochs on samples idx of x."""
    head = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(d), nn.Dropout(0.5), nn.Linear(d, 2))
    opt = torch.optim.Adam(head.parameters(), lr=1e-3, weight_decay=1e-2)
    crit = nn.CrossEntropyLoss()
    head.train()
    for _ in range(5):
        perm = idx[torch.randperm(len(idx)).numpy()]
        for s in range(0, len(perm), 64):
            b = np.sort(perm[s:s + 64])
            if len(b) < 2:  # BatchNorm cannot train on one sample
                continue
            xb = torch.from_numpy(np.ascontiguousarray(x[b]))
            yb = torch.from_numpy(y[b])
            opt.zero_grad()
            loss = crit(head(xb), yb) + 1e-4 * head[3].weight.abs().sum()
            loss.backward()
            opt.step()
    return head


def fake_probs(head, x, idx):
    head.eval()
    probs = []
    with torch.no_grad():
        for s in range(0, len(idx), 256):
            logits = head(torch.from_numpy(np.ascontiguousarray(x[idx[s:s + 256]])))
            probs.append(torch.softmax(logits, 1)[:, 1].numpy())
    return np.concatenate(probs).astype(np.float64)


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
    ap.add_argument("--folds", type=int, default=5)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    xtr, ytr, gtr = load(a.train_features, a.train_labels)
    xte, yte, _ = load(a.test_features, a.test_labels)
    d = xtr.shape[1]

    start = time.monotonic()
    cv_auc = None
    if a.folds:
        oof = np.empty(len(ytr))
        split = folds(ytr, gtr, a.folds, np.random.default_rng(a.seed))
        for val in split:
            tr = np.setdiff1d(np.arange(len(ytr)), val)
            oof[val] = fake_probs(train_head(xtr, ytr, tr, d), xtr, val)
        cv_auc = auc(ytr, oof)
    cv_seconds = time.monotonic() - start
    start = time.monotonic()
    head = train_head(xtr, ytr, np.arange(len(ytr)), d)
    train_seconds = time.monotonic() - start

    p = fake_probs(head, xte, np.arange(len(yte)))
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
        "cv_auc": cv_auc,
        "cv_seconds": cv_seconds,
        "train_seconds": train_seconds,
        "total_seconds": cv_seconds + train_seconds,
        "n_train": int(len(ytr)),
        "n_test": int(len(yte)),
    }))


if __name__ == "__main__":
    main()
