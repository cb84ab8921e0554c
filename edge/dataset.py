"""MVTec-AD-layout category folders, the native dataset layout::

    CATEGORY/train/good/*.png
    CATEGORY/test/<kind>/*.png            kind "good" or a defect name
    CATEGORY/ground_truth/<kind>/<name>_mask.png
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import DataError
from .imageio import list_images


@dataclass(frozen=True)
class TestItem:
    path: Path
    kind: str  # "good" or a defect kind
    mask: Path | None  # ground truth, None for good images (or when missing)

    @property
    def is_defect(self) -> bool:
        return self.kind != "good"


@dataclass(frozen=True)
class Category:
    root: Path
    train_good: list[Path]
    test: list[TestItem]

    @property
    def kinds(self) -> list[str]:
        return sorted({t.kind for t in self.test})


def load_category(root: str | Path, need_train: bool = True) -> Category:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder")
    train_dir, test_dir = root / "train" / "good", root / "test"
    if need_train and not train_dir.is_dir():
        raise DataError(f"{root} has no train/good folder",
                        hint="expected MVTec layout: CATEGORY/train/good, CATEGORY/test/<kind>, "
                             "CATEGORY/ground_truth/<kind>/<name>_mask.png")
    if not test_dir.is_dir():
        raise DataError(f"{root} has no test folder",
                        hint="expected CATEGORY/test/good and CATEGORY/test/<defect kind> folders")
    train = list_images([train_dir]) if train_dir.is_dir() else []
    test = []
    for kdir in sorted(p for p in test_dir.iterdir() if p.is_dir()):
        for img in list_images([kdir], recursive=False):
            mask = None
            if kdir.name != "good":
                cand = root / "ground_truth" / kdir.name / f"{img.stem}_mask.png"
                mask = cand if cand.is_file() else None
            test.append(TestItem(img, kdir.name, mask))
    if not test:
        raise DataError(f"{test_dir} holds no images")
    if need_train and not train:
        raise DataError(f"{train_dir} holds no images")
    return Category(root, train, test)
