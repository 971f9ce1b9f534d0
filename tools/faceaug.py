"""Augmentations of face crops for tools/train_backbone.py: what a camera, its codec
and the face detector do to a face (colour, blur, resolution, compression, the box's
position, size and angle, mirroring), erasing a face part, and self-blended fakes.

Every function takes a uint8 HxWx3 RGB numpy array and a random.Random, and returns a
new uint8 array of the same shape: the result depends only on the image and the RNG's
state, so a seeded sample is the same in every run and every worker.

Self-blended images (SBI, Shiohara and Yamasaki, CVPR 2022): a real face blended with
a colour-, sharpness- and geometry-perturbed copy of itself through a face-shaped
mask. The blend leaves the boundary and statistics mismatches every face swap leaves,
without any particular generator's fingerprints, so a model learns the former. Our
crops carry no landmarks, so the mask is drawn from the face's typical place in a
detector's crop (a jittered ellipse over the inner face, deformed and feathered);
landmarks, where given, place it instead.
"""

import io

# ImageNet's mean colour in 0..255: an erased part normalises to 0.
MEAN_RGB = (124, 116, 104)

# Face parts in a centred face crop (as the daemon saves them, with margin), as
# (x0, y0, x1, y1) fractions of the side; jittered before erasing.
FACE_PARTS = {
    "left_eye": (0.22, 0.30, 0.48, 0.48),
    "right_eye": (0.52, 0.30, 0.78, 0.48),
    "eyes": (0.18, 0.28, 0.82, 0.50),
    "nose": (0.38, 0.40, 0.62, 0.66),
    "mouth": (0.28, 0.62, 0.72, 0.82),
}


def _cv2():
    import cv2
    return cv2


def _np():
    import numpy as np
    return np


# ---------------------------------------------------------------- photometric

def colour_jitter(img, rng, lo=0.7, hi=1.3, hue=0.04):
    """Brightness, contrast and saturation each times U(lo, hi), hue shifted by up to
    +-hue of the circle."""
    from PIL import Image, ImageEnhance
    np = _np()
    im = Image.fromarray(img)
    for enh in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        im = enh(im).enhance(rng.uniform(lo, hi))
    shift = int(round(rng.uniform(-hue, hue) * 255))
    if shift:
        h, s, v = im.convert("HSV").split()
        h = h.point(lambda x: (x + shift) % 256)
        im = Image.merge("HSV", (h, s, v)).convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def blur(img, rng):
    """Gaussian blur, radius 0.3-1.5 px at 128 px."""
    from PIL import Image, ImageFilter
    np = _np()
    r = rng.uniform(0.3, 1.5) * img.shape[0] / 128
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius=r)), dtype=np.uint8)


def rescale(img, rng):
    """Down to 35-80 % of the side with a random filter and back up: a face far from
    the camera."""
    from PIL import Image
    np = _np()
    size = img.shape[0]
    small = max(8, int(round(size * rng.uniform(0.35, 0.8))))
    down = rng.choice((Image.BILINEAR, Image.BOX, Image.NEAREST))
    im = Image.fromarray(img).resize((small, small), down).resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def jpeg(img, rng, lo=30, hi=95):
    from PIL import Image
    np = _np()
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=rng.randint(lo, hi))
    buf.seek(0)
    with Image.open(buf) as j:
        return np.asarray(j.convert("RGB"), dtype=np.uint8)


def erase(img, rng):
    """Paints one face part (an eye, both eyes, the nose or the mouth) in the mean colour."""
    out = img.copy()
    size = img.shape[0]
    x0, y0, x1, y1 = FACE_PARTS[rng.choice(sorted(FACE_PARTS))]
    dx, dy = rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05)
    b = [min(size, max(0, int(round((v + d) * size)))) for v, d in ((x0, dx), (y0, dy), (x1, dx), (y1, dy))]
    out[b[1]:b[3], b[0]:b[2]] = MEAN_RGB
    return out


def codec_available():
    """None when video re-encoding can run, else why not."""
    try:
        import av
    except ImportError:
        return "PyAV is not installed (Debian: python3-av)"
    try:
        av.codec.Codec("libx264", "w")
    except Exception as e:  # av.codec.codec.UnknownCodecError and kin
        return "FFmpeg has no libx264 encoder (%s)" % e
    return None


