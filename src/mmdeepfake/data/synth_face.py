"""Procedurally drawn expressive faces for the synthetic dataset.

A face is drawn at twice the output size with Pillow and numpy (supersampling gives smooth
edges), then downsampled: a background, shoulders, neck, ears, hair, an egg-shaped face with a
lighting gradient, eye sockets, eye whites with iris, pupil and catch-light, eyelids, brows, a
nose with bridge shadow and nostrils, lips with an open mouth and teeth where the expression
calls for them, cheeks and folds. The expression (brows, eye opening, mouth curve/opening/width,
sneer) follows the emotion; identity (skin tone, proportions, hair, eye colour, background,
head pose) comes from the random generator, so emotion is the only thing an emotion label
explains. Faces are meant to be detected by an off-the-shelf face detector (MTCNN), which needs
the usual face layout and contrast: dark brows and eyes above a lighter nose and a darker mouth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mmdeepfake.labels import EMOTIONS

__all__ = ["EXPRESSIONS", "Expression", "FaceIdentity", "FaceRenderer", "draw_face"]

SUPERSAMPLE = 2


@dataclass(frozen=True)
class Expression:
    """Facial action parameters; 0 (or 1 for ratios) is the neutral face."""

    brow_raise: float = 0.0  # + lifts both brows (surprise), - lowers them (anger)
    brow_tilt: float = 0.0  # + lifts the inner ends (sadness, fear), - pulls them down (anger)
    eye_open: float = 1.0  # eyelid opening, 1 = relaxed
    cheek_raise: float = 0.0  # lower lids pushed up (smile squint)
    mouth_curve: float = 0.0  # + corners up (smile), - corners down
    mouth_open: float = 0.0  # jaw opening, 0 closed .. 1 wide
    mouth_width: float = 1.0  # 1 relaxed, >1 stretched, <1 rounded
    lip_press: float = 0.0  # thinner lips (anger)
    sneer: float = 0.0  # upper lip raised on one side, nose wrinkled (disgust)
    teeth: float = 0.0  # how much of the opening shows teeth

    def scaled(self, intensity: float) -> Expression:
        """This expression at ``intensity`` (0 = neutral, 1 = full)."""
        neutral = Expression()
        return Expression(
            **{
                name: getattr(neutral, name) + intensity * (value - getattr(neutral, name))
                for name, value in self.__dict__.items()
            }
        )


EXPRESSIONS: dict[str, Expression] = {
    "neutral": Expression(mouth_open=0.04),
    "happy": Expression(
        brow_raise=0.15,
        eye_open=0.78,
        cheek_raise=1.0,
        mouth_curve=1.0,
        mouth_open=0.35,
        mouth_width=1.28,
        teeth=1.0,
    ),
    "sad": Expression(
        brow_raise=0.05,
        brow_tilt=1.0,
        eye_open=0.68,
        mouth_curve=-0.9,
        mouth_open=0.03,
        mouth_width=0.95,
    ),
    "angry": Expression(
        brow_raise=-0.6,
        brow_tilt=-1.0,
        eye_open=0.82,
        mouth_curve=-0.3,
        mouth_open=0.16,
        mouth_width=1.05,
        lip_press=1.0,
        teeth=1.0,
    ),
    "fearful": Expression(
        brow_raise=0.7,
        brow_tilt=0.7,
        eye_open=1.45,
        mouth_curve=-0.4,
        mouth_open=0.5,
        mouth_width=1.22,
        teeth=0.6,
    ),
    "disgusted": Expression(
        brow_raise=-0.4,
        brow_tilt=-0.3,
        eye_open=0.68,
        mouth_curve=-0.5,
        mouth_open=0.12,
        mouth_width=0.95,
        sneer=1.0,
        teeth=0.7,
    ),
    "surprised": Expression(
        brow_raise=1.0, brow_tilt=0.1, eye_open=1.6, mouth_open=1.0, mouth_width=0.72
    ),
}

_HAIR = np.array(
    [
        (25, 18, 12),
        (55, 38, 24),
        (100, 68, 38),
        (175, 135, 80),
        (135, 60, 30),
        (120, 118, 115),
        (12, 12, 14),
    ],
    dtype=float,
)
_IRIS = np.array(
    [(70, 45, 25), (45, 85, 135), (60, 100, 55), (95, 75, 45), (35, 28, 24)], dtype=float
)
_SKIN_LIGHT = np.array([242, 205, 180], dtype=float)
_SKIN_DARK = np.array([92, 58, 40], dtype=float)


@dataclass(frozen=True)
class FaceIdentity:
    """Everything about one person and scene that does not depend on the emotion."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    iris: tuple[float, float, float]
    clothes: tuple[float, float, float]
    background: tuple[tuple[float, float, float], tuple[float, float, float]]
    hair_style: int  # 0 short, 1 long, 2 very short
    face_rx: float  # half-width of the face, fraction of the image
    face_ratio: float  # height / width
    eye_spacing: float
    eye_size: float
    mouth_size: float
    lip_tone: float
    gaze: tuple[float, float]
    light: tuple[float, float]
    pose: tuple[float, float, float, float]  # rotation (deg), scale, shift x, shift y (fraction)
    intensity: float  # how strongly this person shows emotions
    talk_phase: tuple[float, float]
    scene_seed: int

    @classmethod
    def sample(cls, rng: np.random.Generator) -> FaceIdentity:
        """A random person, scene and head pose."""
        tone = rng.uniform(0.0, 1.0)
        skin = _SKIN_LIGHT * (1 - tone) + _SKIN_DARK * tone + rng.normal(0, 6, 3)
        hair = _HAIR[rng.integers(len(_HAIR))] + rng.normal(0, 8, 3)
        if tone > 0.6 and rng.random() < 0.7:  # darker hair is more common with darker skin
            hair = _HAIR[rng.integers(2)] + rng.normal(0, 5, 3)
        backgrounds = rng.uniform(20, 235, (2, 3))
        return cls(
            skin=_rgb(skin),
            hair=_rgb(hair),
            iris=_rgb(_IRIS[rng.integers(len(_IRIS))] + rng.normal(0, 6, 3)),
            clothes=_rgb(rng.uniform(15, 230, 3)),
            background=(_rgb(backgrounds[0]), _rgb(backgrounds[1])),
            hair_style=int(rng.choice(3, p=[0.5, 0.35, 0.15])),
            face_rx=float(rng.uniform(0.2, 0.235)),
            face_ratio=float(rng.uniform(1.22, 1.36)),
            eye_spacing=float(rng.uniform(0.37, 0.44)),
            eye_size=float(rng.uniform(0.9, 1.1)),
            mouth_size=float(rng.uniform(0.9, 1.1)),
            lip_tone=float(rng.uniform(0.0, 1.0)),
            gaze=(float(rng.uniform(-0.25, 0.25)), float(rng.uniform(-0.15, 0.15))),
            light=(float(rng.uniform(-1, 1)), float(rng.uniform(-1, 0.3))),
            pose=(
                float(rng.uniform(-12, 12)),
                float(rng.uniform(0.88, 1.08)),
                float(rng.uniform(-0.05, 0.05)),
                float(rng.uniform(-0.04, 0.05)),
            ),
            intensity=float(rng.uniform(0.7, 1.0)),
            talk_phase=(float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(0, 2 * math.pi))),
            scene_seed=int(rng.integers(2**31)),
        )


