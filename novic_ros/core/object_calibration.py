"""Thresholds of the multi-object mode calibrated per CLIP model: config/object_calibration.yaml
maps the fingerprint of a model's weights (the one decoder checkpoints and bundles carry) to the
`min_similarity` and `min_score` that gave the best set-level F1 on held-out multi-object images.

Why per model: the CLIP check compares a window with its label's prompt by cosine similarity, and
each CLIP model has its own scale (matching pairs score about 0.8 with the toy CLIP, about 0.3
with OpenAI's ViT-B/32). `python tools/objects_study.py --calibrate` measures a model's
values and prints its entry. A model without one gets no CLIP check and min_score 0.5.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..paths import config_path
from .errors import ModelLoadError

AUTO = -1.0                    # a parameter left at this takes the calibrated value
UNCALIBRATED_MIN_SCORE = 0.5


@dataclass(frozen=True)
class ObjectCalibration:
    min_score: float
    min_similarity: float
    note: str = ''             # what it was calibrated on, and when


def load_calibrations(path: str | os.PathLike | None = None) -> dict[str, ObjectCalibration]:
    path = Path(path) if path else config_path('object_calibration.yaml')
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
        return {str(k): ObjectCalibration(float(v['min_score']), float(v['min_similarity']), str(v.get('note', '')))
                for k, v in data.items()}
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelLoadError(f"object calibration file {path} is malformed ({type(e).__name__}: {e}); each entry "
                             "maps a CLIP fingerprint to min_score and min_similarity") from None


def resolve_thresholds(min_score: float, min_similarity: float, fingerprint: str,
                       path: str | os.PathLike | None = None) -> tuple[float, float, str]:
    """(min_score, min_similarity, where they came from): values left at AUTO take the calibration of
    the CLIP model with this fingerprint, or the uncalibrated defaults (0.5, no CLIP check)."""
    if min_score != AUTO and min_similarity != AUTO:
        return min_score, min_similarity, 'set'
    cal = load_calibrations(path).get(fingerprint) if fingerprint else None
    if cal is None:
        return (UNCALIBRATED_MIN_SCORE if min_score == AUTO else min_score,
                0.0 if min_similarity == AUTO else min_similarity,
                f"no calibration for CLIP weights {fingerprint or '(unknown)'}")
    return (cal.min_score if min_score == AUTO else min_score,
            cal.min_similarity if min_similarity == AUTO else min_similarity, f"calibrated: {cal.note}")
