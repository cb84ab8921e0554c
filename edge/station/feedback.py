"""Operator feedback from the station page, kept as files a quality engineer can check:

    FEEDBACK/train/good/    parts an operator marked "this part is good" (image + .json record and note);
                            "Refit with feedback" adds them to the inspector (`fit --update`)
    FEEDBACK/test/missed/   parts an operator marked "missed defect": labelled NG for `edge-inspect
                            calibrate FEEDBACK` (add some test/good images of your own first)
    FEEDBACK/used/STAMP/    marked-good images already added by a refit
    FEEDBACK/previous-inspector/   the inspector before the last refit, for "Undo refit"
    FEEDBACK/actions.jsonl  every action: time, action, operator, note, part, inspector, result

Refit fits PaDiM inspectors only: a station running a supervised model (``[model]``) or a
cascade refuses it, saying why and what to do instead (marking parts still files them).
A refit runs in the background: the configured inspector directory is updated in place
(atomically, as `fit --update` does), then loaded beside the running one and swapped in between
batches, like SIGHUP: no frame is dropped. Undo copies the previous inspector back and swaps again.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Callable

from ..bundle import AtomicDir
from ..errors import DataError
from ..imageio import IMAGE_SUFFIXES, read_image, write_png
from ..log_format import log_event
from ..records import utc_now
from .state import StationState

log = logging.getLogger("edge.station.feedback")


class FeedbackError(DataError):
    """A feedback action cannot be done (the part is gone, nothing to refit, a refit is running)."""


class Feedback:
    def __init__(self, root: Path, state: StationState, inspector_dir: Path, reload: Callable[[], tuple[bool, str]],
                 update: Callable[[Path, list[Path]], None], no_refit: FeedbackError | None = None):
        """``reload`` swaps in what is at ``inspector_dir`` (the runtime's SIGHUP path); ``update``
        adds good images to the inspector at a path (fit --update). ``no_refit``: why this station
        cannot refit (it runs no PaDiM inspector); refit and undo raise it, marking parts still works."""
        self.no_refit = no_refit
        self.root = Path(root)
        self.state = state
        self.inspector_dir = Path(inspector_dir)
        self.reload = reload
        self.update = update
        self._lock = threading.Lock()
        self.job: dict = {"state": "idle"}  # idle | running | done | failed
        self._thread: threading.Thread | None = None

    # --- folders ------------------------------------------------------------------------------
    @property
    def good_dir(self) -> Path:
        return self.root / "train" / "good"

    @property
    def missed_dir(self) -> Path:
        return self.root / "test" / "missed"

    @property
    def previous_dir(self) -> Path:
        return self.root / "previous-inspector"

    def pending_good(self) -> list[Path]:
        if not self.good_dir.is_dir():
            return []
        return sorted(p for p in self.good_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)

    def status(self) -> dict:
        with self._lock:
            job = dict(self.job)
        return {"pending_good": len(self.pending_good()),
                "missed": len([p for p in self.missed_dir.glob("*") if p.suffix.lower() in IMAGE_SUFFIXES])
                if self.missed_dir.is_dir() else 0,
                "can_undo": self.no_refit is None and (self.previous_dir / "manifest.json").is_file(), "job": job,
                "folder": str(self.root), "refit_refused": None if self.no_refit is None else self.no_refit.message}

    def _log(self, action: str, operator: str, note: str, **fields) -> dict:
        entry = {"time": utc_now(), "action": action, "operator": operator or "", "note": note or "",
                 "inspector": self.state.inspector_id(), **fields}
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "actions.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
        log_event(log, logging.INFO, f"operator feedback: {action}", **{k: v for k, v in entry.items() if k != "time"})
        self.state.event(action, operator=entry["operator"], note=entry["note"],
                         **{k: v for k, v in fields.items() if k in ("seq", "image", "result")})
        return entry

    # --- marking parts --------------------------------------------------------------------------
    def _file_part(self, seq: int, folder: Path, action: str, operator: str, note: str) -> dict:
        part = self.state.part(seq)
        if part is None:
            raise FeedbackError(f"part {seq} is no longer held by the station page",
                                hint="the page keeps the last few hundred parts; find the image under the "
                                     "storage folder and copy it into the feedback folder by hand")
        img = None
        if part.record.saved_image and Path(part.record.saved_image).is_file():
            img = read_image(part.record.saved_image)
        else:
            img = self.state.recent_frame(seq)
        if img is None:
            raise FeedbackError(f"the image of part {seq} was not kept",
                                hint="storage keeps NG images (storage.save_ng_images); an OK part's image is "
                                     "kept with storage.ok_sample_rate > 0, or for the last few parts only")
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}_{seq:07d}"
        write_png(folder / f"{stem}.png", img)
        (folder / f"{stem}.json").write_text(json.dumps({"record": part.record.to_dict(), "action": action,
                                                         "operator": operator, "note": note, "time": utc_now()},
                                                        indent=2))
        return self._log(action, operator, note, seq=seq, image=part.record.image, file=str(folder / f"{stem}.png"))

    def mark_good(self, seq: int, operator: str = "", note: str = "") -> dict:
        return self._file_part(seq, self.good_dir, "marked good", operator, note)

    def mark_missed(self, seq: int, operator: str = "", note: str = "") -> dict:
        return self._file_part(seq, self.missed_dir, "missed defect", operator, note)

    # --- refit and undo -----------------------------------------------------------------------
    def _start(self, name: str, work: Callable[[], str], operator: str, note: str) -> dict:
        with self._lock:
            if self.job.get("state") == "running":
                raise FeedbackError(f"a {self.job['action']} is already running", hint="wait for it to finish")
            self.job = {"state": "running", "action": name, "started": utc_now()}

        def run():
            try:
                result = work()
                job = {"state": "done", "action": name, "result": result, "finished": utc_now()}
            except Exception as e:  # the running inspector stays; the page and the log say why
                job = {"state": "failed", "action": name, "result": f"{type(e).__name__}: {e}", "finished": utc_now()}
            with self._lock:
                self.job = job
            self._log(f"{name} {job['state']}", operator, note, result=job["result"])

        self._log(f"{name} started", operator, note)
        self._thread = threading.Thread(target=run, name=f"feedback-{name}", daemon=True)
        self._thread.start()
        return dict(self.job)

    def refit(self, operator: str = "", note: str = "") -> dict:
        if self.no_refit is not None:
            raise self.no_refit
        images = self.pending_good()
        if not images:
            raise FeedbackError("no part has been marked good since the last refit",
                                hint="mark NG parts that are good with \"This part is good\" first")

        def work() -> str:
            with AtomicDir(self.previous_dir, overwrite=True) as tmp:
                shutil.rmtree(tmp)
                shutil.copytree(self.inspector_dir, tmp)
            self.update(self.inspector_dir, images)
            ok, info = self.reload()
            if not ok:
                raise RuntimeError(f"the refitted inspector did not load: {info}")
            used = self.root / "used" / time.strftime("%Y%m%d-%H%M%S")
            used.mkdir(parents=True, exist_ok=True)
            for p in images:
                for q in (p, p.with_suffix(".json")):
                    if q.exists():
                        shutil.move(str(q), used / q.name)
            return f"{len(images)} images added; now inspecting with {info}"

        return self._start("refit", work, operator, note)

    def undo(self, operator: str = "", note: str = "") -> dict:
        if self.no_refit is not None:
            raise self.no_refit
        if not (self.previous_dir / "manifest.json").is_file():
            raise FeedbackError("there is no previous inspector to go back to", hint="undo works after a refit")

        def work() -> str:
            with AtomicDir(self.inspector_dir, overwrite=True) as tmp:
                shutil.rmtree(tmp)
                shutil.copytree(self.previous_dir, tmp)
            ok, info = self.reload()
            if not ok:
                raise RuntimeError(f"the previous inspector did not load: {info}")
            shutil.rmtree(self.previous_dir, ignore_errors=True)
            return f"back to {info}"

        return self._start("undo", work, operator, note)

    def wait(self, timeout: float | None = None) -> dict:
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            return dict(self.job)


def refit_refusal(model_path: str | None, cascade_source: str | None) -> FeedbackError | None:
    """Why a station cannot refit from operator feedback, or None when it runs a PaDiM inspector."""
    if model_path is not None:
        return FeedbackError(
            f"refit only fits PaDiM inspectors (fit --update with the parts marked good); this station runs the "
            f"supervised model {model_path} ([model])",
            hint="the marked parts are kept under the feedback folder (train/good, test/missed): add them to the "
                 "model's labelled folder and retrain it (edge-export train), or re-check its thresholds with "
                 "edge-inspect calibrate FOLDER --model BUNDLE")
    if cascade_source is not None:
        return FeedbackError(
            f"refit only fits a PaDiM inspector configured as [inspector]; this station runs a cascade "
            f"({cascade_source})",
            hint="update a PaDiM stage yourself: edge-inspect fit --update --good FEEDBACK/train/good --out "
                 "STAGE_DIR, then reload the station (SIGHUP)")
    return None
