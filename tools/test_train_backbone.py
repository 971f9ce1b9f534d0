#!/usr/bin/python3
"""Tests for tools/train_backbone.py on tiny synthetic folders (about 30 s of CPU).

Run from the repository root with Debian's Python:
    /usr/bin/python3 -m unittest tools.test_train_backbone
    /usr/bin/python3 tools/test_train_backbone.py
"""

import contextlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faceaug  # noqa: E402
import train_backbone as tb  # noqa: E402


def make_image(path, label, ident, k, size=48):
    """A face-ish synthetic picture: fakes are warmer and smoother than reals."""
    from PIL import Image, ImageDraw
    rng = random.Random("%s-%d" % (ident, k))
    base = (170, 120, 100) if label else (120, 130, 150)
    im = Image.new("RGB", (size, size), tuple(c + rng.randint(-20, 20) for c in base))
    d = ImageDraw.Draw(im)
    for _ in range(6 if label else 20):
        x, y = rng.randint(0, size - 4), rng.randint(0, size - 4)
        d.rectangle((x, y, x + 3, y + 3), fill=tuple(rng.randint(0, 255) for _ in range(3)))
    im.save(path, quality=90)


def make_csv_folder(root, ids_per_class=2, per_id=4):
    """root/labels.csv + root/img/*.jpg: ids_per_class identities per class."""
    os.makedirs(os.path.join(root, "img"), exist_ok=True)
    rows = ["path,label,identity"]
    for label, name in ((0, "real"), (1, "fake")):
        for j in range(ids_per_class):
            ident = "%s_id%d" % (name, j)
            for k in range(per_id):
                rel = "img/%s_%d.jpg" % (ident, k)
                make_image(os.path.join(root, rel), label, ident, k)
                rows.append("%s,%s,%s" % (rel, name if k % 2 else str(label), ident))
    with open(os.path.join(root, "labels.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    return root


def read(path):
    with open(path) as f:
        return f.read()


def run_main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = tb.main(argv)
    return rc, out.getvalue(), err.getvalue()


class DataTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tb-test-")

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def test_grouped_split_never_shares_identity(self):
        rng = random.Random(1)
        items = []
        for i in range(300):
            ident = "v%d" % rng.randint(0, 120)
            items.append(("x/%d.jpg" % i, rng.randint(0, 1), ident))
        for seed in range(5):
            tr, va = tb.grouped_split(items, 0.15, seed)
            self.assertEqual(sorted(tr + va), list(range(len(items))))
            self.assertFalse({items[i][2] for i in tr} & {items[i][2] for i in va})
            self.assertGreater(len(va), 0.08 * len(items))
            self.assertLess(len(va), 0.25 * len(items))
            self.assertEqual({items[i][1] for i in va}, {0, 1})
        self.assertEqual(tb.grouped_split(items, 0.15, 3), tb.grouped_split(items, 0.15, 3))
        self.assertNotEqual(tb.grouped_split(items, 0.15, 3), tb.grouped_split(items, 0.15, 4))

    def test_labels_csv_layout(self):
        d = make_csv_folder(os.path.join(self.tmp, "csv"))
        items = tb.list_folder(d)
        self.assertEqual(len(items), 16)
        self.assertEqual(sum(it[1] for it in items), 8)
        self.assertEqual(len({it[2] for it in items}), 4)
        self.assertTrue(all(os.path.isfile(it[0]) for it in items))

    def test_real_fake_layout(self):
        d = os.path.join(self.tmp, "rf")
        for label, name in ((0, "real"), (1, "fake")):
            os.makedirs(os.path.join(d, name))
            for k in range(3):
                make_image(os.path.join(d, name, "%s%d.jpg" % (name, k)), label, name, k)
        open(os.path.join(d, "real", "notes.txt"), "w").close()
        items = tb.list_folder(d)
        self.assertEqual(len(items), 6)
        self.assertEqual(sorted(it[2] for it in items if it[1] == 1), ["fake0", "fake1", "fake2"])

    def test_bad_label_names_the_row(self):
        d = os.path.join(self.tmp, "bad")
        os.makedirs(d)
        with open(os.path.join(d, "labels.csv"), "w") as f:
            f.write("path,label,identity\na.jpg,real,a\nb.jpg,maybe,b\n")
        with self.assertRaises(tb.DataError) as cm:
            tb.list_folder(d)
        self.assertIn("labels.csv row 3", str(cm.exception))
        self.assertIn("maybe", str(cm.exception))

    def test_folder_without_layout_is_refused(self):
        d = os.path.join(self.tmp, "empty")
        os.makedirs(d)
        with self.assertRaises(tb.DataError) as cm:
            tb.list_folder(d)
        self.assertIn(d, str(cm.exception))
        self.assertIn("labels.csv", str(cm.exception))

    def test_unreadable_images_are_skipped_and_counted(self):
        d = make_csv_folder(os.path.join(self.tmp, "csv"), ids_per_class=1, per_id=2)
        items = tb.list_folder(d)
        with open(items[0][0], "wb") as f:
            f.write(b"not a jpeg")
        items.append((os.path.join(d, "img", "missing.jpg"), 0, "m"))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            images, kept, bad = tb.load_images(items, 32)
        self.assertEqual(images.shape, (3, 32, 32, 3))
        self.assertEqual(len(kept), 3)
        self.assertEqual(len(bad), 2)
        self.assertIn("skipped 2 unreadable", err.getvalue())
        self.assertIn("missing.jpg", err.getvalue())

    def test_auc(self):
        self.assertEqual(tb.auc_score([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]), 1.0)
        self.assertEqual(tb.auc_score([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]), 0.0)
        self.assertEqual(tb.auc_score([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]), 0.5)
        self.assertAlmostEqual(tb.auc_score([0, 0, 1, 1, 1], [0.1, 0.4, 0.35, 0.8, 0.4]), 4.5 / 6)
        self.assertIsNone(tb.auc_score([1, 1], [0.2, 0.3]))

    def test_augment_keeps_shape_and_is_seeded(self):
        import numpy as np
        img = (np.random.RandomState(0).rand(64, 64, 3) * 255).astype(np.uint8)
        for preset in ("strong", "invariant"):
            probs = dict(tb.AUG_PRESETS[preset], erase=1.0, jpeg=1.0)
            a = tb.augment(img, probs, random.Random("s"), views=2)
            b = tb.augment(img, probs, random.Random("s"), views=2)
            self.assertEqual(len(a), 2)
            for x, y in zip(a, b):
                self.assertEqual(x.shape, img.shape)
                self.assertEqual(x.dtype, np.uint8)
                self.assertTrue(np.array_equal(x, y), preset)
            # Two views of one sample differ (each draws its own box and compression).
            self.assertFalse(np.array_equal(a[0], a[1]), preset)

    def test_self_blend_changes_the_face_only(self):
        import numpy as np
        img = (np.random.RandomState(1).rand(128, 128, 3) * 255).astype(np.uint8)
        for landmarks in (None, [(44, 52), (84, 52), (64, 72), (48, 92), (80, 92)]):
            out = faceaug.self_blend(img, random.Random("b"), landmarks)
            self.assertTrue(np.array_equal(out, faceaug.self_blend(img, random.Random("b"), landmarks)))
            diff = np.abs(out.astype(int) - img).sum(2)
            # The corners lie outside any face mask: untouched. The centre is blended.
            for y, x in ((2, 2), (2, 125), (125, 2), (125, 125)):
                self.assertEqual(diff[y, x], 0, (landmarks is None, y, x))
            self.assertGreater(diff[50:90, 50:80].mean(), 1.0)
        m = faceaug.face_mask(128, random.Random("m"))
        self.assertEqual(m.shape, (128, 128))
        self.assertAlmostEqual(float(m[0, 0]), 0.0)
        self.assertGreater(float(m[70, 64]), 0.5)

    @unittest.skipIf(faceaug.codec_available() is not None, "no H.264 encoder: %s" % faceaug.codec_available())
    def test_video_codec(self):
        import numpy as np
        img = np.zeros((63, 63, 3), np.uint8)  # odd sides are padded for 4:2:0
        img[10:50, 10:50] = (200, 120, 60)
        a = faceaug.video_codec(img, random.Random("c"))
        self.assertEqual(a.shape, img.shape)
        self.assertTrue(np.array_equal(a, faceaug.video_codec(img, random.Random("c"))))
        err = np.abs(a.astype(int) - img).mean()
        self.assertGreater(err, 0)  # lossy
        self.assertLess(err, 20)    # but the same picture

    def test_stability_views(self):
        import numpy as np
        img = np.zeros((128, 128, 3), np.uint8)
        img[:, :40] = 255
        views = dict(faceaug.stability_views(img))
        self.assertEqual(sorted(views), ["mirror", "none", "scale110", "scale90", "shift"])
        self.assertEqual(int(views["mirror"][64, 127, 0]), 255)
        self.assertEqual(int(views["mirror"][64, 0, 0]), 0)
        # 2.3 px right: column 41 is now (partly) white.
        self.assertGreater(int(views["shift"][64, 41, 0]), 100)
        self.assertEqual(faceaug.flip_rate([0.2, 0.6, 0.7], [0.3, 0.4, 0.8]), 1 / 3)
        self.assertAlmostEqual(faceaug.median_abs_diff([0.2, 0.6, 0.7], [0.3, 0.4, 0.8]), 0.1)

    def test_consistency_losses(self):
        import torch
        torch.manual_seed(0)
        feats = torch.randn(4, 8, 2, 2)
        logits = torch.randn(4, 2)
        # Each sample's two views identical: no penalty.
        same_f = feats.repeat_interleave(2, 0)
        same_l = logits.repeat_interleave(2, 0)
        kl, feat = tb.consistency_losses(same_f, same_l, 2)
        self.assertAlmostEqual(kl.item(), 0.0, places=6)
        self.assertAlmostEqual(feat.item(), 0.0, places=6)
        # Unrelated views: both positive, and the feature term near 1 (standardised).
        kl, feat = tb.consistency_losses(torch.randn(400, 8, 2, 2), torch.randn(400, 2), 2)
        self.assertGreater(kl.item(), 0.1)
        self.assertGreater(feat.item(), 0.5)
        self.assertLess(feat.item(), 1.5)

    def test_init_from_onnx_restores_the_function(self):
        import torch
        import torchvision
        torch.manual_seed(3)
        m = torchvision.models.mnasnet0_75(weights=None)
        # Non-trivial BatchNorm statistics, as a trained model has.
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2)
                mod.weight.data.uniform_(0.5, 1.5)
                mod.bias.data.uniform_(-0.2, 0.2)
        m.eval()
        path = os.path.join(self.tmp, "b.onnx")
        proto = tb.export_model.to_onnx(m.layers, torch.zeros(1, 3, 64, 64), "input", "features",
                                        tb.export_model.metadata(64, 2, "backbone", "test"))
        tb.export_model.write_atomic(proto, path)
        x = torch.randn(16, 3, 64, 64)
        y = torch.tensor([0, 1] * 8)
        model, label, report, cells = tb.build_model(path, 0, 64, (x, y))
        self.assertEqual(cells, 2)
        self.assertIn("52 convolutions", report[0])
        self.assertIn("classifier fitted", report[1])
        model.eval()
        with torch.no_grad():
            want, got = m.layers(x), model.layers(x)
        self.assertLess((want - got).abs().max().item(), 1e-3 * want.abs().max().item())
        # Training mode normalises a batch like x as eval mode does: BatchNorm holds x's statistics.
        model.layers.train()
        with torch.no_grad():
            got_train = model.layers(x)
        self.assertLess((want - got_train).abs().max().item(), 1e-2 * want.abs().max().item())
        err = io.StringIO()
        bad = os.path.join(self.tmp, "bad.onnx")
        with open(bad, "wb") as f:
            f.write(b"not onnx")
        with contextlib.redirect_stderr(err), self.assertRaises(SystemExit):
            tb.build_model(bad, 0, 64, (x, y))
        self.assertIn("bad.onnx", err.getvalue())

    def test_prune_quiet_zeroes_quiet_channels_exactly(self):
        import torch
        em = tb.export_model
        backbone = em.pooled(em.random_mnasnet(seed=4, size=64).layers)
        x = torch.randn(24, 3, 64, 64)
        with torch.no_grad():
            before = backbone(x).flatten(1)
        sd = before.double().std(0, unbiased=False)
        zeroed, constant, thr = em.prune_quiet(backbone, x, 0.5, batch=8)
        self.assertAlmostEqual(thr, 0.5 * sd[sd > 0].median().item(), places=5)
        quiet = sd < thr
        self.assertEqual(zeroed, int(quiet.sum()))
        self.assertEqual(constant, int((sd == 0).sum()))
        self.assertGreater(zeroed, 0)
        self.assertLess(zeroed, before.shape[1])
        with torch.no_grad():
            after = backbone(x).flatten(1)
        self.assertTrue(bool((after[:, quiet] == 0).all()), "a quiet channel is not exactly zero")
        self.assertTrue(torch.allclose(after[:, ~quiet], before[:, ~quiet]), "a kept channel changed")
        err = io.StringIO()
        with contextlib.redirect_stderr(err), self.assertRaises(SystemExit):
            em.main(["--weights", "random", "--prune-quiet", "0.2", "--out", self.tmp])
        self.assertIn("--prune-quiet needs --calib", err.getvalue())

    def test_export_classifier_as_head(self):
        import onnx
        import torch
        import torchvision
        from onnx import numpy_helper
        em = tb.export_model
        torch.manual_seed(6)
        m = torchvision.models.mnasnet0_75(weights=None)
        m.classifier = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(em.FEATURE_CHANNELS, 2))
        pth = os.path.join(self.tmp, "w.pth")
        torch.save(m.state_dict(), pth)
        out = os.path.join(self.tmp, "exp")
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            em.main(["--weights", pth, "--pool", "--head", "classifier", "--size", "64", "--out", out])
        head = onnx.load(os.path.join(out, "head.onnx"))
        w = {t.name: numpy_helper.to_array(t) for t in head.graph.initializer}
        lin = m.classifier[1]
        # The BatchNorm in front is the identity, so the exported Gemm is the classifier.
        weight = [v for v in w.values() if v.shape == (2, em.FEATURE_CHANNELS)]
        bias = [v for v in w.values() if v.shape == (2,)]
        self.assertEqual(len(weight), 1)
        self.assertLess(abs(weight[0] - lin.weight.detach().numpy()).max(), 1e-5)
        self.assertLess(abs(bias[0] - lin.bias.detach().numpy()).max(), 1e-5)
        for argv, want in ((["--weights", pth, "--head", "classifier"], "needs --pool"),
                           (["--weights", "random", "--pool", "--head", "classifier"], "no 2-class classifier")):
            err = io.StringIO()
            with contextlib.redirect_stderr(err), self.assertRaises(SystemExit):
                em.main(argv + ["--size", "64", "--out", out])
            self.assertIn(want, err.getvalue())

    def test_init_features_only_and_wrong_file(self):
        import torch
        import torchvision
        m = torchvision.models.mnasnet0_75(weights=None)
        p = os.path.join(self.tmp, "features.pth")
        torch.save(m.layers.state_dict(), p)
        model, label, report, cells = tb.build_model(p, 0, 64)
        self.assertEqual(cells, 2)
        self.assertTrue(label.startswith("file:features.pth:"))
        self.assertIn("features-only", report[0])
        for k, v in m.layers.state_dict().items():
            self.assertTrue(torch.equal(model.layers.state_dict()[k], v), k)
        bad = os.path.join(self.tmp, "bad.pth")
        torch.save({"layers.0.weight": torch.zeros(3)}, bad)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), self.assertRaises(SystemExit):
            tb.build_model(bad, 0, 64)
        self.assertIn("missing key", err.getvalue())


