#!/usr/bin/python3
"""Memory and CPU of the daemon per decoder, side by side in one run.

N RTSP cameras (capture/capturetest/rtsp_server.py serving one 720p H.264
clip: ../shared's ffpp_004.mp4 re-encoded the way an IP camera sends its main
stream (--bitrate; 0 keeps the clip's own), remuxed into a longer one, each
client its own session at the clip's real rate) watched by
the daemon at --fps each, with the Haar or YuNet detector and the embedded
broker; once per decoder setting. After --warmup seconds it measures the
daemon's CPU over --seconds (utime+stime from /proc/PID/stat) and reads
/proc/PID/smaps: RSS split into shared libraries (OpenCV and what it links,
ONNX Runtime, FFmpeg, GStreamer and its plugins, the rest), the binary, the Go
heap in use (from the daemon's metrics; its mappings are among the large blocks), malloc's main heap, malloc's thread arenas, thread stacks and the other
anonymous memory (large blocks: decoders, frames, ONNX Runtime's arena).

  tools/bench_decoders.py --decoder ffmpeg --decoder gstreamer [--detector yunet]

Prints a table and writes --json.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
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


def camera_stream(src, dst, bitrate_kbps):
    """src re-encoded the way an IP camera sends its main stream: H.264 Main
    profile, 4:2:0, no B-frames, an IDR every 2 s, bitrate_kbps (x264enc,
    gstreamer1.0-plugins-ugly). ../shared's FaceForensics++ clips are High
    4:4:4 Predictive at about 120 kbit/s: twice a camera's bytes per decoded
    pixel, and a tenth of its bitrate."""
    subprocess.run(
        ["gst-launch-1.0", "-q", "filesrc", f"location={src}", "!", "parsebin", "!", "avdec_h264", "!", "videoconvert", "!",
         "video/x-raw,format=I420", "!", "x264enc", f"bitrate={bitrate_kbps}", "key-int-max=50", "bframes=0",
         "speed-preset=veryfast", "!", "video/x-h264,profile=main", "!", "h264parse", "!", "mp4mux", "!", "filesink", f"location={dst}"],
        check=True)


def counters(port):
    """The daemon's frame counters, summed over cameras."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for name in ("go_memstats_heap_inuse_bytes", "deepfaked_frames_analysed_total", "deepfaked_frames_captured_total", "deepfaked_frames_dropped_total"):
        out[name] = sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + "{") or l.startswith(name + " "))
    return out


def ticks(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])  # utime + stime


def smaps(pid, binary):
    """RSS in KiB by category, and by library file."""
    maps = []  # [start, end, perms, path, rss]
    for line in open(f"/proc/{pid}/smaps"):
        head = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            start, end = (int(x, 16) for x in head[0].split("-"))
            maps.append([start, end, head[1], head[5] if len(head) > 5 else "", 0])
        elif head and head[0] == "Rss:":
            maps[-1][4] = int(head[1])
    cats, libs = {}, {}
    for i, (start, end, perms, path, rss) in enumerate(maps):
        name = category(path, binary)
        if name == ANON:
            name = anonymous_kind(maps, i)
        cats[name] = cats.get(name, 0) + rss
        if ".so" in path:
            lib = os.path.basename(path)
            libs[lib] = libs.get(lib, 0) + rss
    return cats, libs


ANON = "anonymous"
ARENA = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit: each thread arena's heap is one such aligned reservation


def anonymous_kind(maps, i):
    """Tells glibc's thread arenas and thread stacks from the other anonymous
    mappings by their shape: an arena heap starts on a 64 MiB boundary and
    its reserved rest (---p) ends on one; a pthread stack follows its guard
    page (---p, 4 KiB)."""
    start, end, perms, _, _ = maps[i]
    after = maps[i + 1] if i + 1 < len(maps) else None
    before = maps[i - 1] if i > 0 else None
    if start % ARENA == 0 and (end % ARENA == 0 or (after and after[0] == end and after[2] == "---p" and after[1] % ARENA == 0)):
        return "anonymous: malloc thread arenas"
    if before and before[1] == start and before[2] == "---p" and before[3] == "" and before[1] - before[0] == 4096:
        return "anonymous: thread stacks"
    return "anonymous: large blocks, other (decoders, frames, ONNX Runtime)"


def category(path, binary):
    base = os.path.basename(path)
    if path == "[heap]":
        return "malloc main heap"
    if path == "":
        return ANON
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
    """spec is a capture.decoder value, with :WxH to scale the frames and
    +NAME=VALUE for each environment variable the daemon runs with."""
    spec_decoder, *env_items = spec.split("+")
    decoder, _, size = spec_decoder.partition(":")
    env = dict(os.environ)
    env.update(item.split("=", 1) for item in env_items)
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
    p = subprocess.Popen([args.deepfaked, "run", "--config", cfg], stdout=log, stderr=subprocess.STDOUT, env=env)
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
    go_heap = f1.pop("go_memstats_heap_inuse_bytes") / (1 << 20)
    f0.pop("go_memstats_heap_inuse_bytes")
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
        "go_heap_inuse_mib": go_heap,
        "threads": threads,
        "gstreamer_cameras": through_gst,
        "breakdown_mib": {k: round(v / 1024, 1) for k, v in sorted(mem.items(), key=lambda kv: -kv[1])},
        "libraries": len(libs),
        "top_libraries_mib": {k: round(v / 1024, 1) for k, v in sorted(libs.items(), key=lambda kv: -kv[1])[:args.libs]},
    }


