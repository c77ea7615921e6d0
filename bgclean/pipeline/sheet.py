"""Before/after contact sheets: a PNG that shows a person what a run did."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bgclean import io


def _pick(info: io.MediaInfo, count: int) -> list[int]:
    total = info.frame_count or 1
    if total <= count:
        return list(range(total))
    return [int(round(i * (total - 1) / (count - 1))) for i in range(count)]


def _frames_at(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    wanted = set(indices)
    found = {}
    for f in io.read_frames(io.probe(path)):
        if f.index in wanted:
            found[f.index] = f.rgb if f.rgb.dtype == np.uint8 else (f.rgb / 257).round().astype(np.uint8)
        if len(found) == len(wanted):
            break
    return found


def overlay_mask(rgb: np.ndarray, mask: np.ndarray, color=(255, 0, 64), opacity: float = 0.45) -> np.ndarray:
    """Tint the masked pixels of an (H,W,3) uint8 image and outline the mask's edge."""
    import cv2

    out = rgb.astype(np.float32)
    m = mask.astype(bool)
    out[m] = out[m] * (1 - opacity) + np.array(color, np.float32) * opacity
    out = out.round().astype(np.uint8)
    contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, color, 1)
    return out


def contact_sheet(rows: list[list[np.ndarray]], labels: list[str], path: Path, max_width: int = 1600) -> Path:
    """Write rows of equally sized (H,W,3) uint8 RGB tiles as one PNG with column labels."""
    import cv2

    h, w = rows[0][0].shape[:2]
    cols = len(rows[0])
    scale = min(1.0, max_width / (w * cols))
    tw, th = max(1, int(w * scale)), max(1, int(h * scale))
    band = 22
    sheet = np.full((band + th * len(rows), tw * cols, 3), 255, np.uint8)
    for c, label in enumerate(labels):
        cv2.putText(sheet, label, (c * tw + 6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            small = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_AREA)
            sheet[band + r * th : band + (r + 1) * th, c * tw : (c + 1) * tw] = small
    ok, buf = cv2.imencode(".png", sheet[:, :, ::-1])
    if not ok:
        raise RuntimeError("could not encode the contact sheet")
    io.write_bytes_atomic(Path(path), buf.tobytes())
    return Path(path)


def before_after_sheet(input: Path, output: Path, path: Path, count: int = 4,
                       masks_dir: Path | None = None) -> Path:
    """Sheet of ``count`` evenly spaced frames: input | (mask overlay) | output."""
    info = io.probe(input)
    idx = _pick(info, count)
    before, after = _frames_at(input, idx), _frames_at(output, idx)
    rows, labels = [], ["input"] + (["mask"] if masks_dir else []) + ["bgclean output"]
    mask_files = sorted(Path(masks_dir).glob("*.png"), key=lambda p: io.natural_key(p.name)) if masks_dir else []
    for i in idx:
        row = [before[i]]
        if masks_dir:
            row.append(overlay_mask(before[i], io.read_image(mask_files[i]).rgb[:, :, 0] > 0))
        row.append(after[i][: before[i].shape[0], : before[i].shape[1]])
        rows.append(row)
    return contact_sheet(rows, labels, path)
