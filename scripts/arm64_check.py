"""Helpers of scripts/arm64-check.sh.

lossless VIDEO FPS OUT: copies VIDEO's frames, FPS a second of video time, to
OUT as PNG in AVI (lossless, decoded bit-exactly on any architecture).

diff REFERENCE CANDIDATE: compares the verdicts of two `deepfaked run
--watch` outputs frame by frame. With --p-tol and --box-tol every frame must
be in both, with the same number of faces, boxes within --box-tol pixels and
p_fake within --p-tol (exit 1 otherwise); without them it only reports."""

import argparse
import json
import sys


def lossless(video, fps, out):
    import cv2  # Debian's python3-opencv (make deps)

    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        sys.exit(f"{video}: cannot open")
    every = max(1, round(cap.get(cv2.CAP_PROP_FPS) / fps))
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    w = cv2.VideoWriter(out, cv2.VideoWriter_fourcc(*"png "), fps, size)
    if not w.isOpened():
        sys.exit(f"{out}: cannot write PNG in AVI")
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % every == 0:
            w.write(frame)
        i += 1
    w.release()


def verdicts(path):
    out = {}
    with open(path) as f:
        for line in f:
            topic, _, payload = line.rstrip("\n").partition(" ")
            if topic.endswith("/verdict"):
                v = json.loads(payload)
                out[(v["camera"], v["frame"])] = v
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    lo = sub.add_parser("lossless")
    lo.add_argument("video")
    lo.add_argument("fps", type=float)
    lo.add_argument("out")
    d = sub.add_parser("diff")
    d.add_argument("reference")
    d.add_argument("candidate")
    d.add_argument("--p-tol", type=float)
    d.add_argument("--box-tol", type=int)
    d.add_argument("--label", default="")
    a = ap.parse_args()
    if a.cmd == "lossless":
        lossless(a.video, a.fps, a.out)
        return 0
    return diff(a)


def diff(a):
    check = a.p_tol is not None and a.box_tol is not None
    ref, cand = verdicts(a.reference), verdicts(a.candidate)
    problems = []
    if not ref:
        problems.append(f"no verdicts in {a.reference}")
    if set(ref) != set(cand):
        problems.append(f"frames differ: {len(ref)} in the reference, {len(cand)} in the candidate, "
                        f"{len(set(ref) ^ set(cand))} in only one")
    faces = labels = 0
    max_dp = max_box = 0.0
    for key in sorted(set(ref) & set(cand)):
        r, c = ref[key]["faces"], cand[key]["faces"]
        if len(r) != len(c):
            problems.append(f"frame {key[1]}: {len(r)} faces, candidate {len(c)}")
            continue
        # Faces come in detection order; match each to the nearest box anyway.
        for rf in r:
            cf = min(c, key=lambda f: sum(abs(x - y) for x, y in zip(f["box"], rf["box"])))
            dbox = max(abs(x - y) for x, y in zip(cf["box"], rf["box"]))
            dp = abs(cf["p_fake"] - rf["p_fake"])
            faces += 1
            labels += cf["label"] == rf["label"]
            max_dp, max_box = max(max_dp, dp), max(max_box, dbox)
            if check and (dbox > a.box_tol or dp > a.p_tol):
                problems.append(f"frame {key[1]} box {rf['box']}: box off by {dbox} px, "
                                f"p_fake {rf['p_fake']:.4f} vs {cf['p_fake']:.4f}")
    tol = f" (tolerance {a.p_tol})" if check else ""
    btol = f" (tolerance {a.box_tol})" if check else ""
    print(f"arm64-check: {a.label}: {len(ref)} frames, {faces} faces; same label {labels}/{faces}; "
          f"largest |p_fake difference| {max_dp:.5f}{tol}, largest box difference {max_box:g} px{btol}"
          + ("" if check else " (for the record, not checked)"))
    if not check:
        return 0
    for p in problems[:20]:
        print(f"arm64-check: {a.label}: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
