"""train_log.csv beside the checkpoint: one row every log_every steps."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from ..atomic_file import atomic_write_text

LOG_FILE = 'train_log.csv'
COLUMNS = ('step', 'loss', 'lr', 'val_loss', 'val_inversion_acc', 'seconds', 'samples_per_s')


class TrainLog:
    """Appends rows. A resumed run first drops the rows logged after its checkpoint (a run killed
    between checkpoints logged steps it will train again), so steps stay unique and in order."""

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(path)
        kept = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline='') as f:
                kept = [r for r in csv.DictReader(f) if r.get('step', '').isdigit() and int(r['step']) <= resume_step]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, COLUMNS, extrasaction='ignore', restval='')
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.path, buf.getvalue())
        self._file = open(self.path, 'a', newline='')
        self._writer = csv.DictWriter(self._file, COLUMNS, restval='')

    def write(self, **row) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> 'TrainLog':
        return self

    def __exit__(self, *exc) -> None:
        self.close()
