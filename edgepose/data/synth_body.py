"""Articulated synthetic people: a 3-D kinematic skeleton posed in human joint ranges, projected to 2-D.

A body is built in body units (standing height = 1; x = the person's left, y = up, z = forward),
turned by a view yaw (front, three-quarter, side, back), projected orthographically and described as
capsule limbs, a torso hull, a neck and a head ellipse (`Person`); edgepose.data.synth_draw draws it,
far parts first, and into an owner map too (`owner_code(person, part)`), from which the scene derives
keypoint visibility.

Over 300 lines on purpose: the pose families, joint ranges, skeleton tables, palettes and the sampler
that reads them are one concept, and the sampler's arithmetic is pinned to the bit (see the note above
`sample_person`), so its tables are easiest to check side by side with the code.
"""

from __future__ import annotations

import bisect
import enum
import math
from dataclasses import dataclass

import cv2
import numpy as np


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


# The nine base angle ranges of every pose (degrees), drawn in one `rng.uniform` call: with array
# bounds the Generator draws one double per element, in order, through the same sampler as a scalar
# call, so this is the same stream and the same values as nine separate calls (pinned by
# tests/unit/test_synth.py::test_output_is_pinned) at about half the cost.
_BASE_RANGES = (
    ("hip_flex", -5, 10, 2), ("hip_abd", 0, 10, 2), ("knee", 0, 12, 2), ("sh_flex", -15, 25, 2),
    ("sh_abd", 3, 25, 2), ("elbow", 0, 50, 2), ("lean", -5, 8, 1), ("bend", -5, 5, 1), ("roll", -6, 6, 1),
)  # fmt: skip
_BASE_LO = np.array([lo for _, lo, _, n in _BASE_RANGES for _ in range(n)], np.float64)  # (15,)
_BASE_HI = np.array([hi for _, _, hi, n in _BASE_RANGES for _ in range(n)], np.float64)  # (15,)


def _base_index() -> dict[str, slice | int]:
    """Where each base angle sits in the (15,) draw: a slice for a (left, right) pair, else an index."""
    index: dict[str, slice | int] = {}
    i = 0
    for name, _, _, n in _BASE_RANGES:
        index[name] = slice(i, i + n) if n > 1 else i
        i += n
    return index


_BASE_INDEX = _base_index()


def _angles(rng: np.random.Generator, family: PoseFamily) -> dict[str, np.ndarray | float]:
    """Joint angles (radians) of one pose; per-side arrays are (left, right)."""
    u = rng.uniform
    r = np.radians
    base = r(u(_BASE_LO, _BASE_HI, len(_BASE_LO)))  # (15,); pairs are views, "lean" etc. float64 scalars
    a: dict[str, np.ndarray | float] = {name: base[i] for name, i in _BASE_INDEX.items()}
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


def _shade(color: list | tuple, f: float) -> tuple[int, int, int]:
    b, g, r = color
    return min(255, max(0, int(b * f))), min(255, max(0, int(g * f))), min(255, max(0, int(r * f)))


# Joints in the order of the 3-D body array's first rows (upper body, then legs); torso landmarks and
# face points follow them. Index tables below are spelled by name and resolved once at import.
_JOINTS = (
    "neck", "head", "sho0", "elb0", "wri0", "hand0", "sho1", "elb1", "wri1", "hand1",
    "hip0", "kne0", "ank0", "toe0", "hip1", "kne1", "ank1", "toe1",
)  # fmt: skip
_J = {n: i for i, n in enumerate(_JOINTS)}
_N_UPPER = 10  # rows carried by the spine's bend and lean
_TORSO_ROWS = slice(len(_JOINTS), len(_JOINTS) + 13)
_FACE_ROW = len(_JOINTS) + 13
_N_ROWS = _FACE_ROW + 5  # joints, torso hull landmarks, face points
_KP_ORDER = [f"{j}{i}" for j in ("sho", "elb", "wri", "hip", "kne", "ank") for i in (0, 1)]
_KP_ROWS = np.array([*range(_FACE_ROW, _N_ROWS), *(_J[n] for n in _KP_ORDER)])  # (17,) COCO order
# (33,) the points whose extent places the body: keypoints, torso hull, toes and head centre
_EXTENT_ROWS = np.array([*_KP_ROWS, *range(_N_ROWS)[_TORSO_ROWS], _J["toe0"], _J["toe1"], _J["head"]])
# face points in head coordinates (for a head radius of 0.062), with outward normals for the facing test
_FACE_LOCAL = np.array([[0, -0.004, 0.05], [0.018, 0.012, 0.042], [-0.018, 0.012, 0.042],
                        [0.042, 0.004, -0.004], [-0.042, 0.004, -0.004]])  # fmt: skip
