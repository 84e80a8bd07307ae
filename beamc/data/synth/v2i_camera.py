"""Camera frames of the street: perspective projection of the shared geometry, 960 x 540.

A pinhole camera at the base station (height bs_height, pitched `PITCH_DEG` down) looks
along +y with the codebook's field of view, so image column and beam index both grow
towards +x. The static background (sky, facade with windows, far sidewalk, road with lane
markings, near sidewalk) is ray-cast once per scenario with procedural textures; each
frame paints the objects far to near (so nearer ones occlude), shading every visible box
face by the sun (Lambert), adding window bands, wheels and shadows to vehicles, scales the
whole frame by the sequence's illumination and adds sensor noise before JPEG encoding.

Night sequences (`Night`, drawn per sequence by `v2i_scene.plan_sequence`): DeepSense
scenario 9 was recorded by day and by night. Without the sun the street is lit by lamps only;
the camera's exposure control opens up to its limit and still delivers a darker frame
(`level` times the day image) whose sensor noise the analogue gain amplifies (`noise_gain`
times the day noise). The scene keeps its shapes (street lighting), and every vehicle shows
its lights on the side facing the camera: a white-yellow headlight at the front corner and a
red tail light at the rear, painted in the same far-to-near order as the bodies (so a nearer
object hides them) and added after the dimming, as light sources are not dimmed. Radar and
LiDAR, active sensors, are unaffected.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from beamc.data.deepsense import IMAGE_SIZE
from beamc.data.synth.v2i_scene import KIND_PEDESTRIAN, KIND_VEHICLE, FrameState, World

WIDTH, HEIGHT = IMAGE_SIZE
PITCH_DEG = 4.0
NOISE_STD = 2.5
NOISE_BANK = 4
HEADLIGHT = np.array([255.0, 244.0, 214.0])  # warm white, saturating
TAILLIGHT = np.array([235.0, 30.0, 25.0])
LIGHT_RADIUS_M = 0.13                        # a lamp of ~25 cm across
LIGHT_HEIGHT_M = 0.7                         # above the road, at the body's front / rear corner


@dataclass(frozen=True)
class Night:
    """How a night sequence is rendered (see the module docstring)."""

    level: float = 0.15       # image level relative to the day image, after the exposure control
    noise_gain: float = 4.0   # sensor noise standard deviation relative to the day noise


@dataclass(frozen=True)
class Camera:
    f: float
    cx: float
    cy: float
    pos: np.ndarray      # [3]
    right: np.ndarray    # [3]
    down: np.ndarray     # [3]
    forward: np.ndarray  # [3]

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pixel coordinates [..., 2], depth along the optical axis [...])."""
        d = pts - self.pos
        z = d @ self.forward
        safe = np.maximum(z, 1e-3)
        u = self.cx + self.f * (d @ self.right) / safe
        v = self.cy + self.f * (d @ self.down) / safe
        return np.stack([u, v], axis=-1), z


def camera(w: World, fov_deg: float) -> Camera:
    p = np.radians(PITCH_DEG)
    forward = np.array([0.0, np.cos(p), -np.sin(p)])
    down = np.array([0.0, -np.sin(p), -np.cos(p)])
    f = (WIDTH / 2) / np.tan(np.radians(fov_deg / 2))
    return Camera(f=f, cx=WIDTH / 2, cy=HEIGHT / 2, pos=np.array([0.0, 0.0, w.bs_height]),
                  right=np.array([1.0, 0.0, 0.0]), down=down, forward=forward)


