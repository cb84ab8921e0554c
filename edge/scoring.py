"""`score`: run a model stage (inspector, classifier, segmenter, cascade) over files and folders and
write decisions, masks, maps, overlays."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .artifacts import OVERLAY_SUFFIX, clean_name, error_record, inspection_record, write_mask, write_overlay
from .errors import ImageError
from .imageio import write_png
from .loader import iter_batches
from .records import DecisionLog, DecisionRecord
from .score_pipeline import infer_each, run_overlapped
from .stage import Inspection, ModelStage, finish_stage, run_stage
from .supervised.rle import RleWriter


@dataclass
class ScoreSummary:
    out: Path
    counts: dict[str, int] = field(default_factory=lambda: {"OK": 0, "NG": 0, "ERROR": 0})
    records: list[DecisionRecord] = field(default_factory=list)
    first_error: str | None = None  # the first ERROR record's reason, for the command's summary line

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class OutputNames:
    """Unique, readable file stems for outputs.

    A name is the image's path relative to the common folder of everything scored, with
    separators turned into "__" (test/crack/000.png → crack__000), plus a counter on a clash.
    """

    def __init__(self, root: Path | None = None):
        self.root = root
        self.used: set[str] = set()

    def stem(self, path: Path) -> str:
        try:
            rel = path.with_suffix("").relative_to(self.root) if self.root else Path(path.stem)
        except ValueError:
            rel = Path(path.stem)
        base = "__".join(clean_name(part) for part in rel.parts) or "image"
        cand, i = base, 1
        while cand in self.used:
            cand = f"{base}_{i}"
            i += 1
        self.used.add(cand)
        return cand


def common_root(paths: list[Path]) -> Path | None:
    try:
        return Path(os.path.commonpath([str(p.parent.resolve()) for p in paths])) if paths else None
    except ValueError:
        return None


class ResultWriter:
    """Writes the artifacts of one inspection and appends its record to the decision log."""

    def __init__(self, out: Path, inspector_id: str, threshold: float, save_maps: bool = False,
                 overlays: str = "ng", names_root: Path | None = None, defect_classes: list[str] | None = None):
        self.out = out
        self.threshold = threshold
        self.save_maps = save_maps
        self.overlays = overlays  # "ng" | "all" | "none"
        self.inspector_id = inspector_id
        for sub in ("masks", "overlays") + (("maps",) if save_maps else ()):
            (out / sub).mkdir(parents=True, exist_ok=True)
        self.names = OutputNames(names_root)
        self.log = DecisionLog(out / "results.jsonl")
        self._ng = open(out / "ng_list.txt", "a")
        self._csv_file = open(out / "results.csv", "a", newline="")
        self._csv = csv.writer(self._csv_file)
        if self._csv_file.tell() == 0:
            self._csv.writerow(["ImageId", "answer", "decision", "score", "raw_score"])
        # segmenters: every defect class's mask as run-length text, one row per image and class
        self._rle = RleWriter(out / "rle.csv", defect_classes) if defect_classes else None

    def write(self, image: str, img: np.ndarray | None, res: Inspection | None, error: str | None = None
              ) -> DecisionRecord:
        """Write one inspection's files, then append its record (:meth:`files`, then :meth:`commit`)."""
        rec = self.files(image, img, res, error)
        self.commit(rec)
        return rec

    def files(self, image: str, img: np.ndarray | None, res: Inspection | None, error: str | None = None
              ) -> DecisionRecord:
        """Write the mask, maps and overlay of one inspection; its record (not yet in the log)."""
        if res is None:
            rec = error_record(image, error, self.inspector_id)
        else:
            stem = self.names.stem(Path(image).resolve())
            mask_path = None
            if res.mask is not None:
                mask_path = self.out / "masks" / f"{stem}_mask.png"
                write_mask(mask_path, res)
            class_paths = {}
            for name, m in res.class_masks.items():
                class_paths[name] = str(self.out / "masks" / f"{stem}_{clean_name(name)}_mask.png")
                write_png(class_paths[name], m)
            if self._rle is not None:
                self._rle.write(image, res.class_masks)
            map_path = None
            if self.save_maps and res.anomaly_map is not None:
                map_path = self.out / "maps" / f"{stem}.npy"
                np.save(map_path, res.anomaly_map.astype(np.float32))
            ov_path = None
            if self.overlays == "all" or (self.overlays == "ng" and res.decision == "NG"):
                ov_path = self.out / "overlays" / f"{stem}{OVERLAY_SUFFIX}"
                write_overlay(ov_path, img, res, self.threshold)
            rec = inspection_record(image, res, self.inspector_id, mask=mask_path, anomaly_map=map_path,
                                    overlay=ov_path, class_masks=class_paths)
        return rec

    def commit(self, rec: DecisionRecord) -> None:
        """Append a record (written by :meth:`files`) to the fsynced log, the NG list and the CSV."""
        image = rec.image
        self.log.append(rec)
        if rec.decision == "NG":
            self._ng.write(image + "\n")
            self._ng.flush()
            os.fsync(self._ng.fileno())
        self._csv.writerow([image, {"OK": 0, "NG": 1}.get(rec.decision, ""), rec.decision,
                            "" if rec.score is None else rec.score, "" if rec.raw_score is None else rec.raw_score])
        self._csv_file.flush()

    def close(self) -> None:
        self.log.close()
        self._ng.close()
        self._csv_file.close()
        if self._rle is not None:
            self._rle.close()