_FACE_NORM = np.array([[0, 0, 1], [0.35, 0, 0.94], [-0.35, 0, 0.94], [1, 0, 0], [-1, 0, 0]])
# capsule limbs: part, from joint, to joint, thickness (x standing height x girth), clothing
_LIMBS = tuple(
    (int(part), _J[j1], _J[j2], th, cloth)
    for part, j1, j2, th, cloth in (
        (P.L_UPPER_ARM, "sho0", "elb0", 0.06, "shirt"), (P.R_UPPER_ARM, "sho1", "elb1", 0.06, "shirt"),
        (P.L_FOREARM, "elb0", "wri0", 0.047, "sleeve"), (P.R_FOREARM, "elb1", "wri1", 0.047, "sleeve"),
        (P.L_HAND, "wri0", "hand0", 0.04, "skin"), (P.R_HAND, "wri1", "hand1", 0.04, "skin"),
        (P.L_THIGH, "hip0", "kne0", 0.09, "trousers"), (P.R_THIGH, "hip1", "kne1", 0.09, "trousers"),
        (P.L_SHIN, "kne0", "ank0", 0.065, "shin"), (P.R_SHIN, "kne1", "ank1", 0.065, "shin"),
        (P.L_FOOT, "ank0", "toe0", 0.04, "shoes"), (P.R_FOOT, "ank1", "toe1", 0.04, "shoes"),
    )
)  # fmt: skip
_SKIN_L, _TROUSERS_L, _HAIR_L = _SKIN.tolist(), _TROUSERS.tolist(), _HAIR.tolist()


# sample_person is written for speed (it was the generator's largest Python cost) but must reproduce
# the published datasets bit for bit, so every rewrite in it is exact: scalar maths runs on Python
# floats, which round +, -, * and / exactly like numpy float64 scalars; elementwise array maths runs
# on whole arrays at once (the same ops per element); min, max, indexing and copies are exact; every
# matrix product (BLAS, whose summation order is its own) and every numpy trig call (SIMD, which may
# round unlike libm) is kept as it was, on operands of the same values, shapes and layout; and the
# random draws are the same calls in the same order. tests/unit/test_synth.py pins the output.
def sample_person(rng: np.random.Generator, size: int, height_frac: float, light: float) -> Person:
    """A random person of standing height `height_frac` x `size`, placed (possibly truncated) in the image."""
    family = _FAMILIES[bisect.bisect(_FAMILY_CDF, rng.random())]  # rng.choice(p=) is 10x slower
    body = _body_3d(rng, family)
    scale = height_frac * size
    view = _rot_y(body.yaw)
    q, xy = _project(body, view, scale)
    face_n_z = (_FACE_NORM @ body.head_rot.T @ view.T)[:, 2]  # (5,) normal toward the camera
    face_hidden = np.zeros(17, bool)
    face_hidden[:5] = face_n_z < _FACE_HIDE_BELOW
    s_abs = abs(math.sin(body.yaw))
    torso_key = -0.02 - 0.07 * min(1.0, max(0.0, (s_abs - 0.5) / 0.5))
    off, bottom = _place(rng, xy, family, size)
    kp = xy[_KP_ROWS] + off  # (17, 2)
    joints = (xy[: len(_JOINTS)] + off).tolist()  # (J, 2) as lists of floats
    clothes, hair = _clothes(rng)
    w = scale * body.girth  # limb thickness unit
    segments = _limb_segments(joints, q[: len(_JOINTS), 2].tolist(), clothes, w, torso_key, light)
    skin = clothes["skin"]
    neck, head_c = joints[_J["neck"]], joints[_J["head"]]
    segments.append((torso_key + 1e-3, int(P.NECK), neck, head_c, max(1.0, 0.05 * w), _shade(skin, light)))
    # the ellipse's vertical axis along the neck
    head_angle = math.degrees(math.atan2(head_c[1] - neck[1], head_c[0] - neck[0])) + 90.0
    face_dir = (view @ body.head_rot)[:, 2]  # the head's forward vector in camera coordinates
    head_axes = (scale * body.head_r[0] * (1 + 0.15 * s_abs), scale * body.head_r[1])
    head = (head_c, head_axes, head_angle, _shade(skin, light), _shade(hair, light),
            float(face_dir[0]), bool(face_dir[2] < -0.3))  # fmt: skip
    return Person(
        keypoints=kp,
        face_hidden=face_hidden,
        height_px=scale,
        depth_y=float(bottom + off[1]),
        segments=segments,
        torso=xy[_TORSO_ROWS] + off,
        torso_key=torso_key,
        torso_color=_shade(clothes["shirt"], light),
        head=head,
        eyes=np.where(face_hidden[1:3, None], np.nan, kp[1:3]),  # the eyes are keypoints 1 and 2
    )