def video_codec(img, rng, crf_lo=23, crf_hi=40):
    """H.264 (libx264, as a camera's stream) at a random CRF: a three-frame clip of the
    face drifting by a pixel a frame, decoded, the last (predicted) frame kept, so the
    face carries inter-frame artefacts as well as the intra ones. The side is padded to
    even for 4:2:0 chroma."""
    import av
    np = _np()
    h, w = img.shape[:2]
    H, W = h + h % 2, w + w % 2
    crf = rng.randint(crf_lo, crf_hi)
    dx, dy = rng.choice((-1, 0, 1)), rng.choice((-1, 0, 1))
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="h264") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"crf": str(crf), "preset": rng.choice(("ultrafast", "veryfast", "medium")),
                     "tune": "zerolatency", "g": "3", "bf": "0"}
        for k in (2, 1, 0):
            frame = shift(img, dx * k, dy * k)
            if (H, W) != (h, w):
                frame = np.pad(frame, ((0, H - h), (0, W - w), (0, 0)), mode="edge")
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    buf.seek(0)
    last = None
    with av.open(buf, mode="r", format="h264") as inp:
        for f in inp.decode(video=0):
            last = f
    if last is None:
        return img
    return np.ascontiguousarray(last.to_ndarray(format="rgb24")[:h, :w])


def shift(img, dx, dy):
    """Integer shift with the edge repeated (the frame around a crop looks like its edge)."""
    cv2 = _cv2()
    if dx == 0 and dy == 0:
        return img
    m = _np().float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_REPLICATE)


# ---------------------------------------------------------------- geometric

def affine(img, dx=0.0, dy=0.0, scale=1.0, angle=0.0, mirror=False):
    """The crop a detector's box moved by (dx, dy) px, grown by 1/scale and turned by angle
    degrees would give: the content is scaled by `scale` about the centre, rotated and
    shifted, with the border reflected (the crops hold no more of the frame). Bilinear."""
    cv2 = _cv2()
    np = _np()
    if mirror:
        img = np.ascontiguousarray(img[:, ::-1])
    if dx == 0 and dy == 0 and scale == 1 and angle == 0:
        return img
    h, w = img.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, scale)
    m[0, 2] += dx
    m[1, 2] += dy
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def random_geometry(img, rng, max_shift, max_scale, max_rotate, p_mirror):
    """A random detector box: shift up to +-max_shift px at 128 px (scaled to the image),
    scale in 1 +- max_scale, rotation up to +-max_rotate degrees, mirror with p_mirror."""
    k = img.shape[0] / 128.0
    return affine(img, rng.uniform(-max_shift, max_shift) * k, rng.uniform(-max_shift, max_shift) * k,
                  rng.uniform(1 - max_scale, 1 + max_scale), rng.uniform(-max_rotate, max_rotate),
                  rng.random() < p_mirror)


# ---------------------------------------------------------------- self-blending

