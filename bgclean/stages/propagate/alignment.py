"""Aligning one frame onto another: camera motion (tracked corners, ORB features, homographies), dense
flow after it, and exposure."""

from __future__ import annotations

import numpy as np


def corner_shift(h: np.ndarray, width: int, height: int) -> float:
    """Largest displacement (px) of the image corners under homography ``h``."""
    import cv2

    corners = np.array([[0, 0], [width, 0], [0, height], [width, height]], np.float32).reshape(-1, 1, 2)
    return float(np.abs(cv2.perspectiveTransform(corners, h) - corners).max())


def orb_features(gray: np.ndarray, valid: np.ndarray, max_features: int = 1500):
    """ORB keypoints and descriptors of a grey frame, found only where ``valid`` (background)."""
    import cv2

    return cv2.ORB_create(max_features).detectAndCompute(gray, valid.astype(np.uint8) * 255)


def homography_from_features(src, dst) -> np.ndarray | None:
    """Homography mapping pixel coordinates of the frame of ``src`` features to those of ``dst``
    (both from ``orb_features``); None when too few consistent matches. MAGSAC++ (OpenCV USAC):
    far faster than RANSAC on frame pairs with few inliers, and a fill closer to the truth under zoom."""
    import cv2

    (kp1, d1), (kp2, d2) = src, dst
    if d1 is None or d2 is None or len(kp1) < 12 or len(kp2) < 12:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(d1, d2)
    if len(matches) < 12:
        return None
    p1 = np.array([kp1[m.queryIdx].pt for m in matches], np.float32)
    p2 = np.array([kp2[m.trainIdx].pt for m in matches], np.float32)
    h, inliers = cv2.findHomography(p1, p2, cv2.USAC_MAGSAC, 2.0)
    if h is None or inliers is None or inliers.sum() < 10:
        return None
    return h


def estimate_homography(src_gray: np.ndarray, dst_gray: np.ndarray, src_valid: np.ndarray, dst_valid: np.ndarray,
                        max_features: int = 1500) -> np.ndarray | None:
    """Homography mapping ``src`` pixel coordinates to ``dst``, from ORB features found only where
    ``*_valid`` (background) is true; None when too few consistent matches."""
    return homography_from_features(orb_features(src_gray, src_valid, max_features),
                                    orb_features(dst_gray, dst_valid, max_features))


def good_corners(gray: np.ndarray, valid: np.ndarray, count: int = 400) -> np.ndarray | None:
    """Up to ``count`` Shi-Tomasi corners (N,1,2) float32 of a grey frame's background ``valid``."""
    import cv2

    return cv2.goodFeaturesToTrack(gray, count, 0.01, 5, mask=valid.astype(np.uint8) * 255)


def track_refined(src_gray: np.ndarray, dst_gray: np.ndarray, dst_valid: np.ndarray, homography: np.ndarray,
                  corners: np.ndarray | None) -> np.ndarray:
    """``homography`` (source -> destination frame) refit to the source's background ``corners``
    (``good_corners``) tracked into the destination with pyramidal Lucas-Kanade, starting where the
    homography puts them. ORB keypoints sit on whole pixels of their pyramid level: on the
    synthetic clips at 432x240 their homographies were off by a median 0.2-0.6 px and by over 1 px
    in 13-35% of the pairs; refit to tracked corners, the median fell to 0.03-0.17 px and the pairs
    off by over 1 px to 0-8%. The homography as given when too few corners track."""
    refined, _ = track_fit(src_gray, dst_gray, dst_valid, homography, corners)
    return homography if refined is None else refined


def track_fit(src_gray: np.ndarray, dst_gray: np.ndarray, dst_valid: np.ndarray, homography: np.ndarray,
              corners: np.ndarray | None) -> tuple[np.ndarray | None, float]:
    """``track_refined``'s fit: (the refit homography or None when too few corners track, the
    share of the corners that it fits within 1 px)."""
    import cv2

    if corners is None or len(corners) < 12:
        return None, 0.0
    guess = cv2.perspectiveTransform(corners, homography)
    found, status, _ = cv2.calcOpticalFlowPyrLK(
        src_gray, dst_gray, corners, guess.copy(), winSize=(15, 15), maxLevel=3,
        flags=cv2.OPTFLOW_USE_INITIAL_FLOW, criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 0.01))
    h, w = dst_gray.shape
    ok = status[:, 0] == 1
    fx = np.clip(found[:, 0, 0].round().astype(int), 0, w - 1)
    fy = np.clip(found[:, 0, 1].round().astype(int), 0, h - 1)
    ok &= dst_valid[fy, fx]  # a corner that lands on a person tracked the person
    if ok.sum() < 12:
        return None, 0.0
    refined, inliers = cv2.findHomography(corners[ok], found[ok], cv2.USAC_MAGSAC, 1.0)
    if refined is None or inliers is None or inliers.sum() < 10:
        return None, 0.0
    return refined, float(inliers.sum()) / len(corners)


