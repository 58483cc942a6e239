"""Articulated synthetic people: a 3-D kinematic skeleton posed in human joint ranges, projected to 2-D.

A body is built in body units (standing height = 1; x = the person's left, y = up, z = forward),
turned by a view yaw (front, three-quarter, side, back), projected orthographically and drawn as
capsule limbs, a torso hull, a neck and a head ellipse, far parts first. Every part is drawn into
an owner map too (`owner_code(person, part)`), from which the scene derives keypoint visibility.
"""

from __future__ import annotations

import bisect
import enum
import math
from dataclasses import dataclass

import cv2
import numpy as np

SHIFT = 4  # cv2 sub-pixel drawing: coordinates are multiplied by 2**SHIFT
_ONE = 1 << SHIFT


class Part(enum.IntEnum):
    TORSO = 0
    NECK = 1
    HEAD = 2
    L_UPPER_ARM = 3
    R_UPPER_ARM = 4
    L_FOREARM = 5
    R_FOREARM = 6
    L_HAND = 7
    R_HAND = 8
    L_THIGH = 9
    R_THIGH = 10
    L_SHIN = 11
    R_SHIN = 12
    L_FOOT = 13
    R_FOOT = 14


PARTS_PER_PERSON = 16
OCCLUDER_CODE = 255  # owner-map value of foreground distractors; 0 = background


def owner_code(person: int, part: int) -> int:
    """Owner-map value of `part` of person `person` (uint8: at most 9 people x 16 parts)."""
    return 1 + person * PARTS_PER_PERSON + part


# The parts on which each COCO keypoint counts as seen: a keypoint covered by another part of its own
# body (a far arm behind the torso) is self-occluded, v=1.
P = Part
KEYPOINT_PARTS: tuple[tuple[int, ...], ...] = (
    (P.HEAD,), (P.HEAD,), (P.HEAD,), (P.HEAD,), (P.HEAD,),
    (P.L_UPPER_ARM,), (P.R_UPPER_ARM,),
    (P.L_UPPER_ARM, P.L_FOREARM), (P.R_UPPER_ARM, P.R_FOREARM),
    (P.L_FOREARM, P.L_HAND), (P.R_FOREARM, P.R_HAND),
    (P.L_THIGH,), (P.R_THIGH,),
    (P.L_THIGH, P.L_SHIN), (P.R_THIGH, P.R_SHIN),
    (P.L_SHIN, P.L_FOOT), (P.R_SHIN, P.R_FOOT),
)  # fmt: skip


# A face point is hidden when its outward normal points this far away from the camera: the nose and eyes
# as soon as they turn away, an ear only once the head has turned ~40 degrees away from it.
_FACE_HIDE_BELOW = np.array([-0.1, -0.1, -0.1, -0.65, -0.65])


class PoseFamily(enum.Enum):
    STANDING = "standing"
    WALKING = "walking"
    SITTING = "sitting"
    CROUCHING = "crouching"
    ARMS_RAISED = "arms_raised"
    LYING = "lying"


_FAMILIES = list(PoseFamily)
_FAMILY_CDF = np.cumsum([0.24, 0.24, 0.14, 0.08, 0.18, 0.12]).tolist()[:-1]

# colours are BGR, like every image here
_SKIN = np.array(
    [[180, 198, 224], [140, 160, 190], [95, 120, 150], [70, 90, 120], [50, 65, 90], [35, 45, 60]]
)
_TROUSERS = np.array(
    [[120, 70, 40], [40, 40, 40], [90, 90, 90], [100, 140, 170], [60, 50, 110], [30, 60, 30]]
)
_HAIR = np.array([[20, 20, 20], [30, 45, 70], [60, 90, 140], [120, 170, 210], [150, 150, 150], [25, 25, 60]])


