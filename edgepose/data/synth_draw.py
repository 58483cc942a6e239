"""Drawing a sampled person (edgepose.data.synth_body.Person) into the image and the owner map."""

from __future__ import annotations

import math

import cv2
import numpy as np

from edgepose.data.synth_body import P, Person, owner_code

SHIFT = 4  # cv2 sub-pixel drawing: coordinates are multiplied by 2**SHIFT
_ONE = 1 << SHIFT


def _pt(p: list | tuple) -> tuple[int, int]:
    return int(p[0] * _ONE + 0.5), int(p[1] * _ONE + 0.5)


def draw_person(img: np.ndarray, owner: np.ndarray, person: Person, index: int, outline: bool) -> None:
    """Draw `person` into `img` (BGR) and its part codes into `owner`, far parts first.

    The head is drawn last: a hand never covers the face (a simplification the labels agree with).
    """
    items = [(s[0], 1, s) for s in person.segments] + [(person.torso_key, 0, None)]
    items.sort(key=lambda t: (t[0], t[1]))
    dark = 0.55  # outline brightness
    code0 = owner_code(index, 0)
    for _, kind, seg in items:
        if kind == 0:
            hull = cv2.convexHull(np.round(person.torso * _ONE).astype(np.int32))
            cv2.fillConvexPoly(img, hull, person.torso_color, cv2.LINE_AA, SHIFT)
            if outline:
                col = tuple(int(c * dark) for c in person.torso_color)
                cv2.polylines(img, [hull], True, col, 1, cv2.LINE_AA, SHIFT)
            cv2.fillConvexPoly(owner, hull, code0 + P.TORSO, cv2.LINE_8, SHIFT)
            continue
        _, part, (x1, y1), (x2, y2), th, col = seg
        a = int(x1 * _ONE + 0.5), int(y1 * _ONE + 0.5)  # _pt, inlined: ~50 calls per person
        b = int(x2 * _ONE + 0.5), int(y2 * _ONE + 0.5)
        t = max(1, round(th))
        edged = outline and t >= 3
        cb, cg, cr = col
        if edged:
            cv2.line(img, a, b, (int(cb * dark), int(cg * dark), int(cr * dark)), t + 2, cv2.LINE_AA, SHIFT)
        cv2.line(img, a, b, col, t, cv2.LINE_AA, SHIFT)
        if t >= 4:  # a highlight along the limb: a cylinder, not a flat band
            hi = min(255, int(cb * 1.18 + 12)), min(255, int(cg * 1.18 + 12)), min(255, int(cr * 1.18 + 12))
            ox, oy, ht = -0.18 * t, -0.12 * t, max(1, int(t * 0.35))
            cv2.line(img, _pt((x1 + ox, y1 + oy)), _pt((x2 + ox, y2 + oy)), hi, ht, cv2.LINE_AA, SHIFT)
        cv2.line(owner, a, b, code0 + part, t + 2 if edged else t, cv2.LINE_8, SHIFT)
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
        for ex, ey in person.eyes.tolist():
            if not math.isnan(ex):
                cv2.circle(img, (round(ex), round(ey)), r, (25, 25, 25), -1, cv2.LINE_AA)


def owner_box(person: Person, size: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), clipped to the image: a box holding every owner pixel draw_person writes.

    Conservative, not tight: the owner map gets lines of thickness <= th + 3 px (round(th) + 2 when
    outlined) around the segments, the torso hull, and the head ellipse (semi-axes rounded to 1/16 px);
    each rasterises within 1 px of its exact shape. The pad below covers all of them with a margin.
    """
    pts = [p for s in person.segments for p in (s[2], s[3])] + person.torso.tolist()
    centre, axes = person.head[0], person.head[1]
    pad = max(max(s[4] for s in person.segments) + 3, 2 * max(axes[0], axes[1])) + 4
    xs = [p[0] for p in pts] + [centre[0]]
    ys = [p[1] for p in pts] + [centre[1]]
    x0, y0 = max(0, math.floor(min(xs) - pad)), max(0, math.floor(min(ys) - pad))
    x1, y1 = min(size, math.ceil(max(xs) + pad) + 1), min(size, math.ceil(max(ys) + pad) + 1)
    return x0, y0, x1, y1