def report(r, d, args):
    print(f"{d:>18}: CPU {r['cpu_percent']:5.1f} %  analysed {r['analysed_fps']:.1f} fps (of {args.cameras * args.fps:g}), "
          f"captured {r['captured_fps']:.1f} fps, dropped {r['dropped_fps']:.1f} fps  RSS {r['rss_mib']:6.1f} MiB "
          f"(peak {r['peak_rss_mib']:.1f}, Go heap in use {r['go_heap_inuse_mib']:.1f})  threads {r['threads']}", flush=True)
    for k, v in r["breakdown_mib"].items():
        print(f"{'':>20}{v:7.1f} MiB  {k}")
    if args.libs:
        print(f"{'':>20}{r['libraries']} libraries mapped; the largest:")
        for k, v in r["top_libraries_mib"].items():
            print(f"{'':>24}{v:7.1f} MiB  {k}")


def medians(results, decoders, rounds):
    print(f"median of {rounds} rounds (each round's figure in brackets):")
    for d in decoders:
        runs = [r for r in results if r["decoder"] == d]
        cpu = [r["cpu_percent"] for r in runs]
        rss = [r["rss_mib"] for r in runs]
        fps = [r["analysed_fps"] for r in runs]
        print(f"{d:>18}: CPU {statistics.median(cpu):5.1f} % ({' '.join(f'{x:.0f}' for x in cpu)})  "
              f"analysed {statistics.median(fps):.1f} fps  RSS {statistics.median(rss):6.1f} MiB ({' '.join(f'{x:.0f}' for x in rss)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--decoder", action="append", help="capture.decoder values to compare, each with :WxH to scale the frames to that size and +NAME=VALUE for an environment variable (default ffmpeg, gstreamer, gstreamer:640x360)")
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--fps", type=float, default=5)
    ap.add_argument("--threads", type=int, default=1, help="capture.decoder_threads")
    ap.add_argument("--detector", default="haar")
    ap.add_argument("--face-model", help="faces.model, for --detector yunet")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of all the variants, interleaved; the medians are printed at the end")
    ap.add_argument("--warmup", type=float, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clip", default=os.path.join(ROOT, "..", "shared", "data", "videos", "real", "ffpp_004.mp4"))
    ap.add_argument("--bitrate", type=int, default=2000, help="re-encode --clip as a camera's H.264 at this many kbit/s; 0 sends the clip's own stream")
    ap.add_argument("--deepfaked", default=os.path.join(ROOT, "bin", "deepfaked"))
    ap.add_argument("--backbone", default=os.path.join(ROOT, "models", "backbone.int8.onnx"))
    ap.add_argument("--head", default=os.path.join(ROOT, "models", "head.onnx"))
    ap.add_argument("--libs", type=int, default=0, help="list the N libraries with the most resident pages")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    decoders = args.decoder or ["ffmpeg", "gstreamer", "gstreamer:640x360"]
    with tempfile.TemporaryDirectory(prefix="bench-decoders-") as work:
        src = args.clip
        if args.bitrate:
            src = os.path.join(work, "camera.mp4")
            camera_stream(args.clip, src, args.bitrate)
        clip = os.path.join(work, "long.mp4")
        long_clip(src, clip, repeat=max(2, int((args.warmup + args.seconds) * len(decoders) / 10) + 2))
        port = free_port()
        server = subprocess.Popen(
            ["/usr/bin/python3", os.path.join(ROOT, "capture", "capturetest", "rtsp_server.py"), "--passthrough", clip, str(port), "bench", "bench"],
            stdout=subprocess.PIPE, text=True)
        try:
            if server.stdout.readline().strip() != "ready":
                sys.exit("rtsp_server.py did not start")
            url = f"rtsp://bench:bench@127.0.0.1:{port}/stream1"
            results = []
            for rnd in range(args.repeat):  # rounds interleave the variants, so drift hits each alike
                for d in decoders:
                    r = run_one(args, d, url, work)
                    r["round"] = rnd + 1
                    results.append(r)
                    report(r, d, args)
        finally:
            server.kill()
    if args.repeat > 1:
        medians(results, decoders, args.repeat)
    out = {"cameras": args.cameras, "fps": args.fps, "detector": args.detector, "threads": args.threads, "rounds": args.repeat,
           "clip": os.path.basename(args.clip), "bitrate_kbps": args.bitrate, "results": results}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