@dataclass
class _Body:
    """A posed body in body units before the view: 3-D points and what the head and the view need."""

    points: np.ndarray  # (J + 13 + 5, 3): joints, torso hull landmarks, face points
    head_rot: np.ndarray  # (3, 3)
    head_r: tuple[float, float]  # head ellipse half-axes
    girth: float
    yaw: float  # view angle
    roll: float  # in-image rotation


def _body_3d(rng: np.random.Generator, family: PoseFamily) -> _Body:
    """Joint angles, proportions and the 3-D points of one body (pelvis at the origin)."""
    a = _angles(rng, family)
    yaw = _yaw(rng, family)
    var = [min(max(v, 0.88), 1.12) for v in rng.normal(1.0, 0.05, 8).tolist()]  # = .clip(0.88, 1.12)
    hip_w, sh_w = 0.058 * var[0], 0.102 * var[1]  # joint centres, not the outer width
    torso_len, neck_len = 0.30 * var[2], 0.045
    upper_arm, forearm = 0.18 * var[3], 0.155 * var[3]
    thigh, shin = 0.245 * var[4], 0.245 * var[4]
    head_r = (0.050 * var[5], 0.062 * var[5])
    girth = var[6]

    # the upper body is built in the spine's frame
    r_torso = _rot_x(float(a["lean"])) @ _rot_z(float(a["bend"]))
    head_rot = (
        r_torso @ _rot_y(math.radians(rng.uniform(-35, 35))) @ _rot_x(math.radians(rng.uniform(-15, 15)))
    )
    sh_flex, sh_abd, elbow = a["sh_flex"].tolist(), a["sh_abd"].tolist(), a["elbow"].tolist()
    hip_flex, hip_abd, knee = a["hip_flex"].tolist(), a["hip_abd"].tolist(), a["knee"].tolist()
    upper: list[tuple] = [(0.0, torso_len, 0.0), (0.0, torso_len + neck_len + head_r[1] * 0.9, 0.0)]
    lower: list[tuple] = []
    for i, s in enumerate((1, -1)):  # rows in _JOINTS order
        sho = (s * sh_w, torso_len - 0.025, 0.0)
        ua = _limb_dir(sh_flex[i], sh_abd[i], s)
        fa = _bend(ua, (-0.3 * s, 0.4, 1.0), elbow[i])
        elb = _add(sho, ua, upper_arm)
        wri = _add(elb, fa, forearm)
        upper += [sho, elb, wri, _add(wri, fa, 0.035)]
        hip = (s * hip_w, 0.0, 0.0)
        th = _limb_dir(hip_flex[i], hip_abd[i], s)
        sh = _bend(th, (0.0, -0.5, -1.0), knee[i])
        kne = _add(hip, th, thigh)
        ank = _add(kne, sh, shin)
        lower += [hip, kne, ank, (ank[0], ank[1] - 0.02, ank[2] + 0.065)]
    # torso hull from 3-D landmarks, so side views show the chest depth instead of the shoulder width
    g = girth
    torso = [(sh_w * 1.02, torso_len - 0.03, 0), (-sh_w * 1.02, torso_len - 0.03, 0),
             (0, torso_len, 0.05), (0, torso_len, -0.05),
             (0, 0.2, 0.08 * g), (0, 0.2, -0.07 * g),
             (0.078 * g, 0.12, 0), (-0.078 * g, 0.12, 0), (0.088 * g, 0.0, 0),
             (-0.088 * g, 0.0, 0), (0, 0.0, 0.065 * g), (0, 0.0, -0.065 * g),
             (0, -0.04, 0)]  # fmt: skip
    body = np.empty((_N_ROWS, 3))  # (J + 13 + 5, 3)
    body[:_FACE_ROW] = upper + lower + torso
    body[:_N_UPPER] = body[:_N_UPPER] @ r_torso.T  # the spine's bend and lean carry the upper body
    t0 = _TORSO_ROWS.start
    body[t0 : t0 + 10] = body[t0 : t0 + 10] @ r_torso.T
    face_local = _FACE_LOCAL * (head_r[1] / 0.062)
    body[_FACE_ROW:] = body[_J["head"]] + face_local @ head_rot.T
    return _Body(body, head_rot, head_r, girth, yaw, float(a["roll"]))


