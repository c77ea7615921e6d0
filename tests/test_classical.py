"""Classical fills (``bgclean.classical``): the structure fill continues lines across a hole where
the surroundings have a dominant direction, and falls back to Telea where they have none or where
the hole runs along the lines. Quality over 48 cases is in bench/inpaint.py; here, on real pixels."""

import cv2
import numpy as np
import pytest
from conftest import photo

from bgclean import classical


def _photo(name: str, side: int = 256, top: float = 0.0) -> np.ndarray:
    """A ``side`` px square of a photo scaled to twice ``side`` on its short side, from ``top``
    (fraction of the scaled height)."""
    img = photo(name)
    s = 2 * side / min(img.shape[:2])
    a = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_LINEAR)
    y = int(top * a.shape[0])
    return np.ascontiguousarray(a[y : y + side, :side])


def _psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    d = a.astype(np.float64)[where] - b.astype(np.float64)[where]
    return 10 * np.log10(255.0**2 / max(float(np.mean(d**2)), 1e-12))


def _stripes(angle_deg: float, side: int = 160) -> np.ndarray:
    t = np.radians(angle_deg)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    v = 128 + 90 * np.sin((-xx * np.sin(t) + yy * np.cos(t)) / 5)
    return np.repeat(v[..., None], 3, 2).round().astype(np.uint8)


@pytest.mark.parametrize("angle", [0, 30, 75, 90, 135])
def test_local_direction_is_the_direction_lines_run_in(angle):
    img = _stripes(angle)
    hole = np.zeros(img.shape[:2], bool)
    hole[50:110, 65:95] = True
    ys, xs = np.nonzero(hole)
    theta, coherence = classical.local_directions(img, hole, (0, 0), hole, ys, xs)
    diff = np.abs((np.degrees(theta) - angle + 90) % 180 - 90)
    assert diff.max() < 3 and coherence.min() > 0.85, (diff.max(), coherence.min())


def test_interpolate_along_reproduces_lines_that_cross_the_hole():
    img = _stripes(30)
    hole = np.zeros(img.shape[:2], bool)
    hole[50:110, 65:95] = True
    along, span = classical.interpolate_along(img, hole, np.radians(30))
    assert np.abs(along[hole] - img[hole]).mean() < 6  # of stripes 180 levels deep
    assert span[hole].max() < 80  # every line meets known pixels on both sides within the crop


def test_structure_fill_continues_an_edge_that_telea_smears():
    """A wooden table's far edge against the dark behind it and the grain along it, a tall hole
    across both (scikit-image's ``coffee``)."""
    img = _photo("coffee")
    hole = np.zeros(img.shape[:2], bool)
    hole[40:200, 110:150] = True
    telea = classical.fill(img, hole, "telea")
    structure = classical.fill(img, hole, "structure")
    assert np.array_equal(structure[~hole], img[~hole])  # outside the hole: the image exactly
    assert structure.dtype == np.uint8 and structure.shape == img.shape
    gain = _psnr(structure, img, hole) - _psnr(telea, img, hole)
    assert gain > 2.0, gain


def test_a_hole_along_the_lines_keeps_the_diffusion_fill():
    """A long thin hole that runs with the stripes (a shadow along a court's lines): a line would
    carry its ends' colours 150 px where Telea's way across is 3 px; Telea's fill is kept."""
    img = _stripes(0)
    hole = np.zeros(img.shape[:2], bool)
    hole[78:84, 5:155] = True
    telea = classical.fill(img, hole, "telea")
    structure = classical.fill(img, hole, "structure")
    assert np.array_equal(structure, telea)


def test_no_dominant_direction_gives_telea():
    img = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 1.0)
    hole = np.zeros(img.shape[:2], bool)
    hole[30:60, 40:60] = True
    assert np.array_equal(classical.fill(img, hole, "structure"), classical.fill(img, hole, "telea"))


def test_a_hole_at_the_frame_edge_is_continued_from_one_side():
    img = _stripes(0)
    hole = np.zeros(img.shape[:2], bool)
    hole[40:120, :30] = True  # touches the left edge: lines are known on their right only
    structure = classical.fill(img, hole, "structure")
    telea = classical.fill(img, hole, "telea")
    assert _psnr(structure, img, hole) > _psnr(telea, img, hole) + 3


def test_an_unknown_method_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="telea, navier-stokes, structure"):
        classical.fill(np.zeros((8, 8, 3), np.uint8), np.ones((8, 8), bool), "blur")


def test_each_part_of_a_hole_continues_its_own_lines():
    """A hole across two regions whose lines run differently (slats above, a diagonal pattern
    below, as a person covers a bench and the pavement): each part continues the lines around it;
    one direction for the whole hole continues only one of them."""
    top, bottom = _stripes(0), _stripes(45)
    img = np.concatenate([top[:80], bottom[80:]])
    hole = np.zeros(img.shape[:2], bool)
    hole[20:140, 65:95] = True
    structure = classical.fill(img, hole, "structure")
    telea = classical.fill(img, hole, "telea")
    for part in (slice(24, 72), slice(88, 136)):  # away from the regions' border
        where = np.zeros_like(hole)
        where[part] = hole[part]
        gain = _psnr(structure, img, where) - _psnr(telea, img, where)
        assert gain > 4, (part, gain)


def test_lines_continue_up_to_the_edges_of_a_wide_hole():
    """Slats across a wide hole (a person on a bench): the lines are short against the hole's
    width everywhere, also beside its edges, where a pixel is close to the edge but the hole is as
    wide as ever (the gate once read the width as twice that distance and gave those pixels to
    Telea: pale bands along the edges)."""
    img = _stripes(0)
    hole = np.zeros(img.shape[:2], bool)
    hole[30:130, 50:110] = True
    near = hole & ~cv2.erode(hole.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    near[:38] = near[122:] = False  # beside the left and right edges only
    err = np.abs(classical.fill(img, hole, "structure").astype(int) - img.astype(int))[near].mean()
    assert err < 4, err  # of stripes 180 levels deep
    assert np.median(classical.thickness(hole)[near]) >= 16  # the distance to the edge there: 1-8