def background(w: World, cam: Camera, seed: int) -> np.ndarray:
    """float32 [540, 960, 3] in 0..1: the empty street, ray-cast per pixel."""
    rng = np.random.default_rng([seed, 2])
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    rays = (cam.forward[None, None] * cam.f + (u - cam.cx)[..., None] * cam.right
            + (v - cam.cy)[..., None] * cam.down)
    img = np.empty((HEIGHT, WIDTH, 3))
    # sky: brighter towards the horizon
    elev = -rays[..., 2] / np.linalg.norm(rays, axis=-1)
    img[:] = (np.array([0.55, 0.7, 0.92])[None, None] * (1 - 0.5 * np.clip(-elev, 0, 1))[..., None]
              + np.array([0.25, 0.2, 0.1]) * np.exp(-np.abs(elev) * 8)[..., None])
    with np.errstate(divide="ignore", invalid="ignore"):
        s_wall = np.where(rays[..., 1] > 0, w.wall_y / rays[..., 1], np.inf)
        s_ground = np.where(rays[..., 2] < 0, -cam.pos[2] / rays[..., 2], np.inf)
    z_wall = cam.pos[2] + np.where(np.isfinite(s_wall), s_wall, 0.0) * rays[..., 2]
    on_wall = (s_wall < s_ground) & (z_wall <= w.wall_height) & np.isfinite(s_wall)
    x_wall = np.where(on_wall, s_wall, 0.0) * rays[..., 0]
    # facade: plaster with a grid of darker windows, storeys every 3.5 m
    wx, wz = np.mod(x_wall, 3.0), np.mod(z_wall, 3.5)
    window = (wx > 0.6) & (wx < 2.2) & (wz > 1.0) & (wz < 2.6) & (z_wall > 3.0)
    facade = np.where(window[..., None], [0.22, 0.26, 0.3], [0.72, 0.64, 0.55])
    facade = facade * (0.9 + 0.1 * np.sin(x_wall * 0.7))[..., None]
    img = np.where(on_wall[..., None], facade, img)
    on_ground = np.isfinite(s_ground) & ~on_wall & (s_ground < s_wall)
    s_hit = np.where(on_ground, s_ground, 0.0)  # keep inf * 0 = nan out of the textures
    gx, gy = s_hit * rays[..., 0], s_hit * rays[..., 1]
    road_lo, road_hi = w.lanes.min() - 1.75, w.lanes.max() + 1.75
    ground = np.where(((gy >= road_lo) & (gy <= road_hi))[..., None], [0.33, 0.33, 0.35], [0.62, 0.6, 0.57])
    texture = rng.normal(0, 0.035, size=(HEIGHT, WIDTH))[..., None]
    ground = ground + texture
    edges = (np.abs(gy - road_lo - 0.15) < 0.08) | (np.abs(gy - road_hi + 0.15) < 0.08)
    between = [(a + b) / 2 for a, b in zip(w.lanes[:-1], w.lanes[1:])]
    dashes = np.zeros_like(edges)
    for y_line in between:
        dashes |= (np.abs(gy - y_line) < 0.07) & (np.mod(gx, 6.0) < 3.0)
    ground = np.where((edges | dashes)[..., None], [0.9, 0.9, 0.85], ground)
    img = np.where(on_ground[..., None], ground, img)
    return np.clip(img, 0, 1).astype(np.float32)


def noise_bank(seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 3])
    return np.round(rng.normal(0, NOISE_STD, size=(NOISE_BANK, HEIGHT, WIDTH, 3))).astype(np.int16)


# faces of a box as corner indices into the 8 corners (bit 0: x, bit 1: y, bit 2: z) and normals
_FACES = (((0, 1, 5, 4), (0, -1, 0)), ((2, 3, 7, 6), (0, 1, 0)), ((0, 2, 6, 4), (-1, 0, 0)),
          ((1, 3, 7, 5), (1, 0, 0)), ((4, 5, 7, 6), (0, 0, 1)))


def _corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    idx = np.arange(8)
    return np.stack([np.where(idx & 1, hi[0], lo[0]), np.where(idx & 2, hi[1], lo[1]),
                     np.where(idx & 4, hi[2], lo[2])], axis=1)


def _shade(color: np.ndarray, normal: np.ndarray, sun: np.ndarray) -> np.ndarray:
    return color * (0.45 + 0.55 * max(0.0, float(np.dot(normal, sun))))


