#!/usr/bin/python3
"""The straightforward Python pipeline a user would write from the original notebook.

It is the baseline that `deepfaked bench` is compared with (tools/compare_python.sh):
one loop, frame by frame, no threads of its own:

  cv2.VideoCapture decode -> grey -> Haar cascade (OpenCV's
  haarcascade_frontalface_default.xml) at the frame's FULL resolution with
  detectMultiScale's defaults (scaleFactor 1.1, minNeighbors 3, no minSize)
  -> each face box cropped, resized to 128x128, BGR->RGB, /255,
  ImageNet-normalised -> one batch per frame through torchvision mnasnet0_75's
  features (model.layers) and the head (Flatten, BatchNorm1d, Dropout(0.5),
  Linear(..., 2); eval mode), softmax -> one JSON verdict per frame published
  with paho-mqtt (QoS 1, as deepfaked's default).

The backbone and head are built as tools/export_model.py builds them (same
--weights and --seed meaning), so with the same weights the numbers match the
ONNX files deepfaked runs.

At the end it prints one JSON line on stdout: frames, frames_with_faces, faces,
seconds (first read to last publish acknowledged, model load excluded),
frames_per_s, plus the settings used.

Needs Debian's python3-torch, python3-torchvision, python3-opencv,
python3-paho-mqtt and opencv-data (scripts/deps.sh installs them); run with
/usr/bin/python3. A broker must be listening: `mosquitto -p 18831` and
--broker tcp://127.0.0.1:18831.
"""

import argparse
import json
import os
import sys
import time
from urllib.parse import urlparse

sys.dont_write_bytecode = True  # don't leave __pycache__ in tools/ when importing export_model
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import export_model  # noqa: E402

CASCADE_DIRS = ("/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades",
                "/usr/local/share/opencv4/haarcascades")
CASCADE = "haarcascade_frontalface_default.xml"


def fail(msg):
    print("notebook_pipeline: error: " + msg, file=sys.stderr)
    sys.exit(1)


def find_cascade(path):
    if path:
        if not os.path.isfile(path):
            fail("--cascade %s: no such file" % path)
        return path
    for d in CASCADE_DIRS:
        p = os.path.join(d, CASCADE)
        if os.path.isfile(p):
            return p
    fail("%s not found in %s: install opencv-data or pass --cascade" % (CASCADE, ", ".join(CASCADE_DIRS)))


def load_head(head, path):
    """Loads a head saved with torch.save (a module, a state_dict or a
    checkpoint holding one; read as export_model reads weights)."""
    try:
        head.load_state_dict(export_model.load_state_dict(path), strict=True)
    except RuntimeError as e:
        fail("head file %s does not fit Sequential(Flatten, BatchNorm1d, Dropout, Linear(.., 2)):\n%s" % (path, e))
    head.eval()


