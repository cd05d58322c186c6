"""COCO detection annotations as one-frame tracking sequences (one per object), for training.

The authors mix COCO 2017 into training by treating every non-crowd object as a video of a single image,
so template and search come from the same picture with different jitter. COCO train2017 has ~860k
objects; building one ``Sequence`` per object up front would cost hundreds of MB, so ``CocoObjects`` keeps
compact arrays and makes each ``Sequence`` on access.
"""

from __future__ import annotations

import json
from collections.abc import Sequence as SequenceABC
from pathlib import Path

import numpy as np

from grm_ros.datasets.sequence import Sequence


class CocoObjects(SequenceABC[Sequence]):
    """Read-only list of one-frame sequences; ``objects[i]`` is object i in annotation order."""

    def __init__(
        self,
        image_dir: Path,
        files: list[str],
        image_index: np.ndarray,
        boxes: np.ndarray,
        categories: list[str],
        category_index: np.ndarray,
        ann_ids: np.ndarray,
    ) -> None:
        self.image_dir = image_dir
        self._files = files
        self._image_index = image_index
        self._boxes = boxes
        self._categories = categories
        self._category_index = category_index
        self._ann_ids = ann_ids

    def __len__(self) -> int:
        return len(self._boxes)

    def __getitem__(self, i: int) -> Sequence:  # type: ignore[override]
        if not -len(self) <= i < len(self):
            raise IndexError(f"COCO object index {i} out of range ({len(self)} objects)")
        i %= len(self)
        frame = self.image_dir / self._files[self._image_index[i]]
        return Sequence(
            name=f"coco_{int(self._ann_ids[i])}",
            frames=[frame],
            gt=self._boxes[i : i + 1].copy(),
            attributes={"category": self._categories[self._category_index[i]]},
        )


def read_coco(root: str | Path, split: str = "train2017", min_size: float = 1.0) -> CocoObjects:
    """Objects of ``<root>/annotations/instances_<split>.json`` with images in ``<root>/<split>/``.

    Crowd regions and boxes thinner than ``min_size`` px are skipped: neither is a trackable target.
    """
    root = Path(root)
    ann_path = root / "annotations" / f"instances_{split}.json"
    image_dir = root / split
    if not ann_path.is_file():
        raise FileNotFoundError(f"COCO annotation file {ann_path} not found")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"COCO image folder {image_dir} not found")
    try:
        data = json.loads(ann_path.read_text())
        images = {img["id"]: img["file_name"] for img in data["images"]}
        categories = {cat["id"]: cat["name"] for cat in data["categories"]}
        annotations = data["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{ann_path}: not a COCO instances file ({exc})") from None

    files = sorted(set(images.values()))
    file_index = {name: i for i, name in enumerate(files)}
    cat_ids = sorted(categories)
    cat_index = {cid: i for i, cid in enumerate(cat_ids)}
    rows: list[tuple[int, int, int, float, float, float, float]] = []
    for n, ann in enumerate(annotations):
        try:
            if ann.get("iscrowd", 0):
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            image_id, category_id = ann["image_id"], ann["category_id"]
            file_i, cat_i = file_index[images[image_id]], cat_index[category_id]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{ann_path}: annotation #{n} is malformed ({exc!r})") from None
        if w >= min_size and h >= min_size:
            rows.append((int(ann["id"]), file_i, cat_i, x, y, w, h))
    if not rows:
        raise ValueError(f"{ann_path}: no usable (non-crowd, >= {min_size}px) objects")
    table = np.array(rows, dtype=np.float64)
    return CocoObjects(
        image_dir=image_dir,
        files=files,
        image_index=table[:, 1].astype(np.int64),
        boxes=table[:, 3:7],
        categories=[categories[c] for c in cat_ids],
        category_index=table[:, 2].astype(np.int64),
        ann_ids=table[:, 0].astype(np.int64),
    )
