#!/usr/bin/python3
"""Fine-tune torchvision's MnasNet 0.75 end to end as a real/fake classifier and
export its feature extractor as the backbone.onnx deepfaked loads.

The model is torchvision `mnasnet0_75` with a 2-class classifier (Dropout 0.2,
Linear 1280->2) on the pooled features, trained on one or more labelled folders
(--data DIR, repeatable). Each DIR holds either labels.csv (path,label,identity;
label real/fake/0/1, 1 = fake; identity is the source video or person and may be
left out, when it is the file's stem) or real/ and fake/ subfolders (identity =
the file's stem). Images are read and resized as the daemon does with a face
crop (OpenCV decode, the whole image resized to SxS with area interpolation,
RGB, (x/255 - mean)/std with ImageNet's mean and std), then augmented.

The validation split is grouped by identity: no identity (source video) is on
both sides. Early stopping watches the validation loss.

Outputs in --out: backbone.pth (state_dict of the whole model, best epoch),
backbone.onnx (model.layers exported with tools/export_model.py's to_onnx and
metadata: input `input` [N,3,S,S], output `features` [N,1280,S/32,S/32]),
checkpoint.pt (every epoch, for --resume), metrics.json and training-log.txt.
The head the daemon runs is trained afterwards on these features
(`deepfaked train`).

Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision,
python3-onnx; python3-opencv is used when present, else PIL).
"""

import argparse
import csv
import hashlib
import io
import json
import math
import os
import random
import shlex
import sys
import time

sys.dont_write_bytecode = True  # don't leave __pycache__ in tools/ when importing export_model
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import export_model  # noqa: E402
import faceaug  # noqa: E402

PROG = "train_backbone"
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
LABELS = {"real": 0, "0": 0, "fake": 1, "1": 1}
NUM_CLASSES = len(export_model.CLASS_NAMES)  # real, fake: column 1 is p_fake

RANDOM_WARNING = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! WARNING: training from RANDOMLY INITIALISED weights (--init random).    !!
!! A MnasNet learns little from a few thousand faces this way: expect a    !!
!! poor backbone. Start from --init imagenet (online) or --init PATH.pth   !!
!! (e.g. ../shared/models/backbone/mnasnet0_75_dfdc.pth).                  !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""

# Augmentation probabilities per preset; --p-* flags override single entries. flip is
# the mirror, geo a random detector box (--max-shift, --max-scale, --max-rotate),
# codec an H.264 re-encoding (else jpeg is tried), sbi the share of fake samples
# replaced by a self-blend of a real training face.
AUG_NAMES = ("flip", "jitter", "blur", "rescale", "jpeg", "erase", "geo", "codec", "sbi")
AUG_PRESETS = {
    "none": dict(flip=0.0, jitter=0.0, blur=0.0, rescale=0.0, jpeg=0.0, erase=0.0),
    "light": dict(flip=0.5, jitter=0.3, blur=0.1, rescale=0.15, jpeg=0.3, erase=0.1),
    "strong": dict(flip=0.5, jitter=0.8, blur=0.3, rescale=0.3, jpeg=0.6, erase=0.3),
    # Release 2: what the camera and the detector do, and self-blended fakes.
    "invariant": dict(flip=0.5, jitter=0.5, blur=0.3, rescale=0.4, jpeg=0.4, erase=0.1,
                      geo=0.9, codec=0.3, sbi=0.3),
}
for _p in AUG_PRESETS.values():
    for _n in AUG_NAMES:
        _p.setdefault(_n, 0.0)


class DataError(Exception):
    """Bad input: the message names the file or folder."""


def fail(msg, code=2):
    print("%s: error: %s" % (PROG, msg), file=sys.stderr, flush=True)
    sys.exit(code)