def broker_address(url):
    u = urlparse(url if "://" in url else "tcp://" + url)
    if u.scheme not in ("tcp", "mqtt"):
        fail("--broker %s: only tcp://HOST:PORT is supported" % url)
    return u.hostname or "127.0.0.1", u.port or 1883


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("video", help="video file (every frame is analysed)")
    p.add_argument("--weights", default="random",
                   help="mnasnet0_75 state_dict .pth (e.g. ../shared/models/backbone/mnasnet0_75_dfdc.pth) or 'random'")
    p.add_argument("--head", default="random", help="head saved with torch.save (module or state_dict), or 'random'")
    p.add_argument("--seed", type=int, default=0, help="seed for random weights")
    p.add_argument("--size", type=int, default=128, help="face crop side fed to the backbone")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads and cv2.setNumThreads")
    p.add_argument("--broker", default="tcp://127.0.0.1:1883")
    p.add_argument("--topic", default="deepfaked/notebook/verdict")
    p.add_argument("--qos", type=int, default=1, choices=(0, 1, 2))
    p.add_argument("--cascade", default="", help="Haar cascade .xml (default: opencv-data's %s)" % CASCADE)
    p.add_argument("--scale-factor", type=float, default=1.1, help="detectMultiScale scaleFactor (OpenCV default)")
    p.add_argument("--min-neighbors", type=int, default=3, help="detectMultiScale minNeighbors (OpenCV default)")
    p.add_argument("--min-size", type=int, default=0, help="detectMultiScale minSize in pixels (0: none, OpenCV default)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: whole video)")
    p.add_argument("--count-min-side", type=int, default=96,
                   help="also count faces at least this many pixels across (reporting only; 96 is the "
                        "smallest face deepfaked's Haar, at 320 px, finds in a 1280-wide frame)")
    args = p.parse_args()
    if args.threads < 1:
        fail("--threads %d: must be >= 1" % args.threads)

    try:
        import cv2
        import numpy as np
        import paho.mqtt.client as mqtt
        import torch
        import torchvision  # noqa: F401
    except ImportError as e:
        fail("%s: install python3-torch, python3-torchvision, python3-opencv and python3-paho-mqtt "
             "(run `make deps`) and run this script with /usr/bin/python3" % e)

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    cascade = cv2.CascadeClassifier(find_cascade(args.cascade))
    if cascade.empty():
        fail("cannot load the Haar cascade")
    backbone, head, label, _ = export_model.build_models(args.weights, args.seed, args.size)
    if args.head != "random":
        load_head(head, args.head)
    backbone.eval()
    head.eval()
    mean = np.array(export_model.MEAN, dtype=np.float32)
    std = np.array(export_model.STD, dtype=np.float32)

    host, port = broker_address(args.broker)
    client = mqtt.Client(client_id="deepfaked-notebook-%d" % os.getpid())
    try:
        client.connect(host, port, keepalive=30)
    except OSError as e:
        fail("cannot connect to broker %s:%d: %s (start one: mosquitto -p %d)" % (host, port, e, port))
    client.loop_start()

    cap = cv2.VideoCapture(args.video)
    if not cap.isOpened():
        fail("cannot open video %s" % args.video)

    frames = with_faces = faces = big_frames = big_faces = 0
    info = None
    start = time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames += 1
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        kw = {"scaleFactor": args.scale_factor, "minNeighbors": args.min_neighbors}
        if args.min_size > 0:
            kw["minSize"] = (args.min_size, args.min_size)
        boxes = cascade.detectMultiScale(gray, **kw)
        verdicts = []
        if len(boxes):
            crops = []
            for (x, y, w, h) in boxes:
                face = frame[y:y + h, x:x + w]
                face = cv2.resize(face, (args.size, args.size))
                face = cv2.cvtColor(face, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
                crops.append((face - mean) / std)
            batch = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).copy())
            with torch.no_grad():
                p_fake = torch.softmax(head(backbone(batch)), dim=1)[:, 1].tolist()
            for (x, y, w, h), pf in zip(boxes, p_fake):
                verdicts.append({"box": [int(x), int(y), int(w), int(h)], "p_fake": pf,
                                 "label": "fake" if pf >= 0.5 else "real"})
            with_faces += 1
            faces += len(boxes)
            big = sum(1 for b in boxes if min(b[2], b[3]) >= args.count_min_side)
            big_faces += big
            big_frames += big > 0
        msg = {"frame": frames, "time": time.time(), "faces": verdicts}
        info = client.publish(args.topic, json.dumps(msg), qos=args.qos)
        if args.max_frames and frames >= args.max_frames:
            break
    if info is not None:
        info.wait_for_publish()  # QoS 1: every verdict acknowledged by the broker
    seconds = time.perf_counter() - start
    cap.release()
    client.loop_stop()
    client.disconnect()
    if frames == 0:
        fail("no frame could be read from %s" % args.video)

    print(json.dumps({
        "pipeline": "python-notebook",
        "video": args.video,
        "frames": frames,
        "frames_with_faces": with_faces,
        "faces": faces,
        "frames_with_faces_min_side": big_frames,
        "faces_min_side": big_faces,
        "min_side": args.count_min_side,
        "seconds": round(seconds, 3),
        "frames_per_s": round(frames / seconds, 3),
        "threads": args.threads,
        "weights": label,
        "haar": {"full_resolution": True, "scale_factor": args.scale_factor,
                 "min_neighbors": args.min_neighbors, "min_size": args.min_size},
    }))


if __name__ == "__main__":
    main()
