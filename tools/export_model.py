#!/usr/bin/python3
"""Export torchvision's MnasNet 0.75 as the two ONNX files deepfaked loads.

backbone.onnx: model.layers, input `input` [N,3,S,S] (ImageNet-normalised RGB),
output `features` [N,1280,ceil(S/32),ceil(S/32)]; with --pool followed by the
global average MnasNet's own classifier reads, output [N,1280,1,1]; with
--prune-quiet the channels that barely vary over --calib are exact zeros.
head.onnx: Flatten, BatchNorm1d, Dropout(0.5), Linear(..., 2) in eval mode,
input `features`, output `logits` [N,2]; softmax column 1 is p_fake. Seeded random
unless --head classifier takes the classifier trained with a pooled backbone.

Both carry deepfaked.* metadata_props that the Go side checks at load time.
Run with Debian's /usr/bin/python3 (python3-torch, python3-torchvision, python3-onnx).
"""

import argparse
import hashlib
import io
import os
import sys
import tempfile
import time

FORMAT_VERSION = "1"
FEATURE_CHANNELS = 1280
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CLASS_NAMES = ("real", "fake")
OPSET = 13

RANDOM_WARNING = """
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! WARNING: exporting a RANDOMLY INITIALISED backbone (--weights random).  !!
!! These models load and run, but their verdicts MEAN NOTHING.             !!
!! Use --weights imagenet (online) or --weights PATH.pth, then train the   !!
!! head, before trusting any real/fake verdict.                            !!
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
"""



def random_mnasnet(seed, size=128):
    """A seeded, randomly initialised mnasnet0_75 whose BatchNorm statistics are
    calibrated on random batches: fresh statistics (mean 0, var 1) in eval mode
    map every input to nearly the same features, so verdicts would not even
    vary from face to face."""
    import torch
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.mnasnet0_75(weights=None)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.2)
            m.momentum = None  # cumulative average over the calibration batches
            m.reset_running_stats()
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(8, 3, size, size))
    model.eval()
    return model

def fail(msg):
    print("export_model: error: " + msg, file=sys.stderr)
    sys.exit(1)


def progress(msg):
    print(msg, file=sys.stderr, flush=True)


def import_torch():
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
        import onnx  # noqa: F401
    except ImportError as e:
        fail("%s: install python3-torch, python3-torchvision and python3-onnx (run `make deps`) "
             "and run this script with /usr/bin/python3" % e)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_state_dict(path):
    """Reads a mnasnet0_75 state_dict, or a checkpoint dict holding one."""
    import torch
    try:
        obj = torch.load(path, map_location="cpu")
    except Exception as e:  # torch raises many kinds for a bad file
        fail("cannot read weights file %s: %s" % (path, e))
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        fail("weights file %s holds a %s, not a state_dict" % (path, type(obj).__name__))
    for key in ("state_dict", "model"):
        if key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    # Checkpoints saved from DataParallel prefix every key with "module.".
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def pooled(layers):
    """layers followed by a global average over the feature map: [N,1280,1,1], what
    MnasNet's classifier reads. Exported as GlobalAveragePool. A head on pooled
    features does not depend on where in the crop a feature fired, so a face boxed
    a little differently gets the same verdict (a head on the 4x4 map reads each
    cell with its own weights)."""
    import torch
    return torch.nn.Sequential(layers, torch.nn.AdaptiveAvgPool2d(1))


def prune_quiet(backbone, images, frac, batch=64):
    """Zeroes the feature channels that barely vary: those whose standard deviation
    over images ([N,3,S,S] floats, preprocessed as the daemon does) is below frac
    times the median of the channels that vary at all. Their last BatchNorm gets
    weight 0 and bias -1, so the ReLU after it outputs exactly 0 in float and in
    INT8 alike. Why: after ReLU many MnasNet channels are almost dead (values
    around 1e-3 where a typical channel spreads 0.5); a head's BatchNorm scales
    each channel to unit variance, so it multiplies their INT8 rounding error by
    hundreds. On release 2's candidates these channels made the INT8 model's
    logits move by 1.2 on average while the others moved them by 0.04. Returns
    (zeroed, never_varying, threshold): zeroed counts the channels that never
    vary too (constants a head's BatchNorm subtracts anyway)."""
    import torch
    bn = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not bn:
        fail("--prune-quiet: the backbone has no BatchNorm2d to prune through")
    last = bn[-1]
    backbone.eval()
    total = sq = None
    count = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            f = backbone(images[i:i + batch]).double()  # [n, C, H, W]
            f = f.transpose(0, 1).reshape(f.shape[1], -1)
            total = f.sum(1) if total is None else total + f.sum(1)
            sq = (f * f).sum(1) if sq is None else sq + (f * f).sum(1)
            count += f.shape[1]
    mean = total / count
    sd = (sq / count - mean * mean).clamp(min=0).sqrt()
    varying = sd > 0
    if not bool(varying.any()):
        fail("--prune-quiet: no feature channel varies over the calibration images")
    threshold = float(frac * sd[varying].median())
    quiet = sd < threshold
    with torch.no_grad():
        last.weight[quiet] = 0
        last.bias[quiet] = -1
    return int(quiet.sum()), int((~varying).sum()), threshold


