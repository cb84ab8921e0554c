"""`score`'s overlap: decoding, inference, scoring and writing on their own threads with bounded
queues, as in the line runtime, so the end-to-end time approaches the model's own time.

    loader threads ─▶ [main: preprocess + backend] ─q─▶ [score: Mahalanobis, maps, decision]
                   ─q─▶ [write: masks, maps, overlays] ─q─▶ [commit: fsynced records, NG list, CSV]

The records get a thread of their own because each is fsynced (~4 ms on the benchmark VM, twice for
an NG image with its NG-list line): on the write thread that wait held up the next image's files
(~7 ms of 58 per 256-px image on the loaded VM); now it overlaps them. A record is still appended only
after its image's files are written, and in input order.

Each queue of images holds at most ``depth`` batches, so memory stays bounded. Every stage is a
single thread taking batches in order, so records come out in input order, identical to the
sequential loop's (tested). An exception in any stage stops the others and is raised in the
caller; what was scored before it is still written and recorded.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable

from .errors import ImageError
from .stage import ModelStage, finish_stage, infer_stage

_END = object()


class _Stop(Exception):
    pass


def run_overlapped(stage: ModelStage, batches: Iterable[list], handle: Callable[[list, dict], object],
                   depth: int = 2, commit: Callable[[object], None] | None = None) -> None:
    """For each batch of (path, image-or-ImageError): infer here, score on one thread, then
    ``handle(batch, {id(image): Inspection})`` on another, in order; with ``commit``, what ``handle``
    returned goes to ``commit`` on a fourth thread, in order."""
    to_score: queue.Queue = queue.Queue(depth)
    to_write: queue.Queue = queue.Queue(depth)
    to_commit: queue.Queue = queue.Queue()  # records only (small): the write thread never waits on it
    failed: list[BaseException] = []
    stop = threading.Event()

    def put(q: queue.Queue, item) -> None:
        while True:
            if stop.is_set():
                raise _Stop
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(q: queue.Queue):
        while True:
            if stop.is_set():
                raise _Stop
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue

    def guarded(loop: Callable[[], None]) -> Callable[[], None]:
        """A stage's body: a stop from elsewhere ends it quietly; its own failure stops the others."""
        def run() -> None:
            try:
                loop()
            except _Stop:
                pass
            except BaseException as e:
                failed.append(e)
                stop.set()
        return run

    def score_loop():
        while (item := get(to_score)) is not _END:
            batch, good, outputs, timings, singles = item
            if singles is None:
                results = finish_stage(stage, outputs, [img for _, img in good], timings) if good else []
                done = {id(img): r for (_, img), r in zip(good, results)}
            else:  # the batch was inferred image by image
                done = {id(img): finish_stage(stage, o, [img], t)[0] for img, o, t in singles}
            put(to_write, (batch, done))
        put(to_write, _END)

    def write_one(item) -> None:
        done = handle(*item)
        if commit is not None:
            to_commit.put(done)

    def write_loop():
        try:
            while (item := get(to_write)) is not _END:
                write_one(item)
        except _Stop:  # another stage failed: what was scored before it is still written
            for item in _drain(to_write):
                write_one(item)
        if commit is not None:
            to_commit.put(_END)

    def commit_loop():
        try:
            while (item := get(to_commit)) is not _END:
                commit(item)
        except _Stop:  # another stage failed: the records of the files written before it are committed
            writer.join()
            for item in _drain(to_commit):
                commit(item)

    def infer_loop():  # on the caller's thread
        for batch in batches:
            good = [(p, img) for p, img in batch if not isinstance(img, ImageError)]
            try:
                outputs, timings = infer_stage(stage, [img for _, img in good]) if good else (None, {})
            except Exception:  # the backend refused this batch: each image alone (see infer_each)
                batch, singles = infer_each(stage, batch)
                put(to_score, (batch, [], None, {}, singles))
                continue
            put(to_score, (batch, good, outputs, timings, None))
        put(to_score, _END)

    writer = threading.Thread(target=guarded(write_loop), name="score-write", daemon=True)
    threads = [threading.Thread(target=guarded(score_loop), name="score-score", daemon=True), writer]
    if commit is not None:
        threads.append(threading.Thread(target=guarded(commit_loop), name="score-commit", daemon=True))
    for t in threads:
        t.start()
    try:
        guarded(infer_loop)()
    finally:
        for t in threads:
            t.join()
    if failed:
        raise failed[0]


def _drain(q: queue.Queue):
    """What is left in ``q`` up to its end marker, without waiting."""
    while True:
        try:
            item = q.get_nowait()
        except queue.Empty:
            return
        if item is _END:
            return
        yield item


def infer_each(stage: ModelStage, batch: list) -> tuple[list, list]:
    """After a batch failed in the backend: infer its images one at a time. An image that still fails
    becomes an :class:`ImageError` value in the returned batch (so it gets an ERROR record saying why);
    the others are returned as (image, outputs, timings) for :func:`finish_stage`."""
    out, singles = [], []
    for p, img in batch:
        if not isinstance(img, ImageError):
            try:
                singles.append((img, *infer_stage(stage, [img])))
            except ImageError as e:  # the stage refused the image itself (e.g. the capture check)
                img = ImageError(f"{p}: {e}")
            except Exception as e:
                img = ImageError(f"{p}: inference failed: {type(e).__name__}: {e}")
        out.append((p, img))
    return out, singles