class TrainTests(unittest.TestCase):
    """One epoch at 64 px, a resume, and the same seed twice, on 16 images."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tb-train-")
        cls.data = make_csv_folder(os.path.join(cls.tmp, "data"))
        cls.common = ["--data", cls.data, "--size", "64", "--batch", "4", "--threads", "1",
                      "--val", "0.15", "--seed", "7", "--init", "random", "--aug", "strong",
                      "--progress-every", "0",
                      # A schedule that does not depend on --epochs, so 1 epoch + resume = 2 epochs.
                      "--schedule", "step", "--bn-momentum", "0.3"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def metrics(self, out):
        with open(os.path.join(out, "metrics.json")) as f:
            return json.load(f)

    def test_one_epoch_then_resume_and_determinism(self):
        import onnx
        out = os.path.join(self.tmp, "run")
        rc, stdout, stderr = run_main(self.common + ["--epochs", "1", "--out", out])
        self.assertEqual(rc, 0)
        for name in ("backbone.pth", "backbone.onnx", "training-log.txt", "metrics.json", "checkpoint.pt"):
            self.assertTrue(os.path.isfile(os.path.join(out, name)), name)
        self.assertIn("epoch 1/1", stdout)
        self.assertIn("batch 1/", stderr)  # the in-epoch progress line
        self.assertIn("RANDOMLY INITIALISED", stderr)
        m = self.metrics(out)
        # Epoch 0 is the starting weights, measured before training.
        self.assertEqual([e["epoch"] for e in m["epochs"]], [0, 1])
        first = m["epochs"][1]
        for k in ("train_loss", "val_loss", "val_auc", "val_acc", "seconds"):
            self.assertIsNotNone(first[k], k)
        log = read(os.path.join(out, "training-log.txt"))
        self.assertIn("command: ", log)
        self.assertIn("--seed 7", log)
        self.assertIn("seed 7", log)
        self.assertIn("train: ", log)
        self.assertIn("val: ", log)

        # The daemon's layout: input `input`, output `features`, deepfaked.* metadata.
        proto = onnx.load(os.path.join(out, "backbone.onnx"))
        self.assertEqual([i.name for i in proto.graph.input], ["input"])
        self.assertEqual([o.name for o in proto.graph.output], ["features"])
        meta = {p.key: p.value for p in proto.metadata_props}
        self.assertEqual(meta["deepfaked.role"], "backbone")
        self.assertEqual(meta["deepfaked.input_size"], "64")
        self.assertEqual(meta["deepfaked.feature_shape"], "1280,2,2")
        self.assertEqual(meta["deepfaked.color_order"], "RGB")
        self.assertEqual(meta["deepfaked.mean"], "0.485,0.456,0.406")
        self.assertTrue(meta["deepfaked.weights"].startswith("file:backbone.pth:"))

        # --resume goes on counting epochs.
        rc, stdout, _ = run_main(self.common + ["--epochs", "2", "--out", out, "--resume"])
        self.assertEqual(rc, 0)
        self.assertIn("epoch 2/2", stdout)
        m2 = self.metrics(out)
        self.assertEqual([e["epoch"] for e in m2["epochs"]], [0, 1, 2])
        self.assertEqual(m2["epochs"][1], first)
        self.assertIn("resumed from", read(os.path.join(out, "training-log.txt")))

        # The same seed gives the same run: 2 epochs straight = 1 epoch + resume.
        again = os.path.join(self.tmp, "again")
        rc, _, _ = run_main(self.common + ["--epochs", "2", "--out", again, "--no-onnx"])
        self.assertEqual(rc, 0)
        m3 = self.metrics(again)
        self.assertEqual(m3["epochs"][1]["val_loss"], first["val_loss"])
        self.assertEqual(m3["epochs"][2]["val_loss"], m2["epochs"][2]["val_loss"])
        self.assertEqual(m3["epochs"][2]["train_loss"], m2["epochs"][2]["train_loss"])
        self.assertFalse(os.path.exists(os.path.join(again, "backbone.onnx")))

    def test_two_views_consistency_and_learning_curve(self):
        out = os.path.join(self.tmp, "views")
        argv = self.common + ["--epochs", "2", "--out", out, "--no-onnx", "--views", "2", "--aug", "invariant",
                              "--p-codec", "0", "--epoch-size", "8", "--stability-images", "4"]
        rc, stdout, _ = run_main(argv)
        self.assertEqual(rc, 0)
        m = self.metrics(out)
        self.assertEqual([e["epoch"] for e in m["epochs"]], [0, 1, 2])
        for e in m["epochs"]:
            self.assertEqual(sorted(e["stability"]), ["mirror", "scale110", "scale90", "shift"])
            for v in e["stability"].values():
                self.assertTrue(0 <= v["flip"] <= 1 and v["median"] >= 0)
        for e in m["epochs"][1:]:
            self.assertGreater(e["train_kl"] + e["train_feat"], 0)  # the consistency terms ran
            self.assertTrue(os.path.isfile(os.path.join(out, "epoch-%03d.pth" % e["epoch"])))
        self.assertIn("changed verdicts", stdout)
        with open(os.path.join(out, "learning-curve.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        log = read(os.path.join(out, "training-log.txt"))
        self.assertIn("views per sample: 2", log)
        self.assertIn("self-blends from", log)

    def test_resume_refuses_other_split(self):
        out = os.path.join(self.tmp, "other")
        rc, _, _ = run_main(self.common + ["--epochs", "1", "--out", out, "--no-onnx", "--val", "0.3"])
        self.assertEqual(rc, 0)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
                self.assertRaises(SystemExit):
            tb.main(self.common + ["--epochs", "2", "--out", out, "--resume", "--val", "0.15"])
        self.assertIn("--val", err.getvalue())


if __name__ == "__main__":
    unittest.main()