def _rgb(values: np.ndarray) -> tuple[float, float, float]:
    clipped = np.clip(values, 0, 255)
    return (float(clipped[0]), float(clipped[1]), float(clipped[2]))


def _byte(value: float) -> int:
    return int(min(max(value, 0.0), 255.0))


def _shade(color: tuple[float, ...], factor: float) -> tuple[int, int, int]:
    return (_byte(color[0] * factor), _byte(color[1] * factor), _byte(color[2] * factor))


def _mix(a: tuple[float, ...], b: tuple[float, ...], t: float) -> tuple[int, int, int]:
    return (
        _byte(a[0] * (1 - t) + b[0] * t),
        _byte(a[1] * (1 - t) + b[1] * t),
        _byte(a[2] * (1 - t) + b[2] * t),
    )


def _blob(
    arr: np.ndarray,
    x: float,
    y: float,
    sx: float,
    sy: float,
    color: tuple[float, ...],
    strength: float,
) -> None:
    """Blend a soft elliptical Gaussian spot of ``color`` into ``arr`` (H, W, 3 float) in place."""
    h, w = arr.shape[:2]
    x0, x1 = max(int(x - 3 * sx), 0), min(int(x + 3 * sx) + 1, w)
    y0, y1 = max(int(y - 3 * sy), 0), min(int(y + 3 * sy) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    weight = strength * np.exp(-0.5 * (((xx - x) / sx) ** 2 + ((yy - y) / sy) ** 2))
    region = arr[y0:y1, x0:x1]
    region += weight[..., None] * (np.asarray(color, dtype=float)[:3] - region)


class FaceRenderer:
    """Draws frames of one person; the background is made once and reused for every frame."""

    def __init__(self, identity: FaceIdentity, size: int = 224) -> None:
        self.identity = identity
        self.size = size
        self.canvas = size * SUPERSAMPLE
        self._background = self._make_background()

    def _make_background(self) -> Image.Image:
        """A blurred room-like backdrop, drawn at a quarter of the size (it is soft anyway)."""
        ident, n, full = self.identity, self.canvas // 4, self.canvas
        rng = np.random.default_rng(ident.scene_seed)
        c0, c1 = (np.asarray(c) for c in ident.background)
        angle = rng.uniform(0, math.pi)
        yy, xx = np.mgrid[0:n, 0:n] / n
        t = np.clip(0.5 + (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle), 0, 1)
        arr = c0 * (1 - t[..., None]) + c1 * t[..., None]
        image = Image.fromarray(arr.astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(2, 6))):  # furniture, windows, plants: soft shapes
            x, y = rng.uniform(0, n, 2)
            w, h = rng.uniform(0.1, 0.5, 2) * n
            color = tuple(int(v) for v in rng.uniform(10, 245, 3))
            if rng.random() < 0.5:
                draw.rectangle([x - w / 2, y - h / 2, x + w / 2, y + h / 2], fill=color)
            else:
                draw.ellipse([x - w / 2, y - h / 2, x + w / 2, y + h / 2], fill=color)
        blurred = image.filter(ImageFilter.GaussianBlur(n / 40))
        return blurred.resize((full, full), Image.Resampling.BILINEAR)

    # --- the head, drawn upright and centred, posed afterwards --------------------------------

    def render(self, expression: Expression, t: float = 0.0, *, motion: float = 1.0) -> np.ndarray:
        """One frame (size, size, 3) uint8 at time ``t`` seconds (head sway and talking)."""
        ident, n = self.identity, self.canvas
        phase_a, phase_b = ident.talk_phase
        talk = 0.5 + 0.5 * math.sin(2 * math.pi * 3.7 * t + phase_a) * math.sin(
            2 * math.pi * 1.3 * t + phase_b
        )
        expr = expression.scaled(ident.intensity)
        expr = Expression(**{**expr.__dict__, "mouth_open": expr.mouth_open + 0.22 * motion * talk})
        head = self._draw_head(expr)
        angle, scale, sx, sy = ident.pose
        angle += motion * 2.5 * math.sin(2 * math.pi * 0.4 * t + phase_a)
        sx += motion * 0.012 * math.sin(2 * math.pi * 0.3 * t + phase_b)
        sy += motion * 0.008 * math.sin(2 * math.pi * 0.5 * t + phase_a)
        posed = _affine(head, angle, scale, sx * n, sy * n)
        frame = self._background.copy()
        frame.paste(posed, (0, 0), posed)
        return np.asarray(frame.resize((self.size, self.size), Image.Resampling.LANCZOS))

    def face_geometry(self) -> tuple[float, float, float, float, float]:
        """``(cx, cy, rx, ry, angle_deg)`` of the posed face in output pixels (for artefacts)."""
        ident, s = self.identity, self.size
        angle, scale, sx, sy = ident.pose
        cx, cy = 0.5 * s + sx * s, 0.48 * s + sy * s
        rx = ident.face_rx * s * scale
        return cx, cy, rx, rx * ident.face_ratio, angle

    def _draw_head(self, e: Expression) -> Image.Image:
        ident, n = self.identity, self.canvas
        cx, cy = 0.5 * n, 0.48 * n
        rx = ident.face_rx * n
        ry = rx * ident.face_ratio
        skin = ident.skin
        layer = Image.new("RGBA", (n, n), (0, 0, 0, 0))
        draw = ImageDraw.Draw(layer)
        hair = _shade(ident.hair, 1.0)

        # Long hair falls behind the shoulders; shoulders and neck come next.
        if ident.hair_style == 1:
            draw.rounded_rectangle(
                [cx - 1.25 * rx, cy - 1.05 * ry, cx + 1.25 * rx, cy + 1.25 * ry],
                radius=int(rx),
                fill=_shade(hair, 0.85),
            )
        draw.ellipse(
            [cx - 2.3 * rx, cy + 1.25 * ry, cx + 2.3 * rx, cy + 3.2 * ry],
            fill=_shade(ident.clothes, 1.0),
        )
        draw.rectangle(
            [cx - 0.5 * rx, cy + 0.5 * ry, cx + 0.5 * rx, cy + 1.45 * ry], fill=_shade(skin, 0.78)
        )
        for side in (-1, 1):  # ears
            ex = cx + side * 0.97 * rx
            draw.ellipse(
                [ex - 0.16 * rx, cy - 0.2 * ry, ex + 0.16 * rx, cy + 0.2 * ry],
                fill=_shade(skin, 0.88),
            )
        if ident.hair_style != 2:  # hair volume behind the top of the head
            draw.ellipse([cx - 1.1 * rx, cy - 1.12 * ry, cx + 1.1 * rx, cy + 0.25 * ry], fill=hair)

        # Face: an egg shape, narrower at the jaw.
        outline = []
        for k in range(120):
            th = 2 * math.pi * k / 120
            taper = 1 - 0.22 * max(0.0, math.sin(th)) ** 2
            outline.append((cx + rx * math.cos(th) * taper, cy + ry * math.sin(th)))
        draw.polygon(outline, fill=_shade(skin, 1.0))
        face_mask = Image.new("L", (n, n), 0)
        ImageDraw.Draw(face_mask).polygon(outline, fill=255)

        # Hairline fringe over the forehead.
        if ident.hair_style != 2:
            top = [
                (cx + 1.03 * rx * math.cos(th), cy - 0.1 * ry + 1.02 * ry * math.sin(th))
                for th in np.linspace(math.pi, 2 * math.pi, 40)
            ]
            hairline = [
                (
                    cx + rx * u,
                    cy - 0.55 * ry + 0.12 * ry * (1 - u * u) ** 0.5 - 0.05 * ry * math.cos(3 * u),
                )
                for u in np.linspace(1.0, -1.0, 30)
            ]
            draw.polygon(top + hairline, fill=hair)

        arr = np.asarray(layer, dtype=float).copy()
        rgb, alpha = arr[..., :3], arr[..., 3]
        self._light(rgb, np.asarray(face_mask) > 0, cx, cy, rx, ry)
        self._features(rgb, e, cx, cy, rx, ry)
        out = np.concatenate([np.clip(rgb, 0, 255), alpha[..., None]], axis=-1).astype(np.uint8)
        return Image.fromarray(out, "RGBA")

    def _light(
        self, rgb: np.ndarray, mask: np.ndarray, cx: float, cy: float, rx: float, ry: float
    ) -> None:
        """Round the face with a radial fall-off and a directional light."""
        lx, ly = self.identity.light
        ys, xs = np.nonzero(mask)
        dx, dy = (xs - cx) / rx, (ys - cy) / ry
        shade = 1.04 - 0.22 * (dx**2 + 0.6 * dy**2) + 0.1 * (lx * dx + ly * dy)
        rgb[ys, xs] *= np.clip(shade, 0.55, 1.15)[:, None]

    def _features(
        self, rgb: np.ndarray, e: Expression, cx: float, cy: float, rx: float, ry: float
    ) -> None:
        ident = self.identity
        skin = ident.skin
        dark = _shade(skin, 0.55)
        eye_y = cy - 0.12 * ry
        eye_dx = ident.eye_spacing * rx
        ew = 0.2 * rx * ident.eye_size
        eh = 0.1 * ry * ident.eye_size * e.eye_open
        # Sockets, nose shadows, cheeks and folds: soft tone changes.
        for side in (-1, 1):
            _blob(rgb, cx + side * eye_dx, eye_y - 0.01 * ry, 1.1 * ew, 0.9 * ew, dark, 0.35)
            _blob(
                rgb,
                cx + side * 0.55 * rx,
                cy + 0.22 * ry,
                0.2 * rx,
                0.12 * ry,
                (220, 110, 110),
                0.12 + 0.18 * e.cheek_raise,
            )
            if e.mouth_curve > 0.3 or e.sneer > 0.3:  # nasolabial folds
                for k in range(6):
                    u = k / 5
                    _blob(
                        rgb,
                        cx + side * (0.2 + 0.14 * u) * rx,
                        cy + (0.28 + 0.2 * u) * ry,
                        0.025 * rx,
                        0.03 * ry,
                        dark,
                        0.25 * max(e.mouth_curve, e.sneer),
                    )
        lx = self.identity.light[0]
        side = -1 if lx > 0 else 1  # the bridge shadow falls away from the light
        for k in range(8):
            u = k / 7
            _blob(
                rgb,
                cx + side * 0.1 * rx,
                eye_y + (0.05 + 0.3 * u) * ry,
                0.045 * rx,
                0.05 * ry,
                dark,
                0.3,
            )
        _blob(rgb, cx, cy + 0.26 * ry, 0.16 * rx, 0.05 * ry, dark, 0.45)  # under the nose tip
        _blob(rgb, cx, cy + 0.17 * ry, 0.07 * rx, 0.06 * ry, _shade(skin, 1.2), 0.35)  # tip
        for s in (-1, 1):
            _blob(
                rgb, cx + s * 0.075 * rx, cy + 0.245 * ry, 0.035 * rx, 0.02 * ry, (40, 20, 18), 0.8
            )
        if e.sneer > 0:
            for k in range(3):  # nose wrinkle
                _blob(
                    rgb,
                    cx,
                    eye_y + (0.04 + 0.04 * k) * ry,
                    0.1 * rx,
                    0.008 * ry,
                    dark,
                    0.5 * e.sneer,
                )
        if e.brow_tilt < -0.3:  # frown lines between the brows
            for s in (-1, 1):
                _blob(
                    rgb,
                    cx + s * 0.06 * rx,
                    eye_y - 0.17 * ry,
                    0.012 * rx,
                    0.06 * ry,
                    dark,
                    0.5 * -e.brow_tilt,
                )

        image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for s in (-1, 1):
            self._eye(image, draw, cx + s * eye_dx, eye_y, ew, eh, e, s)
            self._brow(draw, cx, eye_y, s, eye_dx, ew, ry, e)
        self._mouth(draw, cx, cy + 0.5 * ry, rx, ry, e)
        rgb[...] = np.asarray(image, dtype=float)

    def _eye(
        self,
        image: Image.Image,
        draw: ImageDraw.ImageDraw,
        x: float,
        y: float,
        w: float,
        h: float,
        e: Expression,
        side: int,
    ) -> None:
        ident = self.identity
        lower_lift = 0.45 * e.cheek_raise
        upper = [(x + w * u, y - h * (1 - u * u) ** 0.7) for u in np.linspace(-1, 1, 24)]
        lower = [
            (x + w * u, y + h * (0.75 - lower_lift) * (1 - u * u) ** 0.9)
            for u in np.linspace(1, -1, 24)
        ]
        almond = upper + lower
        mask = Image.new("L", image.size, 0)
        ImageDraw.Draw(mask).polygon(almond, fill=255)
        eyeball = Image.new("RGB", image.size, (236, 232, 228))
        ed = ImageDraw.Draw(eyeball)
        ix, iy = x + ident.gaze[0] * w, y + ident.gaze[1] * w
        ri = 0.5 * w
        ed.ellipse(
            [ix - ri, iy - ri, ix + ri, iy + ri],
            fill=_shade(ident.iris, 1.0),
            outline=_shade(ident.iris, 0.5),
            width=max(1, int(ri * 0.15)),
        )
        rp = ri * 0.48
        ed.ellipse([ix - rp, iy - rp, ix + rp, iy + rp], fill=(12, 10, 10))
        rc = ri * 0.18
        ed.ellipse(
            [ix + 0.3 * ri - rc, iy - 0.35 * ri - rc, ix + 0.3 * ri + rc, iy - 0.35 * ri + rc],
            fill=(250, 250, 250),
        )
        image.paste(eyeball, (0, 0), mask)
        lid = _shade(ident.hair, 0.35) if sum(ident.hair) < 300 else (30, 22, 20)
        draw.line(upper, fill=lid, width=max(2, int(w * 0.14)), joint="curve")
        draw.line(lower, fill=_shade(ident.skin, 0.6), width=max(1, int(w * 0.05)))
        # A crease above the lid.
        crease = [(px, py - 0.45 * w) for px, py in upper[4:-4]]
        draw.line(crease, fill=_shade(ident.skin, 0.7), width=max(1, int(w * 0.05)))

    def _brow(
        self,
        draw: ImageDraw.ImageDraw,
        cx: float,
        eye_y: float,
        side: int,
        eye_dx: float,
        ew: float,
        ry: float,
        e: Expression,
    ) -> None:
        base = eye_y - 0.2 * ry - 0.11 * ry * e.brow_raise
        inner_x = cx + side * (eye_dx - 1.05 * ew + 0.04 * ry * min(e.brow_tilt, 0))
        outer_x = cx + side * (eye_dx + 1.2 * ew)
        inner_y = base - 0.07 * ry * e.brow_tilt
        outer_y = base + 0.02 * ry * e.brow_tilt + 0.015 * ry
        thick = 0.06 * ry
        top, bottom = [], []
        for u in np.linspace(0, 1, 16):
            px = inner_x + (outer_x - inner_x) * u
            py = inner_y + (outer_y - inner_y) * u - 0.035 * ry * math.sin(math.pi * u)
            t = thick * (1 - 0.55 * u)
            top.append((px, py - t / 2))
            bottom.append((px, py + t / 2))
        color = (
            _shade(self.identity.hair, 0.8)
            if sum(self.identity.hair) < 360
            else (_shade(self.identity.hair, 0.55))
        )
        draw.polygon(top + bottom[::-1], fill=color)

    def _mouth(
        self, draw: ImageDraw.ImageDraw, cx: float, my: float, rx: float, ry: float, e: Expression
    ) -> None:
        ident = self.identity
        mw = 0.4 * rx * ident.mouth_size * e.mouth_width
        lift = 0.08 * ry * e.mouth_curve
        opening = 0.16 * ry * min(e.mouth_open, 1.2)
        lip_up = 0.05 * ry * (1 - 0.55 * e.lip_press)
        lip_low = 0.065 * ry * (1 - 0.55 * e.lip_press)
        us = np.linspace(-1, 1, 31)

        def line_y(u: float) -> float:
            return my - lift * u * u + 0.02 * ry * e.mouth_curve * (1 - u * u)

        def sneer(u: float) -> float:
            return 0.05 * ry * e.sneer * max(0.0, u) ** 1.5

        up_in = [
            (cx + mw * u, line_y(u) - opening * 0.35 * (1 - u * u) ** 0.8 - sneer(u)) for u in us
        ]
        low_in = [(cx + mw * u, line_y(u) + opening * 0.65 * (1 - u * u) ** 0.8) for u in us]
        up_out = [
            (x, y - lip_up * (1 - u * u) ** 0.4 * (1 - 0.25 * math.exp(-((u / 0.12) ** 2))))
            for (x, y), u in zip(up_in, us)
        ]
        low_out = [(x, y + lip_low * (1 - u * u) ** 0.5) for (x, y), u in zip(low_in, us)]
        lip = _mix(_shade(ident.skin, 0.78), (160, 60, 70), 0.35 + 0.35 * ident.lip_tone)
        draw.polygon(up_out + low_out[::-1], fill=lip)
        if opening > 0.012 * ry or e.sneer > 0.3:
            draw.polygon(up_in + low_in[::-1], fill=(55, 18, 22))
            if e.teeth > 0:
                depth = 0.06 * ry * e.teeth
                teeth = [(x, min(y + depth, yl)) for (x, y), (_, yl) in zip(up_in, low_in)]
                draw.polygon(up_in + teeth[::-1], fill=(238, 234, 222))
        draw.line(up_in[1:-1], fill=_shade(lip, 0.55), width=max(1, int(0.008 * ry)))


