"""Contact sheets of a sweep: per input, every combination's output in one labelled grid (a PNG).

Rows go by the first swept key's values, columns by the combinations of the others; each cell is the
output's thumbnail (a video's: three frames, first, middle and last, side by side), its values written
beneath. A combination not made yet is a grey cell that says so. Written beside the sweep's outputs
(`ROOT/contact-sheets/INPUT.png`) and shown in `report.html`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from nst_batch.errors import NstBatchError
from nst_batch.ledger import Ledger
from nst_batch.media.images import read_thumbnail, resize_longest, write_image
from nst_batch.media.video import frames_at, read_frames
from nst_batch.plan import plan_job, state_dir
from nst_batch.results import VideoMetrics
from nst_batch.settings import Job

__all__ = ["Cell", "Sheet", "contact_sheets"]

CELL = 200  # px, the longest side of a cell's picture
LABEL = 34  # px of label band beneath each cell
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Cell:
    values: tuple[tuple[str, str], ...]  # (key, value) in the sweep's order
    output: Path
    done: bool
    frames: int = 0  # a video's frames, as its ledger record says


@dataclass(frozen=True)
class Sheet:
    of: str  # the job that was swept
    key: str  # the input, as its outputs are keyed
    path: Path  # the PNG
    cells: tuple[Cell, ...]  # row by row


def contact_sheets(jobs: Sequence[Job], *, draw: bool = True) -> list[Sheet]:
    """The sheets of every swept job among `jobs`; with `draw`, (re)written as PNGs (else only described)."""
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        if job.sweep is not None:
            groups.setdefault(job.sweep.of, []).append(job)
    sheets = []
    for of, members in groups.items():
        try:
            plans = [plan_job(job) for job in members]
        except NstBatchError:
            continue  # an input gone: the report says so in the jobs' own sections
        ledgers = [Ledger(state_dir(job)) for job in members]
        for unit in plans[0].units:
            cells = []
            for job, plan, ledger in zip(members, plans, ledgers):
                dst = next((u.dst for u in plan.units if u.key == unit.key), None)
                if dst is None or job.sweep is None:
                    continue
                record = ledger.records.get(unit.key, {})
                frames = VideoMetrics.from_record(record.get("metrics") or {}).frames if unit.kind == "video" else 0
                cells.append(Cell(job.sweep.values, dst, record.get("status") == "done" and dst.exists(), frames))
            root = members[0].sweep.root if members[0].sweep else members[0].output
            path = root / "contact-sheets" / f"{_slug(str(Path(unit.key).with_suffix('')))}.png"
            sheet = Sheet(of=of, key=unit.key, path=path, cells=tuple(cells))
            if draw:
                _draw(sheet, video=unit.kind == "video")
            sheets.append(sheet)
    return sheets


def _draw(sheet: Sheet, *, video: bool) -> None:
    first_key = sheet.cells[0].values[0][0] if sheet.cells and sheet.cells[0].values else ""
    rows: dict[str, list[Cell]] = {}
    for cell in sheet.cells:
        rows.setdefault(dict(cell.values).get(first_key, ""), []).append(cell)
    pictures = [[_picture(cell, video=video) for cell in row] for row in rows.values()]
    width = max((p.shape[1] for row in pictures for p in row), default=CELL)
    height = max((p.shape[0] for row in pictures for p in row), default=CELL)
    cols = max((len(row) for row in rows.values()), default=1)
    gutter = 8
    grid = np.full((len(rows) * (height + LABEL + gutter) + gutter, cols * (width + gutter) + gutter, 3), 255,
                   dtype=np.uint8)
    for r, (row_cells, row_pictures) in enumerate(zip(rows.values(), pictures)):
        for c, (cell, picture) in enumerate(zip(row_cells, row_pictures)):
            y, x = gutter + r * (height + LABEL + gutter), gutter + c * (width + gutter)
            grid[y:y + picture.shape[0], x:x + picture.shape[1]] = picture
            for line, text in enumerate(_label_lines(cell, width)):
                cv2.putText(grid, text, (x, y + height + 14 + 14 * line), _FONT, 0.4, (40, 40, 40), 1, cv2.LINE_AA)
    write_image(sheet.path, grid)


def _picture(cell: Cell, *, video: bool) -> np.ndarray:
    if not cell.done:
        blank = np.full((CELL * 3 // 4, CELL, 3), 225, dtype=np.uint8)
        cv2.putText(blank, "not made yet", (10, CELL * 3 // 8), _FONT, 0.5, (90, 90, 90), 1, cv2.LINE_AA)
        return blank
    if not video:
        return resize_longest(read_thumbnail(cell.output, CELL), CELL)
    n = cell.frames or 1
    small = [resize_longest(frame, CELL // 2) for _, frame in frames_at(read_frames(cell.output), {0, n // 2, n - 1})]
    h = min(f.shape[0] for f in small)
    return np.concatenate([f[:h] for f in small], axis=1)



def _label_lines(cell: Cell, width: int) -> list[str]:
    """The cell's values, `key=value` each, wrapped to the cell's width (two lines at most)."""
    words = [f"{k}={v}" for k, v in cell.values]
    per_line = max(1, width // 7)  # ~7 px a character at this font size
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= per_line:
            lines[-1] += " " + word
        else:
            lines.append(word[:per_line])
    return list(itertools.islice(lines, 2))


def _slug(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