def _gray(img: np.ndarray) -> np.ndarray:
    """(H,W,3) float RGB in [0,1] → (H,W) uint8 grey."""
    import cv2

    return cv2.cvtColor((img * 255).clip(0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def flow_sigma(height: int, width: int) -> float:
    """Width (px) of the normalised convolution that carries flow into the holes, for a frame of
    this size (a sixteenth of the shorter side, at least 4 px)."""
    return max(4.0, min(height, width) / 16)


def residual_flow(warped: np.ndarray | None, warped_visible: np.ndarray, target: np.ndarray, target_visible: np.ndarray,
                  max_shift: float = 6.0, sigma: float | None = None,
                  target_gray: np.ndarray | None = None, warped_gray: np.ndarray | None = None) -> np.ndarray | None:
    """Dense flow (H,W,2) from the target frame to a homography-warped source (both H,W,3 float in
    [0,1]): target pixel p shows what the warped source shows at p + flow(p). Measured with OpenCV
    DIS where both see background, carried into the holes by normalised convolution of width
    ``sigma`` px (default ``flow_sigma`` of this image; pass the whole frame's for a crop of it):
    the background behind a person moves like the background around them. Shifts beyond
    ``max_shift`` px are distrusted. ``target_gray``: the target as 8-bit grey, when the caller has
    it (one target, many sources); ``warped_gray``: the warped source's, likewise (``warped`` may
    then be None). None when too little is seen by both."""
    import cv2

    h, w = target.shape[:2]
    g_t = _gray(target) if target_gray is None else target_gray
    if warped_gray is None:
        if warped is None:
            raise ValueError("residual_flow needs the warped source or its grey")
        warped_gray = _gray(warped)
    g_s = warped_gray
    both = target_visible & warped_visible
    if both.mean() < 0.2:
        return None
    g_s = np.where(both, g_s, g_t)  # no flow is invented from a person's pixels
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    flow = dis.calc(g_t, g_s, None)
    ok = both & (np.abs(flow[..., 0]) < max_shift) & (np.abs(flow[..., 1]) < max_shift)
    wgt = cv2.erode(ok.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
    sigma = flow_sigma(h, w) if sigma is None else sigma
    # normalised convolution at a quarter of the size: the blur is wide, so nothing is lost, and
    # it costs a sixteenth
    q = 4 if min(h, w) >= 64 else 1
    small = (max(1, w // q), max(1, h // q))
    stack = np.dstack([flow * wgt[..., None], wgt[..., None]])
    stack = cv2.resize(stack, small, interpolation=cv2.INTER_AREA) if q > 1 else stack
    stack = cv2.GaussianBlur(stack, (0, 0), sigma / q)
    stack = cv2.resize(stack, (w, h), interpolation=cv2.INTER_LINEAR) if q > 1 else stack
    den = stack[..., 2]
    smooth = stack[..., :2] / np.maximum(den, 1e-3)[..., None]
    smooth[den < 1e-3] = 0
    return np.ascontiguousarray(smooth)


def refine_by_flow(warped: np.ndarray, warped_visible: np.ndarray, target: np.ndarray, target_visible: np.ndarray,
                   max_shift: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Align a homography-warped source (H,W,3 float in [0,1]) to the target frame with
    ``residual_flow``, where one homography does not fit (parallax, lens distortion, chained
    drift). Returns (aligned, visible)."""
    import cv2

    flow = residual_flow(warped, warped_visible, target, target_visible, max_shift)
    if flow is None:
        return warped, warped_visible.astype(np.uint8)
    h, w = target.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    aligned = cv2.remap(warped.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    vis = cv2.remap(warped_visible.astype(np.uint8), mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    return aligned, vis


def padded_box(ys: np.ndarray, xs: np.ndarray, h: int, w: int, margin: float) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the bounding box of pixels (ys, xs) grown by ``margin`` px and by half its
    own size on each side, inside an h x w frame."""
    by0, by1, bx0, bx1 = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    my, mx = int(max(margin, (by1 - by0) / 2)), int(max(margin, (bx1 - bx0) / 2))
    return max(0, by0 - my), min(h, by1 + my), max(0, bx0 - mx), min(w, bx1 + mx)


def exposure_ring(target_visible: np.ndarray, ring: int = 12) -> np.ndarray:
    """(H,W) bool: background pixels of the target within ``ring`` px of its holes."""
    import cv2

    hole = (~target_visible).astype(np.uint8)
    band = cv2.dilate(hole, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring + 1,) * 2)) > 0
    return band & target_visible


def exposure_gains(warped: np.ndarray, warped_visible: np.ndarray, target: np.ndarray,
                   ring: tuple[np.ndarray, np.ndarray]) -> np.ndarray | None:
    """Per-channel gain (3,) that matches a warped source's exposure to the target's around the
    holes (auto-exposure and white balance drift while the camera moves): the median ratio over the
    target's background pixels ``ring`` (ys, xs: a band outside its holes, ``exposure_ring``, or a
    sample of it) that the source sees too. None when the gains are within 1% of 1 or too few pixels
    tell; clipped to [0.5, 2]."""
    ys, xs = ring
    both = warped_visible[ys, xs]
    if both.sum() < 50:
        return None
    t, s = target[ys[both], xs[both]].astype(np.float32), warped[ys[both], xs[both]].astype(np.float32)
    ok = (s > 0.04) & (t > 0.04) & (s < 0.96) & (t < 0.96)  # ratios of dark or clipped pixels lie
    gains = np.array([np.median(t[ok[:, c], c] / s[ok[:, c], c]) if ok[:, c].sum() > 30 else 1.0
                      for c in range(3)], np.float32)
    gains = np.clip(gains, 0.5, 2.0)
    return None if np.abs(gains - 1).max() < 0.01 else gains