def _project(body: _Body, view: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(camera-frame points (M, 3): x right, y up, z toward the camera; image offsets (M, 2) px, y down)."""
    cr, sr = math.cos(body.roll), math.sin(body.roll)
    q = body.points @ view.T  # (M, 3)
    x, y = q[:, 0], -q[:, 1]
    xy = np.empty((_N_ROWS, 2))  # (M, 2)
    xy[:, 0] = x * cr - y * sr
    xy[:, 1] = x * sr + y * cr
    xy *= scale
    return q, xy


def _place(
    rng: np.random.Generator, xy: np.ndarray, family: PoseFamily, size: int
) -> tuple[np.ndarray, float]:
    """The offset that lands the body's extent centre uniformly in (and a little beyond) the image, and
    the body's lowest image y before it."""
    allpts = xy[_EXTENT_ROWS]  # (33, 2)
    lo, hi = allpts.min(0), allpts.max(0)
    centre = rng.uniform(-0.1, 1.1, 2) * size
    centre[1] = rng.uniform(0.15, 0.95) * size if family is not PoseFamily.LYING else centre[1]
    return centre - (lo + hi) / 2, hi[1]


def _clothes(rng: np.random.Generator) -> tuple[dict[str, list[float]], list[int]]:
    """Colour of each clothing slot (BGR floats), and the hair colour.

    A palette row times a float: int * float rounds as numpy's int64 -> float64 * float.
    """
    row, f = _SKIN_L[rng.integers(len(_SKIN_L))], rng.uniform(0.9, 1.1)
    skin = [c * f for c in row]
    shirt = cv2.cvtColor(np.uint8([[[rng.integers(0, 180), rng.integers(40, 255), rng.integers(60, 250)]]]),
                         cv2.COLOR_HSV2BGR)[0, 0].astype(float).tolist()  # fmt: skip
    row, f = _TROUSERS_L[rng.integers(len(_TROUSERS_L))], rng.uniform(0.8, 1.2)
    trousers = [c * f for c in row]
    shoes = [30.0 * rng.uniform(0.5, 3)] * 3
    hair = _HAIR_L[rng.integers(len(_HAIR_L))]
    long_sleeves, shorts = rng.random() < 0.5, rng.random() < 0.25
    clothes = {"shirt": shirt, "sleeve": shirt if long_sleeves else skin, "skin": skin, "trousers": trousers,
               "shin": skin if shorts else trousers, "shoes": shoes}  # fmt: skip
    return clothes, hair


def _limb_segments(
    joints: list, z: list[float], clothes: dict[str, list[float]], w: float, torso_key: float, light: float
) -> list:
    """The limb capsules, each keyed by its depth `z` toward the camera (far ones drawn first, in shadow)."""
    segments = []
    for order, (part, j1, j2, th, cloth) in enumerate(_LIMBS):
        key = max(z[j1], z[j2]) + 1e-4 * order
        shade = 0.78 if key < torso_key else 1.0  # far-side limbs in shadow
        colour = _shade(clothes[cloth], shade * light)
        segments.append((key, part, joints[j1], joints[j2], max(1.0, th * w), colour))
    return segments