@dataclass
class Person:
    """A projected person: image-space joints (pixels) and what is needed to draw it."""

    keypoints: np.ndarray  # (17, 2) px
    face_hidden: np.ndarray  # (17,) bool: a face point turned away from the camera
    height_px: float  # standing height in pixels (the scale)
    depth_y: float  # lowest image y of the body: nearer people stand lower and are drawn later
    segments: list  # (key, part, p1 (2,), p2 (2,), thickness px, colour) capsules
    torso: np.ndarray  # (M, 2) px hull
    torso_key: float
    torso_color: tuple
    head: tuple  # (center (2,), axes (2,), angle deg, colour, hair colour, hair angle deg, back view)
    eyes: np.ndarray  # (2, 2) px of visible eyes (rows of NaN when hidden)


def _rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_x(a: float) -> np.ndarray:  # positive: the top tips forward (+z)
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]]).T


def _rot_z(a: float) -> np.ndarray:  # positive: the top tips to the person's right (-x)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _sign(rng: np.random.Generator) -> int:
    return 1 if rng.random() < 0.5 else -1


def _limb_dir(flex: float, abd: float, side: float) -> tuple[float, float, float]:
    """Unit direction of a limb hanging down, abducted sideways by `abd`, then swung forward by `flex`."""
    # plain floats: numpy's per-call overhead dominates on 3-vectors
    dx, dy = side * math.sin(abd), -math.cos(abd)
    return dx, dy * math.cos(flex), -dy * math.sin(flex)


def _bend(u: tuple, pref: tuple, angle: float) -> tuple[float, float, float]:
    """Rotate unit `u` by `angle` toward `pref` (the hinge's bending side)."""
    d = pref[0] * u[0] + pref[1] * u[1] + pref[2] * u[2]
    b = (pref[0] - d * u[0], pref[1] - d * u[1], pref[2] - d * u[2])
    n = math.sqrt(b[0] * b[0] + b[1] * b[1] + b[2] * b[2])
    if n < 1e-6:
        return u
    c, s = math.cos(angle), math.sin(angle) / n
    return c * u[0] + s * b[0], c * u[1] + s * b[1], c * u[2] + s * b[2]


def _add(p: tuple, d: tuple, k: float) -> tuple[float, float, float]:
    return p[0] + k * d[0], p[1] + k * d[1], p[2] + k * d[2]


def _angles(rng: np.random.Generator, family: PoseFamily) -> dict[str, np.ndarray | float]:
    """Joint angles (radians) of one pose; per-side arrays are (left, right)."""
    u = rng.uniform
    r = np.radians
    a: dict[str, np.ndarray | float] = {
        "hip_flex": r(u(-5, 10, 2)), "hip_abd": r(u(0, 10, 2)), "knee": r(u(0, 12, 2)),
        "sh_flex": r(u(-15, 25, 2)), "sh_abd": r(u(3, 25, 2)), "elbow": r(u(0, 50, 2)),
        "lean": r(u(-5, 8)), "bend": r(u(-5, 5)), "roll": r(u(-6, 6)),
    }  # fmt: skip
    if family is PoseFamily.WALKING:
        amp, phase = r(u(15, 35)), u(0, 2 * math.pi)
        swing = amp * np.array([math.sin(phase), -math.sin(phase)])
        a["hip_flex"] = swing
        a["knee"] = r(u(5, 15, 2)) + np.clip(-swing, 0, None) * u(0.8, 1.6)
        a["sh_flex"] = -swing * u(0.6, 1.2)
        a["sh_abd"] = r(u(3, 15, 2))
        a["elbow"] = r(u(10, 50, 2))
        a["lean"] = r(u(0, 10))
    elif family is PoseFamily.SITTING:
        a["hip_flex"], a["knee"] = r(u(70, 100, 2)), r(u(65, 110, 2))
        a["hip_abd"] = r(u(0, 15, 2))
        a["sh_flex"], a["elbow"] = r(u(0, 40, 2)), r(u(30, 95, 2))
        a["lean"] = r(u(-10, 15))
    elif family is PoseFamily.CROUCHING:
        a["hip_flex"], a["knee"] = r(u(70, 115, 2)), r(u(95, 140, 2))
        a["hip_abd"] = r(u(5, 25, 2))
        a["sh_flex"], a["elbow"] = r(u(10, 60, 2)), r(u(10, 90, 2))
        a["lean"] = r(u(15, 40))
    elif family is PoseFamily.ARMS_RAISED:
        for side in range(2):
            mode = int(rng.integers(3)) if side == 0 or rng.random() < 0.7 else 3
            if mode == 0:  # overhead
                a["sh_flex"][side], a["sh_abd"][side] = r(u(140, 178)), r(u(0, 25))
                a["elbow"][side] = r(u(0, 40))
            elif mode == 1:  # sideways
                a["sh_flex"][side], a["sh_abd"][side] = r(u(-10, 20)), r(u(70, 115))
                a["elbow"][side] = r(u(0, 30))
            elif mode == 2:  # waving
                a["sh_flex"][side], a["sh_abd"][side] = r(u(0, 40)), r(u(55, 110))
                a["elbow"][side] = r(u(60, 125))
    elif family is PoseFamily.LYING:
        a["knee"] = r(u(0, 60, 2))
        a["hip_flex"] = r(u(-5, 40, 2))
        a["sh_abd"], a["sh_flex"] = r(u(0, 70, 2)), r(u(-10, 60, 2))
        a["roll"] = r(u(65, 115)) * _sign(rng)
    return a