def calibration_images(folder, size, limit):
    """Up to limit images of a labelled folder (train_backbone.py's layout), spread
    over it, as normalised [N,3,S,S] floats."""
    import numpy as np
    import torch
    import train_backbone  # imported here: train_backbone imports this module
    try:
        items = train_backbone.list_folder(folder)
    except train_backbone.DataError as e:
        fail("--calib: %s" % e)
    if len(items) > limit:
        items = [items[i * len(items) // limit] for i in range(limit)]
    images, _, _ = train_backbone.load_images(items, size)
    if len(images) == 0:
        fail("--calib %s: no readable image" % folder)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def build_models(weights, seed, size, pool=False, head_from="random"):
    """Returns (backbone, head, weights_label, feature_cells), modules in eval mode.
    pool: the backbone ends with a global average (feature_cells 1). head_from:
    "random" (seeded), or "classifier": the 2-class classifier in the weights file."""
    import torch
    import torchvision

    if size < 32:
        fail("--size %d: must be at least 32 pixels (e.g. 128, 224, 400)" % size)
    if size % 32:
        progress("note: --size %d is not a multiple of 32; the last feature cells see padding" % size)
    torch.manual_seed(seed)
    if weights == "random":
        model = random_mnasnet(seed)
        label = "random:seed=%d" % seed
    elif weights == "imagenet":
        progress("downloading ImageNet weights for mnasnet0_75 (torchvision)…")
        try:
            model = torchvision.models.mnasnet0_75(
                weights=torchvision.models.MNASNet0_75_Weights.IMAGENET1K_V1)
        except Exception as e:
            fail("could not download torchvision's ImageNet weights for mnasnet0_75 (%s). "
                 "Offline? Copy the .pth from a machine that is online and pass "
                 "--weights PATH.pth" % e)
        label = "imagenet"
    else:
        if not os.path.isfile(weights):
            fail("--weights %s: not 'random', 'imagenet' or an existing .pth file" % weights)
        sd = load_state_dict(weights)
        model = torchvision.models.mnasnet0_75(weights=None)
        # Only model.layers is exported, so a classifier trained for another class count
        # (e.g. 2 instead of ImageNet's 1000) is fine; everything else must match exactly.
        layers = {k[len("layers."):]: v for k, v in sd.items() if k.startswith("layers.")}
        stray = sorted(k for k in sd if not k.startswith(("layers.", "classifier.")))
        if not layers or stray:
            fail("weights file %s is not a torchvision mnasnet0_75 state_dict: %s" % (
                weights, "no 'layers.*' keys" if not layers else
                "unexpected keys %s" % ", ".join(stray[:5])))
        try:
            model.layers.load_state_dict(layers, strict=True)
        except RuntimeError as e:
            fail("weights file %s is not a torchvision mnasnet0_75 state_dict "
                 "(wrong width multiplier?):\n%s" % (weights, e))
        label = "file:%s:%s" % (os.path.basename(weights), sha256_file(weights)[:12])

    backbone = pooled(model.layers) if pool else model.layers
    cells = feature_cells(backbone, size)
    # The head is seeded on its own so that it does not depend on the backbone's source.
    torch.manual_seed(seed)
    head = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.BatchNorm1d(FEATURE_CHANNELS * cells * cells),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(FEATURE_CHANNELS * cells * cells, len(CLASS_NAMES)),
    )
    if head_from == "classifier":
        cls = {k[len("classifier.1."):]: v for k, v in sd.items() if k.startswith("classifier.1.")} \
            if weights not in ("random", "imagenet") else {}
        if not pool:
            fail("--head classifier needs --pool: the classifier reads the pooled features")
        if not cls or tuple(cls["weight"].shape) != (len(CLASS_NAMES), FEATURE_CHANNELS):
            fail("--head classifier: %s has no 2-class classifier (classifier.1.weight [2,%d]); "
                 "train_backbone.py's epoch-NNN.pth and backbone.pth have one" % (weights, FEATURE_CHANNELS))
        # The classifier trained with the backbone reads the same pooled features: it is
        # the head, behind a BatchNorm that changes nothing.
        bn, lin = head[1], head[3]
        with torch.no_grad():
            bn.running_mean.zero_()
            bn.running_var.fill_(1 - bn.eps)
            bn.weight.fill_(1)
            bn.bias.zero_()
            lin.weight.copy_(cls["weight"])
            lin.bias.copy_(cls["bias"])
    head.eval()
    return backbone, head, label, cells


def feature_cells(backbone, size):
    """Runs the backbone once: its feature map is ceil(size/32) square for MnasNet (1
    when pooled)."""
    import torch
    backbone.eval()
    with torch.no_grad():
        shape = backbone(torch.zeros(1, 3, size, size)).shape
    if shape[1] != FEATURE_CHANNELS or shape[2] != shape[3]:
        fail("backbone gives features %s, want [1,%d,H,H]" % (list(shape), FEATURE_CHANNELS))
    return shape[2]


def metadata(size, cells, role, weights_label):
    return {
        "deepfaked.format_version": FORMAT_VERSION,
        "deepfaked.role": role,
        "deepfaked.input_size": str(size),
        "deepfaked.mean": ",".join(str(v) for v in MEAN),
        "deepfaked.std": ",".join(str(v) for v in STD),
        "deepfaked.color_order": "RGB",
        "deepfaked.class_names": ",".join(CLASS_NAMES),
        "deepfaked.feature_shape": "%d,%d,%d" % (FEATURE_CHANNELS, cells, cells),
        "deepfaked.weights": weights_label,
    }


def to_onnx(module, example, input_name, output_name, props):
    """Exports module and returns the checked onnx.ModelProto with props attached."""
    import onnx
    import torch

    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module, example, buf,
            input_names=[input_name], output_names=[output_name],
            dynamic_axes={input_name: {0: "N"}, output_name: {0: "N"}},
            opset_version=OPSET, do_constant_folding=True)
    proto = onnx.load_from_string(buf.getvalue())
    del proto.metadata_props[:]
    for k, v in sorted(props.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "deepfaked tools/export_model.py"
    onnx.checker.check_model(proto)
    return proto


def write_atomic(proto, path):
    """Writes proto to path via a temp file in the same folder, so readers never see half a file."""
    return write_bytes_atomic(proto.SerializeToString(), path)


def write_bytes_atomic(data, path):
    """Writes data to path via a synced temp file renamed over it: a reader or a
    power cut sees the old file or the new one. Returns its length and sha256."""
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp",
                               dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; models are meant to be world-readable like any other output.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return len(data), hashlib.sha256(data).hexdigest()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default="random",
                   help="'random' (seeded; verdicts mean nothing), 'imagenet' (downloads), "
                        "or a torchvision mnasnet0_75 state_dict .pth")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights and the head")
    p.add_argument("--size", type=int, default=128,
                   help="input side S in pixels, best a multiple of 32 (features are ceil(S/32) square)")
    p.add_argument("--pool", action="store_true",
                   help="end the backbone with a global average: features [N,1280,1,1], "
                        "the head reads 1280 values (as release 2 ships)")
    p.add_argument("--head", choices=("random", "classifier"), default="random",
                   help="head.onnx: a seeded random head (train it with `deepfaked train`), or with "
                        "--pool the 2-class classifier trained with the backbone (train_backbone.py's "
                        ".pth files hold it)")
    p.add_argument("--prune-quiet", type=float, default=0, metavar="FRAC",
                   help="zero the feature channels whose spread over --calib is below FRAC times the "
                        "median channel's (0: keep all; release 2 uses 0.2): exact zeros in float and "
                        "INT8, so a head cannot amplify their rounding error")
    p.add_argument("--calib", metavar="DIR", help="labelled face crops for --prune-quiet")
    p.add_argument("--calib-max", type=int, default=600, help="most --calib images, spread over the folder")
    p.add_argument("--out", default="models", help="output folder")
    args = p.parse_args(argv)
    if args.prune_quiet and not args.calib:
        fail("--prune-quiet needs --calib DIR (the images whose feature spread decides)")
    if not 0 <= args.prune_quiet < 1:
        fail("--prune-quiet %g: want a fraction from 0 to below 1" % args.prune_quiet)

    import_torch()
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    if args.weights == "random":
        sys.stderr.write(RANDOM_WARNING)
    t0 = time.time()
    progress("building mnasnet0_75 (weights: %s, size %d)…" % (args.weights, args.size))
    backbone, head, label, cells = build_models(args.weights, args.seed, args.size, args.pool, args.head)
    props = metadata(args.size, cells, "backbone", label)
    if args.prune_quiet:
        images = calibration_images(args.calib, args.size, args.calib_max)
        zeroed, constant, thr = prune_quiet(backbone, images, args.prune_quiet)
        progress("zeroed %d of %d feature channels on %d images of %s: %d never vary, %d spread less "
                 "than %.4g" % (zeroed, FEATURE_CHANNELS, len(images), args.calib, constant,
                                zeroed - constant, thr))
        props["deepfaked.zeroed_channels"] = str(zeroed)
    os.makedirs(args.out, exist_ok=True)

    progress("exporting backbone…")
    bb = to_onnx(backbone, torch.zeros(1, 3, args.size, args.size), "input", "features", props)
    progress("exporting head…")
    hd = to_onnx(head, torch.zeros(1, FEATURE_CHANNELS, cells, cells), "features", "logits",
                 metadata(args.size, cells, "head", label))

    for name, proto in (("backbone.onnx", bb), ("head.onnx", hd)):
        path = os.path.join(args.out, name)
        n, digest = write_atomic(proto, path)
        print("wrote %s (%.1f MB, sha256 %s)" % (path, n / 1e6, digest[:12]))
    progress("done in %.1fs (weights %s)" % (time.time() - t0, label))
    if args.weights == "random":
        sys.stderr.write(RANDOM_WARNING)


if __name__ == "__main__":
    main()
