#!/usr/bin/python3
"""Memory and CPU of the daemon per decoder, side by side in one run.

N RTSP cameras (capture/capturetest/rtsp_server.py serving one 720p H.264
clip, remuxed from ../shared's ffpp_004.mp4 into a longer one without
re-encoding, each client its own session at the clip's real rate) watched by
the daemon at --fps each, with the Haar or YuNet detector and the embedded
broker; once per decoder setting. After --warmup seconds it measures the
daemon's CPU over --seconds (utime+stime from /proc/PID/stat) and reads
/proc/PID/smaps: RSS split into shared libraries (OpenCV and what it links,
ONNX Runtime, FFmpeg, GStreamer and its plugins, the rest), the binary, the Go
heap, malloc's main heap and the other anonymous memory (malloc's arenas and
large blocks: decoders, frames; thread stacks).

  tools/bench_decoders.py --decoder ffmpeg --decoder gstreamer [--detector yunet]

Prints a table and writes --json.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def long_clip(src, dst, repeat):
    """src's H.264 packets repeat times into dst (MP4), no re-encoding."""
    import av

    with av.open(src) as inp, av.open(dst, "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream(template=vin)
        offset = 0
        for _ in range(repeat):
            inp.seek(0)
            last = 0
            for pkt in inp.demux(vin):
                if pkt.dts is None:
                    continue
                last = max(last, pkt.pts + (pkt.duration or 0))
                pkt.pts += offset
                pkt.dts += offset
                pkt.stream = vout
                out.mux(pkt)
            offset += last


def counters(port):
    """The daemon's frame counters, summed over cameras."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for name in ("deepfaked_frames_analysed_total", "deepfaked_frames_captured_total", "deepfaked_frames_dropped_total"):
        out[name] = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + "{") or l.startswith(name + " "))
    return out


def ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime + stime


def smaps(pid, binary):
    """RSS in KiB by category, and by library file."""
    cats, libs = {}, {}
    name = None
    go_heap = False
    for line in open(f"/proc/{pid}/smaps"):
        head = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            start = int(line.split("-", 1)[0], 16)
            path = head[5] if len(head) > 5 else ""
            go_heap = 0xC000000000 <= start < 0xD000000000
            name = category(path, binary, go_heap)
            lib = os.path.basename(path) if ".so" in path else None
        elif head and head[0] == "Rss:":
            cats[name] = cats.get(name, 0) + int(head[1])
            if lib:
                libs[lib] = libs.get(lib, 0) + int(head[1])
    return cats, libs


def category(path, binary, go_heap):
    base = os.path.basename(path)
    if go_heap:
        return "Go heap"
    if path == "[heap]":
        return "malloc main heap"
    if path == "":
        return "anonymous (malloc arenas, large blocks, stacks)"
    if path.startswith("["):
        return "other"
    if os.path.realpath(path) == os.path.realpath(binary):
        return "binary"
    if ".so" not in base:
        return "other files"
    if base.startswith("libopencv"):
        return "lib OpenCV"
    if base.startswith("libonnxruntime"):
        return "lib ONNX Runtime"
    if re.match(r"lib(avcodec|avformat|avutil|swscale|swresample|avfilter|avdevice|postproc)", base):
        return "lib FFmpeg"
    if "gstreamer" in path or base.startswith("libgst"):
        return "lib GStreamer"
    return "lib other (OpenCV's dependencies, libc, ...)"


def run_one(args, spec, clip_url, workdir):
    """spec is a capture.decoder value, with :WxH to scale the frames."""
    decoder, _, size = spec.partition(":")
    state = os.path.join(workdir, f"state-{len(os.listdir(workdir))}")
    cfg = state + ".yaml"
    metrics = free_port()
    scale = ""
    if size:
        w, h = size.split("x")
        scale = f"    width: {w}\n    height: {h}\n"
    cams = "".join(
        f"  - name: cam{i}\n    source: {clip_url}\n    fps: {args.fps}\n{scale}" for i in range(args.cameras)
    )
    threads = f"  decoder_threads: {args.threads}\n"
    with open(cfg, "w") as f:
        f.write(
            f"device_id: bench\nstate_dir: {state}\n"
            f"mqtt:\n  broker: embedded\n  listen: 127.0.0.1:{free_port()}\n"
            f"model:\n  backbone: {args.backbone}\n  head: {args.head}\n"
            f"faces:\n  detector: {args.detector}\n" + (f"  model: {args.face_model}\n" if args.face_model else "") +
            f"capture:\n  decoder: {decoder}\n{threads}"
            f"metrics:\n  listen: 127.0.0.1:{metrics}\n"
            f"cameras:\n{cams}"
        )
    log = open(state + ".log", "w")
    p = subprocess.Popen([args.deepfaked, "run", "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(args.warmup)
        if p.poll() is not None:
            sys.exit(f"{spec}: the daemon exited: {open(log.name).read()[-2000:]}")
        t0, c0, f0 = time.monotonic(), ticks(p.pid), counters(metrics)
        time.sleep(args.seconds)
        t1, c1, f1 = time.monotonic(), ticks(p.pid), counters(metrics)
        mem, libs = smaps(p.pid, args.deepfaked)
        status = open(f"/proc/{p.pid}/status").read()
        hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
        threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    hz = os.sysconf("SC_CLK_TCK")
    through_gst = open(log.name).read().count('msg="camera decodes through GStreamer"')
    rate = {k.removeprefix("deepfaked_frames_").removesuffix("_total"): (f1[k] - f0[k]) / (t1 - t0) for k in f0}
    cpu = (c1 - c0) / hz
    return {
        "decoder": spec,
        "cpu_percent": 100 * cpu / (t1 - t0),
        "analysed_fps": rate["analysed"],
        "captured_fps": rate["captured"],
        "dropped_fps": rate["dropped"],
        "cpu_ms_per_captured_frame": 1000 * cpu / max(1, f1["deepfaked_frames_captured_total"] - f0["deepfaked_frames_captured_total"]),
        "rss_mib": sum(mem.values()) / 1024,
        "peak_rss_mib": hwm / 1024,
        "threads": threads,
        "gstreamer_cameras": through_gst,
        "breakdown_mib": {k: round(v / 1024, 1) for k, v in sorted(mem.items(), key=lambda kv: -kv[1])},
        "libraries": len(libs),
        "top_libraries_mib": {k: round(v / 1024, 1) for k, v in sorted(libs.items(), key=lambda kv: -kv[1])[:args.libs]},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decoder", action="append", help="capture.decoder values to compare, each with :WxH to scale the frames to that size (default ffmpeg, gstreamer, gstreamer:640x360)")
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--fps", type=float, default=5)
    ap.add_argument("--threads", type=int, default=1, help="capture.decoder_threads")
    ap.add_argument("--detector", default="haar")
    ap.add_argument("--face-model", help="faces.model, for --detector yunet")
    ap.add_argument("--warmup", type=float, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clip", default=os.path.join(ROOT, "..", "shared", "data", "videos", "real", "ffpp_004.mp4"))
    ap.add_argument("--deepfaked", default=os.path.join(ROOT, "bin", "deepfaked"))
    ap.add_argument("--backbone", default=os.path.join(ROOT, "models", "backbone.int8.onnx"))
    ap.add_argument("--head", default=os.path.join(ROOT, "models", "head.onnx"))
    ap.add_argument("--libs", type=int, default=0, help="list the N libraries with the most resident pages")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    decoders = args.decoder or ["ffmpeg", "gstreamer", "gstreamer:640x360"]
    with tempfile.TemporaryDirectory(prefix="bench-decoders-") as work:
        clip = os.path.join(work, "long.mp4")
        long_clip(args.clip, clip, repeat=max(2, int((args.warmup + args.seconds) * len(decoders) / 10) + 2))
        port = free_port()
        server = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(ROOT, "capture", "capturetest", "rtsp_server.py"), "--passthrough", clip, str(port), "bench", "bench"],
            stdout=subprocess.PIPE, text=True)
        try:
            if server.stdout.readline().strip() != "ready":
                sys.exit("rtsp_server.py did not start")
            url = f"rtsp://bench:bench@127.0.0.1:{port}/stream1"
            results = []
            for d in decoders:
                r = run_one(args, d, url, work)
                results.append(r)
                print(f"{d:>18}: CPU {r['cpu_percent']:5.1f} %  analysed {r['analysed_fps']:.1f} fps (of {args.cameras * args.fps:g}), "
                      f"captured {r['captured_fps']:.1f} fps, dropped {r['dropped_fps']:.1f} fps  RSS {r['rss_mib']:6.1f} MiB (peak {r['peak_rss_mib']:.1f})  threads {r['threads']}", flush=True)
                for k, v in r["breakdown_mib"].items():
                    print(f"{'':>20}{v:7.1f} MiB  {k}")
                if args.libs:
                    print(f"{'':>20}{r['libraries']} libraries mapped; the largest:")
                    for k, v in r["top_libraries_mib"].items():
                        print(f"{'':>24}{v:7.1f} MiB  {k}")
        finally:
            server.kill()
    out = {"cameras": args.cameras, "fps": args.fps, "detector": args.detector, "threads": args.threads,
           "clip": os.path.basename(args.clip), "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