def images_per_batch(stage: ModelStage, batch_size: int) -> int:
    """Images per batch for ``batch_size`` rows of the model: a tiled image is one row per tile (a
    3872x3200 photo in 512-px windows is 56), so a batch holds batch_size // tiles images, at least one.
    Then one photo is decoded, scored and written while the model runs on the next (score_pipeline.py),
    and the activations held stay those of about ``batch_size`` rows."""
    tiling = getattr(stage, "tiling", None)
    rows = tiling.count if tiling is not None else 1
    return max(1, int(batch_size) // max(1, rows))


def score_paths(stage: ModelStage, paths: list[Path], out: str | Path, save_maps: bool = False,
                overlays: str = "ng", batch_size: int = 8, progress: Callable[[int], None] | None = None,
                keep_records: bool = True,
                on_result: Callable[[Path, np.ndarray, Inspection], None] | None = None,
                overlap: bool = True, on_error: Callable[[Path, str], None] | None = None) -> ScoreSummary:
    """Score every path and write each result; records come in input order.

    ``overlap`` (default): decoding, inference, scoring and writing run at once on bounded queues
    (score_pipeline.py); without it, one batch after another. Both write the same records.
    ``on_result`` sees each successful (path, image, inspection), e.g. for metrics; ``on_error`` each
    (path, reason) that got an ERROR record.
    ``batch_size`` counts model rows: tiled photos are batched by :func:`images_per_batch`.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = ScoreSummary(out)
    batch_size = images_per_batch(stage, batch_size)
    writer = ResultWriter(out, stage.id, stage.threshold, save_maps, overlays, common_root(paths),
                          getattr(stage, "defect_classes", None))

    def files(batch, by_image: dict) -> list[DecisionRecord]:
        recs = []
        for p, img in batch:
            if isinstance(img, ImageError):
                recs.append(writer.files(str(p), None, None, error=str(img)))
                if on_error:
                    on_error(p, str(img))
            else:
                res = by_image[id(img)]
                recs.append(writer.files(str(p), img, res))
                if on_result:
                    on_result(p, img, res)
        return recs

    def commit(recs: list[DecisionRecord]) -> None:
        for rec in recs:
            writer.commit(rec)
            summary.counts[rec.decision] += 1
            if rec.decision == "ERROR" and summary.first_error is None:
                summary.first_error = rec.error
            if keep_records:
                summary.records.append(rec)
        if progress:
            progress(len(recs))

    def handle(batch, by_image: dict) -> None:
        commit(files(batch, by_image))

    try:
        if overlap:  # the files of one batch are written while the records of the one before are fsynced
            run_overlapped(stage, iter_batches(paths, batch_size), files, commit=commit)
        else:
            for batch in iter_batches(paths, batch_size):
                good = [(p, img) for p, img in batch if not isinstance(img, ImageError)]
                try:
                    results = run_stage(stage, [img for _, img in good])
                except Exception:  # the backend refused this batch: each image alone
                    batch, singles = infer_each(stage, batch)
                    handle(batch, {id(img): finish_stage(stage, o, [img], t)[0] for img, o, t in singles})
                    continue
                handle(batch, {id(img): r for (_, img), r in zip(good, results)})
    finally:
        writer.close()
    return summary