def warn(msg):
    print("%s: warning: %s" % (PROG, msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data listing

def parse_label(raw, where):
    v = (raw or "").strip().lower()
    if v not in LABELS:
        raise DataError("%s: label %r is not real, fake, 0 or 1" % (where, raw))
    return LABELS[v]


def list_folder(d):
    """Returns [(path, label, identity)] for one --data folder (labels.csv or real/ fake/)."""
    if not os.path.isdir(d):
        raise DataError("--data %s: no such folder" % d)
    csv_path = os.path.join(d, "labels.csv")
    items = []
    if os.path.isfile(csv_path):
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            cols = [c.strip().lower() for c in header] if header else []
            if "path" not in cols or "label" not in cols:
                raise DataError("%s: the first row must be a header with path and label "
                                "(and identity), got %r" % (csv_path, header))
            ip, il = cols.index("path"), cols.index("label")
            ii = cols.index("identity") if "identity" in cols else None
            for row_no, row in enumerate(reader, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                where = "%s row %d" % (csv_path, row_no)
                if len(row) <= max(ip, il, ii if ii is not None else 0):
                    raise DataError("%s: %d columns, the header has %d" % (where, len(row), len(cols)))
                rel = row[ip].strip()
                if not rel:
                    raise DataError("%s: empty path" % where)
                label = parse_label(row[il], where)
                ident = row[ii].strip() if ii is not None else ""
                if not ident:
                    ident = os.path.splitext(os.path.basename(rel))[0]
                items.append((os.path.join(d, rel), label, ident))
        if not items:
            raise DataError("%s: no rows after the header" % csv_path)
        return items
    subs = {name: os.path.join(d, name) for name in ("real", "fake")}
    present = [n for n, p in subs.items() if os.path.isdir(p)]
    if not present:
        raise DataError("--data %s: has neither labels.csv nor real/ and fake/ subfolders" % d)
    for name in ("real", "fake"):
        sub = subs[name]
        if not os.path.isdir(sub):
            warn("--data %s: no %s/ subfolder: no %s images from it" % (d, name, name))
            continue
        for fn in sorted(os.listdir(sub)):
            p = os.path.join(sub, fn)
            if fn.startswith(".") or not os.path.isfile(p) or not fn.lower().endswith(IMAGE_EXTS):
                continue
            items.append((p, LABELS[name], os.path.splitext(fn)[0]))
    if not items:
        raise DataError("--data %s: real/ and fake/ hold no images (%s)" % (d, ", ".join(IMAGE_EXTS)))
    return items


# ---------------------------------------------------------------- image reading

def _cv2():
    try:
        import cv2
        return cv2
    except ImportError:
        return None


def read_image(path, size):
    """Decodes path and resizes the whole image to size x size as the daemon does with
    a face crop (capture/preprocess: OpenCV area interpolation). Returns uint8 HxWx3 RGB."""
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise ValueError("empty file")
    cv2 = _cv2()
    if cv2 is not None:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None or img.size == 0:
            raise ValueError("not an image OpenCV can decode")
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(img[:, :, ::-1])  # BGR -> RGB
    from PIL import Image
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        shrink = im.width >= size and im.height >= size
        im = im.resize((size, size), Image.BOX if shrink else Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8).copy()


def load_images(items, size):
    """Reads every image into one uint8 [N,S,S,3] array. Unreadable files are skipped
    and counted, with a warning naming up to 10. Returns (images, kept_items, bad)."""
    import numpy as np
    images = np.empty((len(items), size, size, 3), dtype=np.uint8)
    kept, bad = [], []
    last = time.time()
    for i, it in enumerate(items):
        try:
            images[len(kept)] = read_image(it[0], size)
            kept.append(it)
        except Exception as e:  # OSError, ValueError, PIL's own kinds
            bad.append((it[0], str(e) or type(e).__name__))
        if time.time() - last > 5:
            last = time.time()
            print("  reading images %d/%d" % (i + 1, len(items)), file=sys.stderr, flush=True)
    if bad:
        warn("skipped %d unreadable image(s)%s:\n%s" % (
            len(bad), " (first 10)" if len(bad) > 10 else "",
            "\n".join("  %s: %s" % b for b in bad[:10])))
    return images[:len(kept)], kept, bad


# ---------------------------------------------------------------- split

def grouped_split(items, val_frac, seed):
    """Splits item indices into (train, val) with no identity on both sides.
    Stratified-ish: identities are grouped by what they hold (only real, only fake,
    both) and each group gives about val_frac of its images to validation."""
    if val_frac <= 0:
        return list(range(len(items))), []
    by_id = {}
    for i, (_, label, ident) in enumerate(items):
        by_id.setdefault(ident, []).append(i)
    strata = {}
    for ident in sorted(by_id):
        labels = {items[i][1] for i in by_id[ident]}
        key = "both" if len(labels) > 1 else ("fake" if 1 in labels else "real")
        strata.setdefault(key, []).append(ident)
    rng = random.Random("split-%d" % seed)
    train, val = [], []
    for key in sorted(strata):
        idents = strata[key]
        rng.shuffle(idents)
        total = sum(len(by_id[k]) for k in idents)
        want = val_frac * total
        taken = 0
        for ident in idents:
            n = len(by_id[ident])
            # Take an identity while it brings validation closer to its share.
            if taken < want and abs(taken + n - want) <= abs(taken - want) or (taken == 0 and want >= 0.5):
                val.extend(by_id[ident])
                taken += n
            else:
                train.extend(by_id[ident])
    return sorted(train), sorted(val)


# ---------------------------------------------------------------- augmentation

def resolve_aug(args):
    probs = dict(AUG_PRESETS[args.aug])
    for name in AUG_NAMES:
        v = getattr(args, "p_" + name)
        if v is not None:
            if not 0 <= v <= 1:
                fail("--p-%s %g: a probability is between 0 and 1" % (name, v))
            probs[name] = v
    return probs


def photometric(img, probs, rng):
    """What the camera does before the crop, shared by a sample's views: colour, blur,
    resolution, and erasing a face part. Returns uint8 RGB."""
    if rng.random() < probs["jitter"]:
        img = faceaug.colour_jitter(img, rng)
    if rng.random() < probs["blur"]:
        img = faceaug.blur(img, rng)
    if rng.random() < probs["rescale"]:
        img = faceaug.rescale(img, rng)
    if rng.random() < probs["erase"]:
        img = faceaug.erase(img, rng)
    return img


def view(img, probs, geo, rng):
    """One view of a sample: the detector's box (shift, scale, rotation, mirror) and the
    stream's compression, drawn anew for each view. geo: (max_shift px at 128,
    max_scale, max_rotate degrees)."""
    if rng.random() < probs["geo"]:
        img = faceaug.random_geometry(img, rng, geo[0], geo[1], geo[2], probs["flip"])
    elif rng.random() < probs["flip"]:
        img = faceaug.affine(img, mirror=True)
    if rng.random() < probs["codec"]:
        img = faceaug.video_codec(img, rng)
    elif rng.random() < probs["jpeg"]:
        img = faceaug.jpeg(img, rng)
    return img


def augment(img, probs, rng, geo=(8.0, 0.1, 8.0), views=1):
    """img: uint8 SxSx3 RGB numpy. Returns a list of `views` augmented uint8 RGB arrays
    of the same face: shared photometric changes, then each view's own geometry and
    compression. rng: random.Random."""
    base = photometric(img, probs, rng)
    return [view(base, probs, geo, rng) for _ in range(views)]


class FaceSet:
    """A torch Dataset over preloaded uint8 images. Every sample's augmentation is drawn
    from its own RNG seeded by (seed, epoch, index), so results do not depend on worker
    count or order, and a resumed run sees the same samples. With views > 1 a sample is
    [views,3,S,S]. sbi_pool: indices of the real faces a fake sample may be replaced by
    a self-blend of (with probability probs["sbi"])."""

    def __init__(self, images, labels, indices, probs, seed, mean, std, views=1, geo=(8.0, 0.1, 8.0),
                 sbi_pool=()):
        import torch
        self.images, self.labels, self.indices = images, labels, list(indices)
        self.probs, self.seed, self.epoch = probs, seed, 0
        self.views, self.geo, self.sbi_pool = views, geo, list(sbi_pool)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __len__(self):
        return len(self.indices)

    def tensor(self, img):
        import numpy as np
        import torch
        x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div_(255)
        return (x - self.mean) / self.std

    def __getitem__(self, k):
        import torch
        i = self.indices[k]
        img, label = self.images[i], int(self.labels[i])
        if self.probs is None:
            return self.tensor(img), label
        rng = random.Random("%d-%d-%d" % (self.seed, self.epoch, i))
        if label == 1 and self.sbi_pool and rng.random() < self.probs["sbi"]:
            img = faceaug.self_blend(self.images[self.sbi_pool[rng.randrange(len(self.sbi_pool))]], rng)
        views = augment(img, self.probs, rng, self.geo, self.views)
        if self.views == 1:
            return self.tensor(views[0]), label
        return torch.stack([self.tensor(v) for v in views]), label


# ---------------------------------------------------------------- model

def build_model(init, seed, size, calib=None):
    """Returns (model, weights description, report lines, feature cells). calib:
    (x [N,3,S,S] normalised, y [N]) training images, needed by an ONNX --init."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    report = []
    if init == "random":
        sys.stderr.write(RANDOM_WARNING)
        model = torchvision.models.mnasnet0_75(weights=None)
        label = "random:seed=%d" % seed
        report.append("init: RANDOM weights (seed %d)" % seed)
    elif init == "imagenet":
        try:
            model = torchvision.models.mnasnet0_75(
                weights=torchvision.models.MNASNet0_75_Weights.IMAGENET1K_V1)
        except Exception as e:
            fail("--init imagenet: could not get torchvision's ImageNet weights for mnasnet0_75 (%s). "
                 "Offline? Copy the .pth from a machine that is online and pass --init PATH.pth, "
                 "e.g. ../shared/models/backbone/mnasnet0_75_dfdc.pth" % e)
        label = "imagenet"
        report.append("init: torchvision ImageNet weights (IMAGENET1K_V1); new 2-class classifier")
    elif init.lower().endswith(".onnx"):
        if not os.path.isfile(init):
            fail("--init %s: no such file" % init)
        if calib is None:
            fail("--init %s: an ONNX backbone needs training images to restore its BatchNorm layers" % init)
        model = torchvision.models.mnasnet0_75(weights=None)
        n = layers_from_onnx(init, model.layers, calib[0])
        label = "file:%s:%s" % (os.path.basename(init), export_model.sha256_file(init)[:12])
        report.append("init: %s (ONNX, BatchNorm folded): %d convolutions loaded, BatchNorm restored "
                      "from %d training images (the same function in eval mode)" % (init, n, len(calib[0])))
    else:
        if not os.path.isfile(init):
            fail("--init %s: not 'random', 'imagenet', an existing .pth or .onnx file" % init)
        sd = export_model.load_state_dict(init)
        model = torchvision.models.mnasnet0_75(weights=None)
        if any(k.startswith("layers.") for k in sd):
            layers = {k[len("layers."):]: v for k, v in sd.items() if k.startswith("layers.")}
            kind = "full model"
        else:
            layers = dict(sd)
            kind = "features-only"
        other = sorted(k for k in sd if not k.startswith(("layers.", "classifier."))) if kind == "full model" else []
        want = set(model.layers.state_dict())
        missing = sorted(want - set(layers))
        unexpected = sorted(set(layers) - want) + other
        if missing or unexpected:
            fail("--init %s is not a torchvision mnasnet0_75 (%s state_dict): %d missing key(s)%s, "
                 "%d unexpected key(s)%s" % (
                     init, kind, len(missing), (" e.g. " + ", ".join(missing[:5])) if missing else "",
                     len(unexpected), (" e.g. " + ", ".join(unexpected[:5])) if unexpected else ""))
        try:
            model.layers.load_state_dict(layers, strict=True)
        except RuntimeError as e:
            fail("--init %s is not a torchvision mnasnet0_75 state_dict (wrong width multiplier?):\n%s" % (init, e))
        label = "file:%s:%s" % (os.path.basename(init), export_model.sha256_file(init)[:12])
        report.append("init: %s (%s state_dict): %d feature tensors loaded strictly, "
                      "0 missing, 0 unexpected" % (init, kind, len(layers)))
    # A fresh 2-class classifier, seeded on its own; a 2-class one from the file replaces it.
    torch.manual_seed(seed)
    model.classifier = torch.nn.Sequential(
        torch.nn.Dropout(p=0.2, inplace=True),
        torch.nn.Linear(export_model.FEATURE_CHANNELS, NUM_CLASSES))
    if init.lower().endswith(".onnx"):
        acc = fit_classifier(model, *calib)
        report.append("init: classifier fitted on the pooled features of %d training images "
                      "(training accuracy %.3f)" % (len(calib[0]), acc))
    elif init not in ("random", "imagenet"):
        cls = {k[len("classifier."):]: v for k, v in sd.items() if k.startswith("classifier.")}
        shapes = {k: tuple(v.shape) for k, v in model.classifier.state_dict().items()}
        if cls and {k: tuple(v.shape) for k, v in cls.items()} == shapes:
            model.classifier.load_state_dict(cls)
            report.append("init: classifier loaded from the file (2 classes)")
        elif cls:
            report.append("init: classifier in the file has shapes %s, not %s: a new 2-class classifier"
                          % ({k: tuple(v.shape) for k, v in cls.items()}, shapes))
        else:
            report.append("init: no classifier in the file: a new 2-class classifier")
    cells = export_model.feature_cells(model.layers, size)
    return model, label, report, cells


def layers_from_onnx(path, layers, x):
    """Loads a backbone exported by this project (export_model.to_onnx in eval mode, which
    folds each BatchNorm into the convolution before it: weight W, bias B) into
    mnasnet0_75's layers, and gives each BatchNorm back the statistics of x, so that
    training normalises batches as before: for a convolution output c = W*in,
    BN(c) = (c - mean) / sqrt(var + eps) * sqrt(var + eps) + mean + B = c + B in eval mode.
    Returns the number of convolutions."""
    import onnx
    import torch
    from onnx import numpy_helper
    try:
        proto = onnx.load(path)
    except Exception as e:  # onnx raises DecodeError and OSError kinds
        fail("--init %s: not a readable ONNX model: %s" % (path, e))
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    mods = list(layers.modules())
    pairs = [(m, mods[i + 1]) for i, m in enumerate(mods[:-1]) if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != len(pairs) or not all(isinstance(bn, torch.nn.BatchNorm2d) for _, bn in pairs):
        fail("--init %s: %d Conv nodes, mnasnet0_75 has %d convolutions: not a mnasnet0_75 backbone"
             % (path, len(convs), len(pairs)))
    biases = []
    for k, (node, (conv, bn)) in enumerate(zip(convs, pairs)):
        if len(node.input) < 3 or node.input[1] not in inits or node.input[2] not in inits:
            fail("--init %s: Conv node %d (%s) has no constant weight and bias: BatchNorm not folded?"
                 % (path, k, node.name))
        w, b = inits[node.input[1]], inits[node.input[2]]
        if tuple(w.shape) != tuple(conv.weight.shape):
            fail("--init %s: Conv node %d weight %s, mnasnet0_75 wants %s (another width?)"
                 % (path, k, tuple(w.shape), tuple(conv.weight.shape)))
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w.copy()))
            bn.running_mean.zero_()
            bn.running_var.fill_(1 - bn.eps)
            bn.weight.fill_(1)
            bn.bias.copy_(torch.from_numpy(b.copy()))
        biases.append(torch.from_numpy(b.copy()))
    # Statistics of each convolution's output, in the folded network (eval mode: exact).
    stats = {}
    hooks = [conv.register_forward_hook(
        lambda m, i, o, k=k: stats.__setitem__(k, (o.mean((0, 2, 3)), o.var((0, 2, 3), unbiased=False))))
        for k, (conv, _) in enumerate(pairs)]
    layers.eval()
    with torch.no_grad():
        layers(x)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for k, (_, bn) in enumerate(pairs):
            mean, var = stats[k]
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.bias.copy_(mean + biases[k])
    return len(pairs)


def fit_classifier(model, x, y, steps=200):
    """Fits model.classifier's Linear on the pooled features of x (eval mode) with L-BFGS,
    so that fine-tuning starts from a classifier that means something rather than from
    random weights that would push the backbone anywhere. Returns training accuracy."""
    import torch
    model.eval()
    with torch.no_grad():
        f = model.layers(x).mean([2, 3])
    lin = model.classifier[-1]
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=steps, line_search_fn="strong_wolfe")
    yt = torch.as_tensor(y)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(f), yt) + 1e-4 * (lin.weight ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    with torch.no_grad():
        return (lin(f).argmax(1) == yt).float().mean().item()


def auc_score(labels, scores):
    """Area under the ROC curve (Mann-Whitney U, ties count half); None with one class."""
    import numpy as np
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    npos, nneg = int((y == 1).sum()), int((y == 0).sum())
    if npos == 0 or nneg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    ss = s[order]
    i = 0
    while i < len(ss):
        j = i
        while j + 1 < len(ss) and ss[j + 1] == ss[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def evaluate(model, loader):
    """Returns (balanced loss, auc, accuracy, n): the loss is the cross-entropy averaged
    within each class, then over the classes present, so a class's share does not move it."""
    import torch
    model.eval()
    losses, labels, scores, preds = [], [], [], []
    with torch.no_grad():
        for x, y in loader:
            logits = forward(model, x)[1]
            losses.append(torch.nn.functional.cross_entropy(logits, y, reduction="none"))
            p = torch.softmax(logits, dim=1)[:, 1]
            labels.append(y)
            scores.append(p)
            preds.append(logits.argmax(1))
    loss = torch.cat(losses)
    y = torch.cat(labels)
    per_class = [loss[y == c].mean().item() for c in range(NUM_CLASSES) if (y == c).any()]
    acc = (torch.cat(preds) == y).float().mean().item()
    return sum(per_class) / len(per_class), auc_score(y.numpy(), torch.cat(scores).numpy()), acc, len(y)


def forward(model, x):
    """(features [N,1280,s,s], logits [N,2]): torchvision MnasNet's forward, keeping the
    features the daemon's head reads."""
    f = model.layers(x)
    return f, model.classifier(f.mean([2, 3]))


def consistency_losses(feats, logits, n_views):
    """Penalties for a sample's views disagreeing, each 0 when they agree: the symmetric
    KL between the views' class distributions (their p_fake), and the mean squared
    difference of their features after standardising each feature over the batch (what
    the head's BatchNorm sees; 1 for unrelated faces). feats, logits: [B*V, ...] with a
    sample's views adjacent."""
    import torch
    B = logits.shape[0] // n_views
    logp = torch.log_softmax(logits, 1).view(B, n_views, -1)
    f = feats.flatten(1)
    sd = f.std(0).detach()
    z = ((f - f.mean(0).detach()) / (sd + 0.1 * sd.mean() + 1e-6)).view(B, n_views, -1)
    kl = feat = 0.0
    pairs = 0
    for a in range(n_views):
        for b in range(a + 1, n_views):
            pa, pb = logp[:, a], logp[:, b]
            kl = kl + 0.5 * ((pa.exp() * (pa - pb)).sum(1) + (pb.exp() * (pb - pa)).sum(1)).mean()
            feat = feat + 0.5 * ((z[:, a] - z[:, b]) ** 2).mean()
            pairs += 1
    return kl / pairs, feat / pairs


def stability(model, images, indices, mean, std, batch=64):
    """How the model's own p_fake moves when a validation crop is mirrored, shifted 2.3 px
    or scaled to 90 %/110 % (faceaug.stability_views). Returns {view: {"flip": share of
    verdicts at 0.5 that change, "median": median |dp|}} for every view but the crop as is."""
    import numpy as np
    import torch
    model.eval()
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    names, scores = None, []
    with torch.no_grad():
        for at in range(0, len(indices), batch):
            views = [faceaug.stability_views(images[i]) for i in indices[at:at + batch]]
            names = [n for n, _ in views[0]]
            arr = np.stack([v for vs in views for _, v in vs])
            x = (torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255) - m) / s
            p = torch.softmax(forward(model, x)[1], 1)[:, 1].view(len(views), len(names))
            scores.append(p.numpy())
    p = np.concatenate(scores)
    return {n: dict(flip=faceaug.flip_rate(p[:, 0], p[:, j]), median=faceaug.median_abs_diff(p[:, 0], p[:, j]))
            for j, n in enumerate(names) if j > 0}


def stability_line(stab, n):
    """stability()'s figures as one log line."""
    return "  changed verdicts (median |dp_fake|) on %d val faces: %s" % (n, "  ".join(
        "%s %.1f%% (%.3f)" % (k, 100 * d["flip"], d["median"]) for k, d in stab.items()))


def lr_at(args, epoch, frac):
    """Learning rate at (0-based epoch + fraction done): cosine to 1% of --lr over
    --epochs, or --gamma every --step-size epochs, or constant."""
    if args.schedule == "cosine":
        t = min(1.0, (epoch + frac) / max(1, args.epochs))
        return args.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))
    if args.schedule == "step":
        return args.lr * args.gamma ** (epoch // args.step_size)
    return args.lr


# ---------------------------------------------------------------- output

def write_text_atomic(path, text):
    export_model.write_bytes_atomic(text.encode("utf-8"), path)


def torch_save_atomic(obj, path):
    import torch
    buf = io.BytesIO()
    torch.save(obj, buf)
    export_model.write_bytes_atomic(buf.getvalue(), path)


class Log:
    def __init__(self, path, append):
        self.f = open(path, "a" if append else "w", encoding="utf-8")

    def __call__(self, line, stdout=True):
        if stdout:
            print(line, flush=True)
        self.f.write(line + "\n")
        self.f.flush()


def plot_history(history, path):
    """The learning curve beside the log: losses, validation AUC and the changed-verdict
    rates per epoch, as a PNG (matplotlib's Agg backend, no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2), dpi=90)
    nan = float("nan")
    ax[0].plot(ep, [nan if h["train_loss"] is None else h["train_loss"] for h in history], "o-",
               label="train (all terms)")
    if any(h.get("train_ce") is not None for h in history):
        ax[0].plot(ep, [h.get("train_ce", nan) for h in history], "o--", label="train cross-entropy")
    ax[0].plot(ep, [h["val_loss"] for h in history], "s-", label="validation (class-balanced)")
    ax[0].set_title("loss")
    ax[1].plot(ep, [h["val_auc"] for h in history], "s-", color="C2")
    ax[1].set_title("validation ROC-AUC")
    for name, style in (("mirror", "o-"), ("shift", "s-"), ("scale90", "v-"), ("scale110", "^-")):
        ys = [100 * h["stability"][name]["flip"] if h.get("stability") else None for h in history]
        if any(y is not None for y in ys):
            ax[2].plot(ep, [nan if y is None else y for y in ys], style, label=name)
    ax[2].set_title("verdicts changed by the view (%, validation)")
    # Where a resumed run changed the consistency weights: a dashed line, labelled.
    prev = None
    for h in history:
        w = (h.get("consistency"), h.get("feature_consistency"))
        if w[0] is not None and prev is not None and w != prev:
            for a in ax:
                a.axvline(h["epoch"] - 0.5, color="grey", ls="--", lw=0.8)
            ax[2].annotate("KL %g, features %g" % w, (h["epoch"] - 0.5, 1), xycoords=("data", "axes fraction"),
                           rotation=90, va="top", ha="right", fontsize=7, color="grey")
        if w[0] is not None:
            prev = w
    for a in ax:
        a.set_xlabel("epoch")
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    export_model.write_bytes_atomic(buf.getvalue(), path)


def fmt_dur(s):
    s = int(round(s))
    return "%dh%02dm" % (s // 3600, s % 3600 // 60) if s >= 3600 else "%dm%02ds" % (s // 60, s % 60)


def export_onnx(model, size, cells, weights_path, out_path):
    """Exports model.layers with tools/export_model.py's to_onnx and metadata; the
    weights label is the one export_model.py --weights weights_path would write."""
    import torch
    model.eval()
    label = "file:%s:%s" % (os.path.basename(weights_path), export_model.sha256_file(weights_path)[:12])
    proto = export_model.to_onnx(model.layers, torch.zeros(1, 3, size, size), "input", "features",
                                 export_model.metadata(size, cells, "backbone", label))
    n, digest = export_model.write_atomic(proto, out_path)
    return n, digest, label


# ---------------------------------------------------------------- main

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="train_backbone.py",
        description=__doc__.split("\n\n")[0],
        epilog="Example: /usr/bin/python3 tools/train_backbone.py --data ../shared/data/dfdc-pretrain "
               "--data ../shared/data/hardfake/train --init ../shared/models/backbone/mnasnet0_75_dfdc.pth "
               "--out build/backbone",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="labelled folder (DIR/labels.csv with path,label,identity, or DIR/real/ and "
                        "DIR/fake/ with identity = file stem); repeat for several")
    g.add_argument("--size", type=int, default=128, help="input side S in pixels (the daemon's input size)")
    g.add_argument("--val", type=float, default=0.15,
                   help="fraction of images for validation, split by identity (0: no validation, "
                        "no early stopping, the last epoch is kept)")
    g.add_argument("--limit", type=int, default=0,
                   help="use a seeded random subset of this many images (smoke tests, timing); 0: all")
    g.add_argument("--balance", choices=("sampler", "loss", "none"), default="sampler",
                   help="class balancing: sampler = weighted random sampler with replacement (each batch "
                        "about half fake); loss = class-weighted cross-entropy over every image once")
    g = p.add_argument_group("augmentation")
    g.add_argument("--aug", choices=sorted(AUG_PRESETS), default="light",
                   help="preset of probabilities: " + "; ".join(
                       "%s: %s" % (k, " ".join("%s=%g" % (n, v[n]) for n in AUG_NAMES))
                       for k, v in sorted(AUG_PRESETS.items())))
    for name, what in (("flip", "a horizontal flip"),
                       ("jitter", "a colour jitter (brightness, contrast, saturation 0.7-1.3, hue +-4%%)"),
                       ("blur", "a Gaussian blur (radius 0.3-1.5 px at 128)"),
                       ("rescale", "downscaling to 35-80%% and back up"),
                       ("jpeg", "a JPEG re-compression at quality 30-95"),
                       ("erase", "erasing a face part (an eye, both eyes, the nose or the mouth)"),
                       ("geo", "a random face box (--max-shift, --max-scale, --max-rotate; mirrored "
                               "with --p-flip), drawn for each view"),
                       ("codec", "an H.264 re-encoding at CRF 23-40 (python3-av), for each view; "
                                 "else --p-jpeg is tried"),
                       ("sbi", "replacing a fake sample by a self-blend of a real training face")):
        g.add_argument("--p-" + name, type=float, default=None, metavar="P",
                       help="probability of %s (overrides --aug)" % what)
    g.add_argument("--max-shift", type=float, default=8.0, metavar="PX",
                   help="with --p-geo: largest shift of the face box, in pixels at 128 px")
    g.add_argument("--max-scale", type=float, default=0.1, help="with --p-geo: scale drawn from 1 +- this")
    g.add_argument("--max-rotate", type=float, default=8.0, metavar="DEG",
                   help="with --p-geo: largest rotation in degrees")
    g.add_argument("--views", type=int, default=1,
                   help="views of each sample in a batch (2: two face boxes and compressions of the "
                        "same face, for the consistency terms); each costs a forward and backward pass")
    g.add_argument("--consistency", type=float, default=1.0,
                   help="with --views 2+: weight of the symmetric KL between the views' p_fake")
    g.add_argument("--feature-consistency", type=float, default=0.5,
                   help="with --views 2+: weight of the squared difference of the views' features "
                        "(the [1280,S/32,S/32] the head reads), each standardised over the batch")
    g = p.add_argument_group("model and optimisation")
    g.add_argument("--init", default=None, metavar="random|imagenet|PATH.pth|PATH.onnx",
                   help="starting weights: a torchvision mnasnet0_75 state_dict (full model or "
                        "features only), a float backbone.onnx this project exported (e.g. "
                        "shipped/backbone.onnx), 'imagenet' (downloads) or 'random' (warned); "
                        "required unless --resume")
    g.add_argument("--calib-images", type=int, default=512, metavar="N",
                   help="with an ONNX --init: training images that restore its BatchNorm statistics "
                        "and fit the starting classifier")
    g.add_argument("--epochs", type=int, default=20, help="total epochs (a resumed run goes on to this)")
    g.add_argument("--batch", type=int, default=32, help="batch size")
    g.add_argument("--lr", type=float, default=3e-4, help="AdamW peak learning rate")
    g.add_argument("--wd", type=float, default=1e-4, help="AdamW weight decay")
    g.add_argument("--schedule", choices=("cosine", "step", "none"), default="cosine",
                   help="learning-rate schedule, per batch: cosine to 1%% of --lr over --epochs")
    g.add_argument("--step-size", type=int, default=5, help="with --schedule step: epochs per step")
    g.add_argument("--gamma", type=float, default=0.3, help="with --schedule step: factor per step")
    g.add_argument("--bn-momentum", type=float, default=0.01,
                   help="BatchNorm running-statistics momentum while training (torchvision's MnasNet "
                        "uses 0.0003, which leaves the statistics of the starting weights nearly "
                        "untouched after an epoch: evaluation would use stale statistics)")
    g.add_argument("--patience", type=int, default=4,
                   help="stop after this many epochs without a lower validation loss (0: never)")
    g = p.add_argument_group("run")
    g.add_argument("--out", required=True, metavar="DIR",
                   help="output folder: backbone.pth, backbone.onnx, checkpoint.pt, metrics.json, training-log.txt")
    g.add_argument("--resume", nargs="?", const="", default=None, metavar="CHECKPOINT",
                   help="continue from CHECKPOINT (default DIR/checkpoint.pt) with its weights, "
                        "optimiser, epoch and best validation loss")
    g.add_argument("--seed", type=int, default=0, help="seed for the split, the sampler, augmentation, dropout")
    g.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    g.add_argument("--workers", type=int, default=0,
                   help="DataLoader worker processes (results do not depend on it)")
    g.add_argument("--epoch-size", type=int, default=0, metavar="N",
                   help="samples per epoch with --balance sampler (0: as many as training images): "
                        "shorter epochs checkpoint, validate and draw the learning curve more often")
    g.add_argument("--stability-images", type=int, default=1000, metavar="N",
                   help="validation faces whose verdicts are scored mirrored, shifted and scaled each epoch")
    g.add_argument("--progress-every", type=float, default=10.0, metavar="SECONDS",
                   help="at most one progress line on stderr this often within an epoch")
    g.add_argument("--no-onnx", action="store_true", help="skip the ONNX export (tests)")
    args = p.parse_args(argv)
    if args.size < 32:
        p.error("--size %d: must be at least 32" % args.size)
    if not 0 <= args.val < 1:
        p.error("--val %g: want 0 <= val < 1" % args.val)
    if args.epochs < 1 or args.batch < 1 or args.lr <= 0:
        p.error("--epochs, --batch and --lr must be positive")
    if not 0 < args.bn_momentum <= 1:
        p.error("--bn-momentum %g: want 0 < m <= 1" % args.bn_momentum)
    if args.step_size < 1:
        p.error("--step-size must be at least 1")
    if args.views < 1 or args.epoch_size < 0 or args.stability_images < 0:
        p.error("--views must be at least 1, --epoch-size and --stability-images at least 0")
    if args.epoch_size and args.balance != "sampler":
        p.error("--epoch-size needs --balance sampler")
    if args.init is None and args.resume is None:
        p.error("--init random|imagenet|PATH.pth is required (or --resume)")
    return args


def data_signature(items):
    h = hashlib.sha256()
    for path, label, ident in items:
        h.update(("%s\t%d\t%s\n" % (os.path.abspath(path), label, ident)).encode())
    return h.hexdigest()


def main(argv=None):
    args = parse_args(argv)
    try:
        import numpy as np
        import torch
        import torchvision  # noqa: F401
    except ImportError as e:
        fail("%s: install python3-torch, python3-torchvision, python3-numpy and run with /usr/bin/python3" % e)
    t_start = time.time()
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0
    if threads > 1 and load > (os.cpu_count() or 1) - 0.5:
        warn("the machine is busy (load average %.1f on %d cores): %d torch threads wait on each other "
             "and can run several times slower than --threads 1" % (load, os.cpu_count() or 1, threads))
    os.makedirs(args.out, exist_ok=True)

    ckpt = None
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    if args.resume is not None:
        rpath = args.resume or ckpt_path
        if not os.path.isfile(rpath):
            fail("--resume: no checkpoint %s" % rpath)
        try:
            ckpt = torch.load(rpath, map_location="cpu")
        except Exception as e:
            fail("--resume: cannot read checkpoint %s: %s" % (rpath, e))
        if not isinstance(ckpt, dict) or "optimizer" not in ckpt or "epoch" not in ckpt:
            fail("--resume: %s is not a checkpoint written by train_backbone.py" % rpath)
        saved = ckpt["args"]
        for k in ("size", "val", "seed", "limit"):
            if getattr(args, k) != saved[k]:
                fail("--resume: --%s %s differs from the checkpoint's %s (the data split would change)"
                     % (k, getattr(args, k), saved[k]))

    log = Log(os.path.join(args.out, "training-log.txt"), append=ckpt is not None)
    log("=" * 78, stdout=False)
    log("%s %s" % (time.strftime("%Y-%m-%d %H:%M:%S"), "resumed" if ckpt else "started"), stdout=False)
    log("command: cd %s && %s %s" % (shlex.quote(os.getcwd()), shlex.quote(sys.executable),
                                     " ".join(shlex.quote(a) for a in [sys.argv[0]] + list(
                                         sys.argv[1:] if argv is None else argv))), stdout=False)
    log("seed %d, threads %d, workers %d, torch %s, torchvision %s, image reader %s" % (
        args.seed, threads, args.workers, torch.__version__, torchvision.__version__,
        "OpenCV " + _cv2().__version__ if _cv2() else "PIL"), stdout=False)

    # Data.
    try:
        items = []
        for d in args.data:
            got = list_folder(d)
            log("data %s: %d images (%d real, %d fake), %d identities" % (
                d, len(got), sum(1 for g in got if g[1] == 0), sum(1 for g in got if g[1] == 1),
                len({g[2] for g in got})))
            items.extend(got)
    except DataError as e:
        fail(str(e))
    if args.limit and args.limit < len(items):
        rng = random.Random("limit-%d" % args.seed)
        items = [items[i] for i in sorted(rng.sample(range(len(items)), args.limit))]
        log("--limit %d: a seeded random subset" % args.limit)
    t0 = time.time()
    images, items, bad = load_images(items, args.size)
    log("read %d images at %dx%d in %.1fs (%.0f MB in memory), %d unreadable skipped" % (
        len(items), args.size, args.size, time.time() - t0, images.nbytes / 1e6, len(bad)))
    if not items:
        fail("no readable images in %s" % ", ".join(args.data))
    labels = np.array([it[1] for it in items], dtype=np.int64)
    for c, name in enumerate(export_model.CLASS_NAMES):
        if not (labels == c).any():
            fail("no %s images in %s: training needs both classes" % (name, ", ".join(args.data)))
    sig = data_signature(items)
    if ckpt is not None and ckpt.get("data_sha256") != sig:
        fail("--resume: the images (or their labels/identities) differ from the checkpoint's run")

    train_idx, val_idx = grouped_split(items, args.val, args.seed)
    ids_t = {items[i][2] for i in train_idx}
    ids_v = {items[i][2] for i in val_idx}
    assert not ids_t & ids_v
    for name, idx, ids in (("train", train_idx, ids_t), ("val", val_idx, ids_v)):
        nf = int(labels[idx].sum()) if idx else 0
        log("%s: %d images (%d real, %d fake), %d identities" % (name, len(idx), len(idx) - nf, nf, len(ids)))
    if not train_idx:
        fail("the split left nothing to train on: lower --val")
    if args.val > 0 and (not val_idx or len(set(labels[val_idx].tolist())) < 2):
        warn("the validation set lacks a class: its AUC is undefined; raise --val or add data")

    probs = resolve_aug(args)
    if probs["codec"] > 0:
        why = faceaug.codec_available()
        if why:
            fail("--p-codec %g: cannot re-encode video: %s" % (probs["codec"], why))
    geo = (args.max_shift, args.max_scale, args.max_rotate)
    sbi_pool = [i for i in train_idx if labels[i] == 0] if probs["sbi"] > 0 else []
    log("augmentation: %s (%s); geometry: shift +-%g px at 128, scale 1+-%g, rotation +-%g deg; "
        "self-blends from %d real training faces; balancing: %s" % (
            args.aug, " ".join("%s=%g" % (n, probs[n]) for n in AUG_NAMES), geo[0], geo[1], geo[2],
            len(sbi_pool), args.balance))
    log("views per sample: %d; consistency weights: p_fake symmetric KL %g, standardised features %g"
        % (args.views, args.consistency, args.feature_consistency))

    # Model.
    if ckpt is not None:
        model = torchvision.models.mnasnet0_75(weights=None)
        model.classifier = torch.nn.Sequential(torch.nn.Dropout(p=0.2, inplace=True),
                                               torch.nn.Linear(export_model.FEATURE_CHANNELS, NUM_CLASSES))
        model.load_state_dict(ckpt["model"])
        cells = export_model.feature_cells(model.layers, args.size)
        init_label = ckpt["init_label"]
        log("resumed from %s after epoch %d (best val loss %s at epoch %s); init was %s" % (
            args.resume or ckpt_path, ckpt["epoch"],
            "n/a" if ckpt["best_val_loss"] is None else "%.4f" % ckpt["best_val_loss"],
            ckpt["best_epoch"], init_label))
        if args.init is not None:
            log("--init %s ignored: the weights come from the checkpoint" % args.init)
    else:
        calib = None
        if args.init.lower().endswith(".onnx"):
            rng = random.Random("calib-%d" % args.seed)
            pick = sorted(rng.sample(train_idx, min(len(train_idx), args.calib_images)))
            probe = FaceSet(images, labels, pick, None, args.seed, export_model.MEAN, export_model.STD)
            calib = (torch.stack([probe[k][0] for k in range(len(pick))]), labels[pick])
        model, init_label, report, cells = build_model(args.init, args.seed, args.size, calib)
        for line in report:
            log(line)
    log("model: mnasnet0_75 + Dropout(0.2) + Linear(1280, 2); features %dx%dx%d at %dpx; "
        "AdamW lr %g wd %g, %s schedule, batch %d, BatchNorm momentum %g" % (
            export_model.FEATURE_CHANNELS, cells, cells, args.size, args.lr, args.wd, args.schedule,
            args.batch, args.bn_momentum))

    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = args.bn_momentum
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.wd)
    start_epoch, best_loss, best_epoch, since_best, history = 0, None, None, 0, []
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch = ckpt["epoch"]
        best_loss, best_epoch, since_best = ckpt["best_val_loss"], ckpt["best_epoch"], ckpt["since_best"]
        history = ckpt["history"]
        rs = ckpt["rng"]
        torch.set_rng_state(rs["torch"])
        np.random.set_state(rs["numpy"])
        random.setstate(rs["python"])

    class_counts = np.bincount(labels[train_idx], minlength=NUM_CLASSES)
    train_set = FaceSet(images, labels, train_idx, probs, args.seed, export_model.MEAN, export_model.STD,
                        views=args.views, geo=geo, sbi_pool=sbi_pool)
    # A fixed seeded subset of validation faces for the stability figures.
    stab_idx = sorted(random.Random("stab-%d" % args.seed).sample(val_idx, min(len(val_idx), args.stability_images)))
    val_set = FaceSet(images, labels, val_idx, None, args.seed, export_model.MEAN, export_model.STD)
    loss_weight = None
    if args.balance == "loss":
        loss_weight = torch.tensor(len(train_idx) / (NUM_CLASSES * np.maximum(class_counts, 1)),
                                   dtype=torch.float32)
    sample_w = (1.0 / np.maximum(class_counts, 1))[labels[train_idx]]
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=max(args.batch, 64), shuffle=False,
                                             num_workers=args.workers) if val_idx else None

    def loader_for(epoch):
        g = torch.Generator()
        g.manual_seed(args.seed * 100003 + epoch)
        if args.balance == "sampler":
            sampler = torch.utils.data.WeightedRandomSampler(
                torch.as_tensor(sample_w, dtype=torch.double), args.epoch_size or len(train_idx),
                replacement=True, generator=g)
            return torch.utils.data.DataLoader(train_set, batch_size=args.batch, sampler=sampler,
                                               num_workers=args.workers, drop_last=len(train_idx) > args.batch)
        return torch.utils.data.DataLoader(train_set, batch_size=args.batch, shuffle=True, generator=g,
                                           num_workers=args.workers, drop_last=len(train_idx) > args.batch)

    if since_best >= args.patience > 0 and start_epoch > 0:
        log("early stopping was reached at epoch %d (no lower val loss for %d epochs): nothing to train"
            % (start_epoch, since_best))
    if start_epoch == 0 and val_loader is not None and not history:
        # Epoch 0: where the starting weights stand, the first point of the learning curve.
        t0 = time.time()
        v_loss, v_auc, v_acc, _ = evaluate(model, val_loader)
        stab = stability(model, images, stab_idx, export_model.MEAN, export_model.STD) if stab_idx else {}
        history.append(dict(epoch=0, train_loss=None, val_loss=round(v_loss, 6),
                            val_auc=None if v_auc is None else round(v_auc, 6), val_acc=round(v_acc, 6),
                            stability={k: {m: round(v, 6) for m, v in d.items()} for k, d in stab.items()},
                            seconds=round(time.time() - t0, 2), best=False))
        log("epoch 0 (the starting weights)  val_loss %.4f  val_auc %s  val_acc %.4f" % (
            v_loss, "n/a" if v_auc is None else "%.4f" % v_auc, v_acc))
        if stab:
            log(stability_line(stab, len(stab_idx)))
    epoch = start_epoch
    while epoch < args.epochs and not (args.patience > 0 and since_best >= args.patience and val_idx):
        # Per-epoch seeds: a resumed run draws what an uninterrupted one would.
        torch.manual_seed(args.seed * 1000003 + epoch)
        train_set.epoch = epoch
        loader = loader_for(epoch)
        nb = len(loader)
        model.train()
        t0 = last = time.time()
        seen, total_loss, total_ce, total_kl, total_feat = 0, 0.0, 0.0, 0.0, 0.0
        for b, (x, y) in enumerate(loader):
            lr = lr_at(args, epoch, b / nb)
            for grp in optimizer.param_groups:
                grp["lr"] = lr
            if args.views > 1:  # [B,V,3,S,S]: a sample's views adjacent
                x = x.flatten(0, 1)
                y_all = y.repeat_interleave(args.views)
            else:
                y_all = y
            feats, logits = forward(model, x)
            ce = torch.nn.functional.cross_entropy(logits, y_all, weight=loss_weight)
            loss = ce
            if args.views > 1:
                kl, feat = consistency_losses(feats, logits, args.views)
                loss = ce + args.consistency * kl + args.feature_consistency * feat
                total_kl += kl.item() * len(y)
                total_feat += feat.item() * len(y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if not math.isfinite(loss.item()):
                fail("epoch %d batch %d: the loss is %s: lower --lr" % (epoch + 1, b + 1, loss.item()), code=1)
            total_loss += loss.item() * len(y)
            total_ce += ce.item() * len(y)
            seen += len(y)
            now = time.time()
            if now - last >= args.progress_every and b + 1 < nb:
                last = now
                rate = seen / (now - t0)
                print("  epoch %d batch %d/%d  loss %.4f (ce %.4f kl %.4f feat %.4f)  %.1f samples/s  ETA %s" % (
                    epoch + 1, b + 1, nb, total_loss / seen, total_ce / seen, total_kl / seen,
                    total_feat / seen, rate, fmt_dur((nb - b - 1) * args.batch / rate)),
                    file=sys.stderr, flush=True)
        train_secs = time.time() - t0
        train_loss = total_loss / max(1, seen)
        if val_loader is not None:
            val_loss, val_auc, val_acc, _ = evaluate(model, val_loader)
            stab = stability(model, images, stab_idx, export_model.MEAN, export_model.STD) if stab_idx else {}
        else:
            val_loss = val_auc = val_acc = None
            stab = {}
        secs = time.time() - t0
        epoch += 1
        improved = val_loss is None or best_loss is None or val_loss < best_loss
        if improved:
            best_loss, best_epoch, since_best = val_loss, epoch, 0
            torch_save_atomic(model.state_dict(), os.path.join(args.out, "backbone.pth"))
        else:
            since_best += 1
        rec = dict(epoch=epoch, train_loss=round(train_loss, 6),
                   val_loss=None if val_loss is None else round(val_loss, 6),
                   val_auc=None if val_auc is None else round(val_auc, 6),
                   val_acc=None if val_acc is None else round(val_acc, 6),
                   train_ce=round(total_ce / max(1, seen), 6), train_kl=round(total_kl / max(1, seen), 6),
                   train_feat=round(total_feat / max(1, seen), 6),
                   consistency=args.consistency, feature_consistency=args.feature_consistency,
                   stability={k: {m: round(v, 6) for m, v in d.items()} for k, d in stab.items()},
                   lr=lr, images_per_s=round(seen / train_secs, 2), seconds=round(secs, 2), best=improved)
        history.append(rec)
        # Every epoch's weights: a release may pick an epoch on figures the log cannot
        # measure (the daemon's own head, INT8).
        torch_save_atomic(model.state_dict(), os.path.join(args.out, "epoch-%03d.pth" % epoch))

        def f(v):
            return "n/a" if v is None else "%.4f" % v
        log("epoch %d/%d  train_loss %.4f  val_loss %s  val_auc %s  val_acc %s  lr %.2e  %.1f samples/s  %.1fs%s" % (
            epoch, args.epochs, train_loss, f(val_loss), f(val_auc), f(val_acc), lr, seen / train_secs,
            secs, "  [best]" if improved else ""))
        if stab:
            log(stability_line(stab, len(stab_idx)))
        torch_save_atomic(dict(
            model=model.state_dict(), optimizer=optimizer.state_dict(), epoch=epoch,
            best_val_loss=best_loss, best_epoch=best_epoch, since_best=since_best, history=history,
            rng=dict(torch=torch.get_rng_state(), numpy=np.random.get_state(), python=random.getstate()),
            args=vars(args), init_label=init_label, data_sha256=sig), ckpt_path)
        write_text_atomic(os.path.join(args.out, "metrics.json"), json.dumps(dict(
            epochs=history, best_epoch=best_epoch, best_val_loss=best_loss, size=args.size,
            seed=args.seed, init=init_label, data=args.data, train_images=len(train_idx),
            val_images=len(val_idx)), indent=1) + "\n")
        if val_idx:
            plot_history(history, os.path.join(args.out, "learning-curve.png"))
        if args.patience > 0 and since_best >= args.patience and val_idx:
            log("early stop: no lower val loss for %d epochs (best %.4f at epoch %d)" % (
                since_best, best_loss, best_epoch))

    best_pth = os.path.join(args.out, "backbone.pth")
    if not os.path.isfile(best_pth):
        fail("no backbone.pth in %s: no epoch was trained" % args.out, code=1)
    log("best: epoch %d, %s -> %s" % (
        best_epoch, "no validation: the last epoch" if best_loss is None else "val loss %.4f" % best_loss,
        best_pth))
    if not args.no_onnx:
        model.load_state_dict(torch.load(best_pth, map_location="cpu"))
        n, digest, label = export_onnx(model, args.size, cells, best_pth, os.path.join(args.out, "backbone.onnx"))
        log("wrote %s (%.1f MB, sha256 %s, weights %s)" % (
            os.path.join(args.out, "backbone.onnx"), n / 1e6, digest[:12], label))
    log("done in %s" % fmt_dur(time.time() - t_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
