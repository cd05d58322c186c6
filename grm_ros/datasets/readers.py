"""Readers for the on-disk layouts of the common SOT benchmarks, all returning `Sequence`.

Absence is normalised so that `Sequence.visible` means the same thing everywhere: NaN rows
(uniform, UAV123), LaSOT's full_occlusion | out_of_view, GOT-10k's absence.label (and
cover.label == 0 when present). The raw flags stay in `attributes` for protocols that need them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from grm_ros.datasets.sequence import Sequence, list_images, read_boxes, read_flags

# OTB-2015 sequences whose ground truth starts after the first stored image (1-based frame).
OTB_START_FRAMES: dict[str, int] = {"David": 300}


def _pad_init_only(gt: np.ndarray, n_frames: int) -> tuple[np.ndarray, bool]:
    """Test splits (GOT-10k test, TrackingNet TEST) annotate only frame 1: pad with NaN rows."""
    if len(gt) == 1 and n_frames > 1:
        return np.vstack([gt, np.full((n_frames - 1, 4), np.nan)]), True
    return gt, False


def _check_count(path: Path, gt: np.ndarray, frames: list[Path]) -> None:
    if len(gt) != len(frames):
        raise ValueError(f"{path}: {len(gt)} boxes but {len(frames)} frames in {frames[0].parent}")


def read_uniform(seq_dir: str | Path) -> Sequence:
    """`<seq>/img/00001.jpg...` + `<seq>/groundtruth.txt` (the layout of ../shared/sot)."""
    seq_dir = Path(seq_dir)
    frames = list_images(seq_dir / "img")
    gt_path = seq_dir / "groundtruth.txt"
    gt = read_boxes(gt_path)
    _check_count(gt_path, gt, frames)
    return Sequence(seq_dir.name, frames, gt)


def read_otb(seq_dir: str | Path, target: int | None = None, start_frame: int | None = None) -> Sequence:
    """OTB: `<seq>/img/0001.jpg` + `groundtruth_rect.txt` (`groundtruth_rect.<k>.txt` for the
    two-target videos Jogging, Skating2, Human4: name becomes `<seq>-<k>`).

    `start_frame` (1-based) aligns a ground truth that starts after the first image; known
    offsets come from OTB_START_FRAMES. Any other count mismatch is an error, not a guess.
    """
    seq_dir = Path(seq_dir)
    gt_path = seq_dir / ("groundtruth_rect.txt" if target is None else f"groundtruth_rect.{target}.txt")
    gt = read_boxes(gt_path)
    images = list_images(seq_dir / "img")
    start = start_frame or OTB_START_FRAMES.get(seq_dir.name, 1)
    needed = start - 1 + len(gt)
    if len(images) < needed or (start == 1 and len(images) != len(gt)):
        raise ValueError(
            f"{gt_path}: {len(gt)} boxes starting at frame {start} do not match the {len(images)} images "
            f"in {seq_dir / 'img'} (pass start_frame= to align them)"
        )
    name = seq_dir.name if target is None else f"{seq_dir.name}-{target}"
    return Sequence(name, images[start - 1 : needed], gt, {"start_frame": start})


def read_lasot(seq_dir: str | Path) -> Sequence:
    """LaSOT: `<class>/<class-k>/img/00000001.jpg`, groundtruth.txt, full_occlusion.txt and
    out_of_view.txt (one comma-separated 0/1 line each); absent = full occlusion or out of view."""
    seq_dir = Path(seq_dir)
    frames = list_images(seq_dir / "img")
    gt_path = seq_dir / "groundtruth.txt"
    gt = read_boxes(gt_path)
    _check_count(gt_path, gt, frames)
    occl = read_flags(seq_dir / "full_occlusion.txt", len(frames)).astype(bool)
    oov = read_flags(seq_dir / "out_of_view.txt", len(frames)).astype(bool)
    attrs: dict[str, object] = {"full_occlusion": occl, "out_of_view": oov, "absent": occl | oov}
    return Sequence(seq_dir.name, frames, gt, attrs)


def read_got10k(seq_dir: str | Path) -> Sequence:
    """GOT-10k: `<split>/GOT-10k_Val_000001/00000001.jpg` + groundtruth.txt, absence.label and
    (train/val) cover.label 0..8; the toolkit scores only frames with cover > 0."""
    seq_dir = Path(seq_dir)
    frames = list_images(seq_dir)
    gt_path = seq_dir / "groundtruth.txt"
    gt, init_only = _pad_init_only(read_boxes(gt_path), len(frames))
    _check_count(gt_path, gt, frames)
    attrs: dict[str, object] = {"gt_init_only": init_only}
    if not init_only:
        absent = np.zeros(len(frames), dtype=bool)
        if (seq_dir / "absence.label").is_file():
            absent |= read_flags(seq_dir / "absence.label", len(frames)).astype(bool)
        if (seq_dir / "cover.label").is_file():
            cover = read_flags(seq_dir / "cover.label", len(frames))
            attrs["cover"] = cover
            absent |= cover == 0
        attrs["absent"] = absent
    return Sequence(seq_dir.name, frames, gt, attrs)


def read_trackingnet(chunk_dir: str | Path, name: str) -> Sequence:
    """TrackingNet: `<chunk>/frames/<name>/0.jpg, 1.jpg...` + `<chunk>/anno/<name>.txt`
    (chunk = TRAIN_k or TEST; TEST annotates frame 1 only)."""
    chunk_dir = Path(chunk_dir)
    frames = list_images(chunk_dir / "frames" / name)
    gt_path = chunk_dir / "anno" / f"{name}.txt"
    gt, init_only = _pad_init_only(read_boxes(gt_path), len(frames))
    _check_count(gt_path, gt, frames)
    return Sequence(name, frames, gt, {"gt_init_only": init_only})


def parse_uav_config(path: str | Path) -> dict[str, tuple[str, int, int]]:
    """Frame ranges of UAV123 sub-sequences from the toolkit's configSeqs.m:
    name -> (image folder name, start frame, end frame), both 1-based inclusive."""
    path = Path(path)
    pattern = re.compile(
        r"'name'\s*,\s*'([^']+)'\s*,\s*'path'\s*,\s*'([^']*)'\s*,\s*"
        r"'startFrame'\s*,\s*(\d+)\s*,\s*'endFrame'\s*,\s*(\d+)"
    )
    ranges = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if "'name'" not in line:
            continue
        m = pattern.search(line)
        if m is None:
            raise ValueError(f"{path}:{lineno}: cannot parse the sequence entry {line.strip()!r}")
        folder = Path(m.group(2).replace("\\", "/").rstrip("/")).name
        ranges[m.group(1)] = (folder, int(m.group(3)), int(m.group(4)))
    if not ranges:
        raise ValueError(f"{path}: no sequence entries")
    return ranges


def read_uav123(
    root: str | Path, name: str, ranges: Mapping[str, tuple[str, int, int]] | None = None
) -> Sequence:
    """UAV123 / UAV123_10fps: `<root>/data_seq/<set>/<video>/000001.jpg` + `<root>/anno/<set>/<name>.txt`,
    NaN rows for an absent target.

    Sub-sequences (bird1_1, car1_s...) share the images of their video; their frame ranges come
    from `ranges` (see parse_uav_config) and are required when the counts do not match.
    """
    root = Path(root)
    data = root / "data_seq" if (root / "data_seq").is_dir() else root
    anno_dir = root / "anno" if (root / "anno").is_dir() else root
    gt_path = next(anno_dir.rglob(f"{name}.txt"), anno_dir / f"{name}.txt")
    gt = read_boxes(gt_path)
    subsequence = ranges is not None and name in ranges
    folder, start, end = ranges[name] if subsequence else (name, 1, len(gt))
    frame_dir = next((p for p in data.rglob(folder) if p.is_dir()), None)
    if frame_dir is None:
        raise ValueError(f"{gt_path}: no image folder {folder!r} under {data}; "
                         "a sub-sequence needs ranges= from parse_uav_config")
    images = list_images(frame_dir)
    if end - start + 1 != len(gt) or end > len(images) or (not subsequence and len(images) != len(gt)):
        raise ValueError(
            f"{gt_path}: {len(gt)} boxes do not fit frames {start}..{end} of {frame_dir} "
            f"({len(images)} images); a sub-sequence needs ranges= from parse_uav_config"
        )
    return Sequence(name, images[start - 1 : end], gt, {"start_frame": start})


def _uniform_sequences(root: Path) -> list[Sequence]:
    return [read_uniform(p.parent) for p in sorted(root.glob("*/groundtruth.txt"))]


def _otb_sequences(root: Path) -> list[Sequence]:
    seqs = []
    for d in sorted(p for p in root.iterdir() if (p / "img").is_dir()):
        targets = sorted(int(p.name.split(".")[1]) for p in d.glob("groundtruth_rect.*.txt"))
        seqs += [read_otb(d, target=t) for t in targets] if targets else [read_otb(d)]
    return seqs


def _lasot_sequences(root: Path) -> list[Sequence]:
    gt_files = [*root.glob("*/groundtruth.txt"), *root.glob("*/*/groundtruth.txt")]
    return [read_lasot(d) for d in sorted({p.parent for p in gt_files})]


def _got10k_sequences(root: Path) -> list[Sequence]:
    listing = root / "list.txt"
    if listing.is_file():
        names = [n.strip() for n in listing.read_text().splitlines() if n.strip()]
        return [read_got10k(root / n) for n in names]
    return [read_got10k(p.parent) for p in sorted(root.glob("*/groundtruth.txt"))]


def _trackingnet_sequences(root: Path) -> list[Sequence]:
    if (root / "anno").is_dir():
        chunks = [root]
    else:
        chunks = sorted(p for p in root.iterdir() if (p / "anno").is_dir())
    return [read_trackingnet(c, a.stem) for c in chunks for a in sorted((c / "anno").glob("*.txt"))]


def _uav123_sequences(root: Path, ranges: Mapping[str, tuple[str, int, int]] | None = None) -> list[Sequence]:
    anno_dir = root / "anno" if (root / "anno").is_dir() else root
    return [read_uav123(root, p.stem, ranges) for p in sorted(anno_dir.rglob("*.txt"))]


LAYOUTS: dict[str, Callable[..., list[Sequence]]] = {
    "uniform": _uniform_sequences,
    "otb": _otb_sequences,
    "lasot": _lasot_sequences,
    "got10k": _got10k_sequences,
    "trackingnet": _trackingnet_sequences,
    "uav123": _uav123_sequences,
}


def list_sequences(root: str | Path, layout: str = "uniform", **options: object) -> list[Sequence]:
    """All sequences under a dataset root in the given layout (see LAYOUTS); `options` go to the
    layout's reader (uav123: ranges=parse_uav_config(...))."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {sorted(LAYOUTS)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} does not exist")
    seqs = LAYOUTS[layout](root, **options)
    if not seqs:
        raise ValueError(f"no {layout} sequences found under {root}")
    return seqs