def face_mask(size, rng, landmarks=None):
    """A float32 size x size mask in 0..1 over the inner face: an ellipse placed by the
    landmarks where they are given ((5,2) in pixels: eyes, nose, mouth corners, YuNet's
    order), else at the face's place in a detector's crop; then deformed at low frequency
    and feathered by a random blur."""
    cv2 = _cv2()
    np = _np()
    m = np.zeros((size, size), np.float32)
    # An ellipse over the inner face; the landmarks, when given, place, size and turn it
    # (the Go twin's landmarkEllipse: the grown hull of the five points taught heads the
    # ellipse-trained backbone told apart less well).
    c = (size * (0.5 + rng.uniform(-0.04, 0.04)), size * (0.58 + rng.uniform(-0.04, 0.04)))
    axes = (size * rng.uniform(0.30, 0.40), size * rng.uniform(0.34, 0.42))
    angle = rng.uniform(-10, 10)
    if landmarks is not None:
        p = np.asarray(landmarks, np.float32).reshape(-1, 2)
        eyes, mouth = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
        d = float(np.linalg.norm(p[1] - p[0]))
        h = float(np.linalg.norm(mouth - eyes))
        d, h = (d if d >= 1 else size * 0.3), (h if h >= 1 else size * 0.3)
        c = tuple(eyes + (mouth - eyes) * rng.uniform(0.5, 0.65))
        axes = (d * rng.uniform(1.05, 1.4), h * rng.uniform(1.25, 1.55))
        angle = float(np.degrees(np.arctan2(p[1][1] - p[0][1], p[1][0] - p[0][0]))) + rng.uniform(-10, 10)
    cv2.ellipse(m, (int(round(c[0])), int(round(c[1]))), (int(round(axes[0])), int(round(axes[1]))),
                angle, 0, 360, 1.0, -1)
    # Low-frequency deformation: a 4x4 grid of offsets up to 4 % of the side, upsampled.
    g = np.array([[rng.uniform(-1, 1) for _ in range(16)] for _ in range(2)], np.float32).reshape(2, 4, 4)
    amp = size * 0.04
    fx = cv2.resize(g[0], (size, size), interpolation=cv2.INTER_CUBIC) * amp
    fy = cv2.resize(g[1], (size, size), interpolation=cv2.INTER_CUBIC) * amp
    xs, ys = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    m = cv2.remap(m, xs + fx, ys + fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # Feathering: a random-width Gaussian, sometimes after an erosion (a tighter blend).
    if rng.random() < 0.5:
        k = max(1, int(size * rng.uniform(0.01, 0.05)))
        m = cv2.erode(m, np.ones((k, k), np.uint8))
    sigma = size * rng.uniform(0.01, 0.08)
    ks = int(sigma * 3) * 2 + 1
    m = cv2.GaussianBlur(m, (ks, ks), sigma)
    return np.clip(m, 0, 1)


def _source_perturb(img, rng):
    """The 'other face' of a self-blend: the same face with another colour, sharpness and
    a slight geometry (as a face swap's generated face differs from the frame)."""
    cv2 = _cv2()
    np = _np()
    src = img.astype(np.float32)
    kind = rng.random()
    if kind < 0.5:  # per-channel gain and offset
        src = src * np.array([rng.uniform(0.9, 1.1) for _ in range(3)], np.float32) + \
            np.array([rng.uniform(-12, 12) for _ in range(3)], np.float32)
    else:
        src = colour_jitter(img, rng, 0.85, 1.15, 0.02).astype(np.float32)
    r = rng.random()
    if r < 0.35:
        src = cv2.GaussianBlur(src, (0, 0), rng.uniform(0.5, 1.5) * img.shape[0] / 128)
    elif r < 0.7:
        bl = cv2.GaussianBlur(src, (0, 0), 1.0 * img.shape[0] / 128)
        src = src + (src - bl) * rng.uniform(0.3, 1.2)  # unsharp mask
    src = np.clip(src, 0, 255).astype(np.uint8)
    size = img.shape[0]
    return affine(src, rng.uniform(-0.03, 0.03) * size, rng.uniform(-0.03, 0.03) * size,
                  rng.uniform(0.95, 1.05), rng.uniform(-2, 2))


def self_blend(img, rng, landmarks=None):
    """A self-blended fake of a real face crop (uint8 RGB), with a blend strength drawn
    from (0.25, 0.5, 0.75, 1, 1, 1) as in the SBI paper."""
    np = _np()
    src = _source_perturb(img, rng)
    m = face_mask(img.shape[0], rng, landmarks) * rng.choice((0.25, 0.5, 0.75, 1.0, 1.0, 1.0))
    m = m[:, :, None]
    out = src.astype(np.float32) * m + img.astype(np.float32) * (1 - m)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- stability views

def stability_views(img):
    """The changes the stability figures score, at 128 px (scaled to the image): the crop
    as is, mirrored, shifted 2.3 px right (a detector's box moving 1.8 % of its width),
    and scaled to 90 % and 110 %. Returns [(name, image)]."""
    k = img.shape[0] / 128.0
    return [("none", img), ("mirror", affine(img, mirror=True)), ("shift", affine(img, dx=2.3 * k)),
            ("scale90", affine(img, scale=0.9)), ("scale110", affine(img, scale=1.1))]


def flip_rate(p0, p1, threshold=0.5):
    """Share of verdicts (p >= threshold) that differ between two score arrays."""
    np = _np()
    return float(np.mean((np.asarray(p0) >= threshold) != (np.asarray(p1) >= threshold)))


def median_abs_diff(p0, p1):
    np = _np()
    return float(np.median(np.abs(np.asarray(p0, np.float64) - np.asarray(p1, np.float64))))