def _affine(image: Image.Image, angle: float, scale: float, dx: float, dy: float) -> Image.Image:
    """Rotate by ``angle`` degrees and scale about the centre, then shift by (dx, dy) pixels."""
    n = image.size[0]
    c = n / 2
    a = math.radians(angle)
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    # Output -> input mapping for Image.transform.
    matrix = (
        cos,
        sin,
        c - cos * (c + dx) - sin * (c + dy),
        -sin,
        cos,
        c + sin * (c + dx) - cos * (c + dy),
    )
    return image.transform(
        image.size, Image.Transform.AFFINE, matrix, resample=Image.Resampling.BILINEAR
    )


def draw_face(
    emotion: str | int,
    rng: np.random.Generator,
    *,
    size: int = 224,
    identity: FaceIdentity | None = None,
    t: float = 0.0,
    noise: float | None = None,
) -> np.ndarray:
    """A (size, size, 3) uint8 RGB face showing ``emotion`` (a name or an EMOTIONS index).

    ``identity`` fixes the person and scene (sampled from ``rng`` when not given); ``t`` is the
    time in seconds within a clip (head sway and talking); ``noise`` is the sensor noise
    standard deviation in grey levels (random 2-6 when not given).
    """
    name = EMOTIONS[emotion] if isinstance(emotion, (int, np.integer)) else emotion
    if name not in EXPRESSIONS:
        raise ValueError(f"unknown emotion {emotion!r}; use one of {', '.join(EMOTIONS)}")
    identity = identity or FaceIdentity.sample(rng)
    frame = FaceRenderer(identity, size).render(EXPRESSIONS[name], t)
    return add_noise(frame, rng, rng.uniform(2, 6) if noise is None else noise)


def add_noise(frame: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Gaussian sensor noise of ``sigma`` grey levels."""
    noisy = frame.astype(np.float32) + rng.normal(0, sigma, frame.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