def _yaw(rng: np.random.Generator, family: PoseFamily) -> float:
    """View yaw: 0 = facing the camera, +-90 = seen from the side, 180 = from the back."""
    k = rng.random()
    if k < 0.38:
        deg = rng.uniform(-30, 30)
    elif k < 0.58:
        deg = rng.uniform(30, 60) * _sign(rng)
    elif k < 0.88:
        deg = rng.uniform(65, 105) * _sign(rng)
    else:
        deg = 180 + rng.uniform(-30, 30)
    if family is PoseFamily.SITTING and abs(deg) < 25:  # thighs point at the camera: turn a little
        deg += 25 * np.sign(deg + 1e-3)
    return math.radians(deg)


def _shade(color, f: float) -> tuple[int, int, int]:
    return tuple(min(255, max(0, int(c * f))) for c in color)


def sample_person(rng: np.random.Generator, size: int, height_frac: float, light: float) -> Person:
    """A random person of standing height `height_frac` x `size`, placed (possibly truncated) in the image."""
    family = _FAMILIES[bisect.bisect(_FAMILY_CDF, rng.random())]  # rng.choice(p=) is 10x slower
    a = _angles(rng, family)
    yaw = _yaw(rng, family)
    var = rng.normal(1.0, 0.05, 8).clip(0.88, 1.12)
    hip_w, sh_w = 0.058 * var[0], 0.102 * var[1]  # joint centres, not the outer width
    torso_len, neck_len = 0.30 * var[2], 0.045
    upper_arm, forearm = 0.18 * var[3], 0.155 * var[3]
    thigh, shin = 0.245 * var[4], 0.245 * var[4]
    head_r = np.array([0.050, 0.062]) * var[5]
    girth = var[6]

    # --- 3-D joints in body units (pelvis at the origin); the upper body is built in the spine's frame
    r_torso = _rot_x(float(a["lean"])) @ _rot_z(float(a["bend"]))
    head_rot = (
        r_torso @ _rot_y(math.radians(rng.uniform(-35, 35))) @ _rot_x(math.radians(rng.uniform(-15, 15)))
    )
    upper: dict[str, tuple] = {
        "neck": (0.0, torso_len, 0.0),
        "head": (0.0, torso_len + neck_len + head_r[1] * 0.9, 0.0),
    }
    lower: dict[str, tuple] = {}
    for i, s in enumerate((1, -1)):
        sho = (s * sh_w, torso_len - 0.025, 0.0)
        ua = _limb_dir(float(a["sh_flex"][i]), float(a["sh_abd"][i]), s)
        fa = _bend(ua, (-0.3 * s, 0.4, 1.0), float(a["elbow"][i]))
        upper[f"sho{i}"] = sho
        upper[f"elb{i}"] = elb = _add(sho, ua, upper_arm)
        upper[f"wri{i}"] = wri = _add(elb, fa, forearm)
        upper[f"hand{i}"] = _add(wri, fa, 0.035)
        hip = (s * hip_w, 0.0, 0.0)
        th = _limb_dir(float(a["hip_flex"][i]), float(a["hip_abd"][i]), s)
        sh = _bend(th, (0.0, -0.5, -1.0), float(a["knee"][i]))
        lower[f"hip{i}"] = hip
        lower[f"kne{i}"] = kne = _add(hip, th, thigh)
        lower[f"ank{i}"] = ank = _add(kne, sh, shin)
        lower[f"toe{i}"] = (ank[0], ank[1] - 0.02, ank[2] + 0.065)
    # face points in head coordinates, with outward normals for the facing test
    face_local = np.array([[0, -0.004, 0.05], [0.018, 0.012, 0.042], [-0.018, 0.012, 0.042],
                           [0.042, 0.004, -0.004], [-0.042, 0.004, -0.004]])  # fmt: skip
    face_local *= head_r[1] / 0.062
    face_norm = np.array([[0, 0, 1], [0.35, 0, 0.94], [-0.35, 0, 0.94], [1, 0, 0], [-1, 0, 0]])
    # torso hull from 3-D landmarks, so side views show the chest depth instead of the shoulder width
    t = np.array([[sh_w * 1.02, torso_len - 0.03, 0], [-sh_w * 1.02, torso_len - 0.03, 0],
                  [0, torso_len, 0.05], [0, torso_len, -0.05],
                  [0, 0.2, 0.08 * girth], [0, 0.2, -0.07 * girth],
                  [0.078 * girth, 0.12, 0], [-0.078 * girth, 0.12, 0], [0.088 * girth, 0.0, 0],
                  [-0.088 * girth, 0.0, 0], [0, 0.0, 0.065 * girth], [0, 0.0, -0.065 * girth],
                  [0, -0.04, 0]])  # fmt: skip
    names = list(upper) + list(lower)
    n_up = len(upper)
    body = np.array(list(upper.values()) + list(lower.values()) + t.tolist())  # (J + 13, 3)
    body[:n_up] = body[:n_up] @ r_torso.T  # the spine's bend and lean carry the upper body
    body[len(names) : len(names) + 10] = body[len(names) : len(names) + 10] @ r_torso.T
    head_c = body[1]
    body = np.concatenate([body, head_c + face_local @ head_rot.T])  # (J + 13 + 5, 3)

    view = _rot_y(yaw)
    roll = float(a["roll"])
    cr, sr = math.cos(roll), math.sin(roll)
    scale = height_frac * size
    q = body @ view.T  # (M, 3) camera frame: x right, y up, z toward the camera
    x, y = q[:, 0], -q[:, 1]
    xy = np.stack([x * cr - y * sr, x * sr + y * cr], 1) * scale  # (M, 2) image offsets, y down
    nj = len(names)
    P2 = dict(zip(names, xy[:nj], strict=True))
    Z = dict(zip(names, q[:nj, 2].tolist(), strict=True))
    torso_xy = xy[nj : nj + 13]
    face_xy = xy[nj + 13 :]
    face_n_z = (face_norm @ head_rot.T @ view.T)[:, 2]  # (5,) normal toward the camera
    order = [f"{j}{i}" for j in ("sho", "elb", "wri", "hip", "kne", "ank") for i in (0, 1)]
    kp = np.concatenate([face_xy, xy[[names.index(n) for n in order]]])  # (17, 2)
    face_hidden = np.zeros(17, bool)
    face_hidden[:5] = face_n_z < _FACE_HIDE_BELOW

    s_abs = abs(math.sin(yaw))
    torso_key = -0.02 - 0.07 * min(1.0, max(0.0, (s_abs - 0.5) / 0.5))

    # --- place: the body's extent centre lands uniformly in (and a little beyond) the image
    allpts = np.concatenate([kp, torso_xy, np.stack([P2["toe0"], P2["toe1"], P2["head"]])])
    lo, hi = allpts.min(0), allpts.max(0)
    centre = rng.uniform(-0.1, 1.1, 2) * size
    centre[1] = rng.uniform(0.15, 0.95) * size if family is not PoseFamily.LYING else centre[1]
    off = centre - (lo + hi) / 2
    kp, torso_xy = kp + off, torso_xy + off
    for n in names:
        P2[n] = P2[n] + off

    # --- colours
    skin = _SKIN[rng.integers(len(_SKIN))] * rng.uniform(0.9, 1.1)
    shirt = cv2.cvtColor(np.uint8([[[rng.integers(0, 180), rng.integers(40, 255), rng.integers(60, 250)]]]),
                         cv2.COLOR_HSV2BGR)[0, 0].astype(float)  # fmt: skip
    trousers = _TROUSERS[rng.integers(len(_TROUSERS))] * rng.uniform(0.8, 1.2)
    shoes = np.array([30.0, 30, 30]) * rng.uniform(0.5, 3)
    hair = _HAIR[rng.integers(len(_HAIR))].astype(float)
    long_sleeves, shorts = rng.random() < 0.5, rng.random() < 0.25
    skin, shirt, trousers, shoes, hair = (c.tolist() for c in (skin, shirt, trousers, shoes, hair))
    w = scale * girth
    limbs = [
        (P.L_UPPER_ARM, "sho0", "elb0", 0.06, shirt), (P.R_UPPER_ARM, "sho1", "elb1", 0.06, shirt),
        (P.L_FOREARM, "elb0", "wri0", 0.047, shirt if long_sleeves else skin),
        (P.R_FOREARM, "elb1", "wri1", 0.047, shirt if long_sleeves else skin),
        (P.L_HAND, "wri0", "hand0", 0.04, skin), (P.R_HAND, "wri1", "hand1", 0.04, skin),
        (P.L_THIGH, "hip0", "kne0", 0.09, trousers), (P.R_THIGH, "hip1", "kne1", 0.09, trousers),
        (P.L_SHIN, "kne0", "ank0", 0.065, skin if shorts else trousers),
        (P.R_SHIN, "kne1", "ank1", 0.065, skin if shorts else trousers),
        (P.L_FOOT, "ank0", "toe0", 0.04, shoes), (P.R_FOOT, "ank1", "toe1", 0.04, shoes),
    ]  # fmt: skip
    segments = []
    for order, (part, n1, n2, th, col) in enumerate(limbs):
        key = max(Z[n1], Z[n2]) + 1e-4 * order
        shade = 0.78 if key < torso_key else 1.0  # far-side limbs in shadow
        segments.append(
            (key, int(part), P2[n1].tolist(), P2[n2].tolist(), max(1.0, th * w), _shade(col, shade * light))
        )
    segments.append(
        (torso_key + 1e-3, int(P.NECK), P2["neck"], P2["head"], max(1.0, 0.05 * w), _shade(skin, light))
    )
    hv = P2["head"] - P2["neck"]
    head_angle = math.degrees(math.atan2(hv[1], hv[0])) + 90.0  # ellipse's vertical axis along the neck
    face_dir = (view @ head_rot)[:, 2]  # the head's forward vector in camera coordinates
    head_axes = scale * head_r * np.array([1 + 0.15 * s_abs, 1.0])
    head = (P2["head"], head_axes, head_angle, _shade(skin, light), _shade(hair, light),
            float(face_dir[0]), face_dir[2] < -0.3)  # fmt: skip
    eyes = face_xy[1:3] + off
    eyes = np.where(face_hidden[1:3, None], np.nan, eyes)
    return Person(
        keypoints=kp,
        face_hidden=face_hidden,
        height_px=scale,
        depth_y=float(allpts[:, 1].max() + off[1]),
        segments=segments,
        torso=torso_xy,
        torso_key=torso_key,
        torso_color=_shade(shirt, light),
        head=head,
        eyes=eyes,
    )