def _rgb(c: np.ndarray) -> tuple[int, int, int]:
    c = np.clip(c * 255, 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def render(state: FrameState, w: World, cam: Camera, bg: np.ndarray, brightness: float,
           noise: np.ndarray, rng: np.random.Generator, night: Night | None = None) -> np.ndarray:
    """uint8 [540, 960, 3] frame (before JPEG encoding); `night` renders a night frame.
    Draws exactly one number from `rng` by day and by night (the other sensors' draws follow)."""
    from PIL import Image, ImageDraw

    im = Image.fromarray((bg * 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    # night: 0 = no light, 1 = headlight, 2 = tail light; painted in the bodies' order so they hide lights
    lights = Image.new("L", im.size, 0) if night is not None else None
    light_draw = ImageDraw.Draw(lights) if lights is not None else None
    order = np.argsort(-np.linalg.norm(state.centers[:, :2], axis=1))  # far to near
    for k in order:
        lo, hi = state.boxes[k]
        corners = _corners(lo, hi)
        px, depth = cam.project(corners)
        if (depth <= 0.2).any():
            continue
        if state.kind[k] == KIND_VEHICLE:
            shadow = np.array([[lo[0] - 0.2, lo[1] - 0.15, 0.01], [hi[0] + 0.2, lo[1] - 0.15, 0.01],
                               [hi[0] + 0.2, hi[1] + 0.6, 0.01], [lo[0] - 0.2, hi[1] + 0.6, 0.01]])
            spx, _ = cam.project(shadow)
            draw.polygon([tuple(p) for p in spx], fill=(52, 52, 56))
        for face, normal in _FACES:
            normal = np.asarray(normal, dtype=float)
            center = corners[list(face)].mean(axis=0)
            if np.dot(center - cam.pos, normal) >= 0:
                continue  # facing away from the camera
            color = _shade(state.color[k], normal, w.sun)
            if state.kind[k] == KIND_PEDESTRIAN:  # darker legs below, the colour above
                color = color * 0.8
            draw.polygon([tuple(px[i]) for i in face], fill=_rgb(color))
            if light_draw is not None:
                light_draw.polygon([tuple(px[i]) for i in face], fill=0)
        if state.kind[k] == KIND_VEHICLE:
            _vehicle_details(draw, cam, lo, hi)
            if light_draw is not None:
                _vehicle_lights(light_draw, cam, lo, hi, float(state.velocity[k, 0]))
        elif state.kind[k] == KIND_PEDESTRIAN:
            head_lo = np.array([(lo[0] + hi[0]) / 2 - 0.1, lo[1], hi[2] - 0.25])
            hpx, _ = cam.project(_corners(head_lo, head_lo + [0.2, 0.2, 0.25])[[0, 1, 5, 4]])
            draw.polygon([tuple(p) for p in hpx], fill=(205, 170, 140))
    frame = np.asarray(im, dtype=np.float32) * brightness
    pattern = noise[rng.integers(len(noise))]
    if night is not None:
        lit = np.asarray(lights)
        frame = frame * night.level
        frame[lit == 1] = HEADLIGHT
        frame[lit == 2] = TAILLIGHT
        frame = frame + pattern * np.float32(night.noise_gain)
    else:
        frame = frame + pattern
    return np.clip(frame, 0, 255).astype(np.uint8)


def _vehicle_lights(draw, cam: Camera, lo: np.ndarray, hi: np.ndarray, vx: float) -> None:
    """Headlight at the front corner, tail light at the rear, on the side facing the camera."""
    y = lo[1] - 0.02
    front, rear = (hi[0], lo[0]) if vx >= 0 else (lo[0], hi[0])
    inward = -np.sign(front - rear)  # the lamps sit just inside the body's ends
    for x_end, value in ((front, 1), (rear, 2)):
        xc = x_end + inward * (LIGHT_RADIUS_M + 0.05)
        pts = np.array([[xc - LIGHT_RADIUS_M, y, LIGHT_HEIGHT_M - LIGHT_RADIUS_M],
                        [xc + LIGHT_RADIUS_M, y, LIGHT_HEIGHT_M + LIGHT_RADIUS_M]])
        px, depth = cam.project(pts)
        if (depth <= 0.2).any():
            continue
        a, b = px.min(axis=0), px.max(axis=0)
        draw.ellipse([tuple(a), tuple(np.maximum(b, a + 1.0))], fill=value)  # at least one pixel far away


def _vehicle_details(draw, cam: Camera, lo: np.ndarray, hi: np.ndarray) -> None:
    """Window band and two wheels on the side facing the camera (y = lo[1])."""
    length, height = hi[0] - lo[0], hi[2] - lo[2]
    y = lo[1] - 0.01
    band = np.array([[lo[0] + 0.18 * length, y, lo[2] + 0.62 * height], [hi[0] - 0.12 * length, y, lo[2] + 0.62 * height],
                     [hi[0] - 0.16 * length, y, lo[2] + 0.92 * height], [lo[0] + 0.24 * length, y, lo[2] + 0.92 * height]])
    bpx, _ = cam.project(band)
    draw.polygon([tuple(p) for p in bpx], fill=(38, 48, 60))
    for wx in (lo[0] + 0.18 * length, hi[0] - 0.18 * length):
        wheel = np.array([[wx - 0.35, y, 0.0], [wx + 0.35, y, 0.0], [wx + 0.35, y, 0.7], [wx - 0.35, y, 0.7]])
        wpx, _ = cam.project(wheel)
        draw.ellipse([tuple(wpx[:, 0:2].min(axis=0)), tuple(wpx[:, 0:2].max(axis=0))], fill=(20, 20, 22))


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def project_bearing_to_column(bearing_rad: np.ndarray, cam: Camera) -> np.ndarray:
    """Image column of a point at `bearing` on the horizon-level plane (for tests and inspect)."""
    return cam.cx + cam.f * np.tan(bearing_rad)
