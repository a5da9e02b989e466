"""Where a video's segments keep their finished frames, and the work folder made ready for them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from nst_batch.context import region_trims, style_trims
from nst_batch.ledger import Ledger, input_identity
from nst_batch.regions import identity_now
from nst_batch.media.atomic import write_text_atomic
from nst_batch.settings import Job, settings_hash
from nst_batch.video.geometry import Segment

__all__ = ["prepare_video_work", "segment_dir", "segment_ledger"]


def prepare_video_work(job: Job, src: Path, work: Path) -> None:
    """Make `work` ready for a video's segments; frames saved under other settings or input are thrown away.

    Call it once per video before its segments run (they may run at once, on several workers).
    """
    digest = settings_hash(job.settings, job.styles, extra={"video": identity_now(job, src) or input_identity(src)},
                           trimmed=style_trims(job), regions=job.regions, region_trims=region_trims(job))
    meta = work / "meta.json"
    if meta.exists() and json.loads(meta.read_text()).get("hash") != digest:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not meta.exists():
        write_text_atomic(meta, json.dumps({"hash": digest}))


def segment_dir(work: Path, seg: Segment) -> Path:
    """Each segment records its frames in a ledger of its own (segments may run at once), beside its overlap frames."""
    return work if seg.first == 0 else work / "segments" / f"{seg.first:06d}"


def segment_ledger(work: Path, seg: Segment) -> Ledger:
    return Ledger(segment_dir(work, seg))