def _pt(p) -> tuple[int, int]:
    return int(p[0] * _ONE + 0.5), int(p[1] * _ONE + 0.5)


def draw_person(img: np.ndarray, owner: np.ndarray, person: Person, index: int, outline: bool) -> None:
    """Draw `person` into `img` (BGR) and its part codes into `owner`, far parts first.

    The head is drawn last: a hand never covers the face (a simplification the labels agree with).
    """
    items = [(s[0], 1, s) for s in person.segments] + [(person.torso_key, 0, None)]
    items.sort(key=lambda t: (t[0], t[1]))
    dark = 0.55  # outline brightness
    for _, kind, seg in items:
        if kind == 0:
            hull = cv2.convexHull(np.round(person.torso * _ONE).astype(np.int32))
            cv2.fillConvexPoly(img, hull, person.torso_color, cv2.LINE_AA, SHIFT)
            if outline:
                col = tuple(int(c * dark) for c in person.torso_color)
                cv2.polylines(img, [hull], True, col, 1, cv2.LINE_AA, SHIFT)
            cv2.fillConvexPoly(owner, hull, owner_code(index, P.TORSO), cv2.LINE_8, SHIFT)
            continue
        _, part, p1, p2, th, col = seg
        a, b = _pt(p1), _pt(p2)
        t = max(1, round(th))
        if outline and t >= 3:
            cv2.line(img, a, b, tuple(int(c * dark) for c in col), t + 2, cv2.LINE_AA, SHIFT)
        cv2.line(img, a, b, col, t, cv2.LINE_AA, SHIFT)
        if t >= 4:  # a highlight along the limb: a cylinder, not a flat band
            hi = tuple(min(255, int(c * 1.18 + 12)) for c in col)
            ox, oy = -0.18 * t, -0.12 * t
            cv2.line(
                img,
                _pt((p1[0] + ox, p1[1] + oy)),
                _pt((p2[0] + ox, p2[1] + oy)),
                hi,
                max(1, int(t * 0.35)),
                cv2.LINE_AA,
                SHIFT,
            )
        cv2.line(
            owner, a, b, owner_code(index, part), t + (2 if outline and t >= 3 else 0), cv2.LINE_8, SHIFT
        )
    centre, axes, angle, skin, hair, face_x, back = person.head
    c = _pt(centre)
    ax = (max(1, round(axes[0] * _ONE)), max(1, round(axes[1] * _ONE)))
    cv2.ellipse(img, c, ax, angle, 0, 360, hair if back else skin, -1, cv2.LINE_AA, SHIFT)
    if not back and axes[1] >= 3:  # hair over the head, the face a smaller ellipse lower and toward the view
        cv2.ellipse(img, c, ax, angle, 0, 360, hair, -1, cv2.LINE_AA, SHIFT)
        th = math.radians(angle)
        dx, dy = 0.15 * face_x * axes[0], 0.2 * axes[1]  # in the head's frame
        fc = (
            centre[0] + dx * math.cos(th) - dy * math.sin(th),
            centre[1] + dx * math.sin(th) + dy * math.cos(th),
        )
        fax = (max(1, round(axes[0] * 0.82 * _ONE)), max(1, round(axes[1] * 0.8 * _ONE)))
        cv2.ellipse(img, _pt(fc), fax, angle, 0, 360, skin, -1, cv2.LINE_AA, SHIFT)
    if outline:
        cv2.ellipse(img, c, ax, angle, 0, 360, tuple(int(v * dark) for v in skin), 1, cv2.LINE_AA, SHIFT)
    cv2.ellipse(owner, c, ax, angle, 0, 360, owner_code(index, P.HEAD), -1, cv2.LINE_8, SHIFT)
    if axes[1] >= 6:
        r = max(1, int(axes[1] * 0.12))
        for e in person.eyes:
            if not np.isnan(e[0]):
                cv2.circle(img, (round(e[0]), round(e[1])), r, (25, 25, 25), -1, cv2.LINE_AA)
