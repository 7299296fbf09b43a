"""novic_node's /diagnostics status, published at 1 Hz in every lifecycle state: rates, latencies,
frame counts (received, processed, published, dropped, rejected by reason, lost in transport), each
camera topic's publishers and subscription, errors, the backend, model and device, the lifecycle
state and the vocabulary version; with objects, tracks and annotations; with video input, its
packets, pictures, keyframe waits and losses; LabelInfo's class count; a parameter change being
built (since when, which parameters) and the last one that failed (why); the inference worker's state,
restarts and last failure; exceptions caught in callbacks, per place; Python's garbage collector (the
objects a configure froze out of its scans, full collections and the longest pause since). OK while labelling; ERROR
while the inference worker is dead or stuck (and HEALTH_HOLD_S after it was replaced, worker.py);
WARN with the cause when an input has a problem, no frame came yet, frames were rejected or failed,
or a callback raised; the message says what the node does."""
from __future__ import annotations

import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from .messages import diagnostics_message


def _video(node) -> dict[str, str]:
    """The video cameras' counts (transport foxglove / ffmpeg): packets, pictures, keyframe waits, losses."""
    video = node.inputs.video
    if video is None:
        return {}
    v = video.stats()
    topics = {camera: h.topic for camera, h in node.inputs.health.items()}
    return {'video_packets': str(v.packets), 'video_pictures': str(v.pictures),
            'video_before_keyframe': str(v.before_keyframe), 'video_losses': str(v.losses),
            'video_skipped_after_loss': str(v.after_loss), 'video_recoveries': str(v.recoveries),
            'video_decode_errors': str(v.errors),
            **{f"video decoder {topics.get(camera, camera)}": text for camera, text in video.describe().items()}}


def diagnostics(node) -> DiagnosticArray:
    """The node's status now (reads its stats, inputs, worker counters, live settings and state)."""
    s = node.stats.snapshot(node.frames.received, node.frames.dropped)
    live, worker = node.live, node.worker
    classifier = live.classifier
    inputs, lost = node.inputs.status(time.monotonic())
    problems = [line for bad, line in inputs.values() if bad]
    health = worker.health()
    errors = node.callback_errors
    level = DiagnosticStatus.OK
    message = 'classifying'
    if node.state != 'active' or classifier is None:
        message = f"{node.state}: not labelling"
    elif health.error:
        level, message = DiagnosticStatus.ERROR, health.message
    elif problems:
        level, message = DiagnosticStatus.WARN, '; '.join(problems)
    elif s.received == 0:
        level, message = DiagnosticStatus.WARN, 'no frames received yet'
    elif s.rejected or s.errors or worker.output_errors or errors.total:
        level, message = DiagnosticStatus.WARN, (f"{s.rejected} frames rejected, {s.errors} inference errors"
                                                 + (f", {worker.output_errors} output errors"
                                                    if worker.output_errors else '')
                                                 + (f", {errors.total} callback errors (last: {errors.last})"
                                                    if errors.total else ''))
    changes = node.changes.diagnostics(time.monotonic())
    if changes['parameter_change'] != 'none':
        message += f"; a parameter change is being built ({changes['parameter_change']}), the settings before it apply"
    backend = classifier.backend if classifier is not None else None
    values = {
        'input_rate_hz': f"{s.input_rate_hz:.2f}", 'output_rate_hz': f"{s.output_rate_hz:.2f}",
        'latency_p50_ms': f"{s.latency_p50_ms:.1f}", 'latency_p95_ms': f"{s.latency_p95_ms:.1f}",
        'inference_p50_ms': f"{s.inference_p50_ms:.1f}", 'frame_age_p50_ms': f"{s.frame_age_p50_ms:.1f}",
        'frames_received': str(s.received),
        'frames_processed': str(s.processed), 'frames_published': str(s.published),
        'frames_dropped': str(s.dropped), 'frames_rejected': str(s.rejected), 'frames_lost': str(lost),
        'inference_errors': str(s.errors), 'output_errors': str(worker.output_errors),
        'overlays_published': str(worker.overlays_published), 'objects_published': str(worker.objects_published),
        'worker_state': health.state, 'worker_restarts': str(health.restarts),
        'worker_last_failure': health.last_failure or '-',
        'callback_errors': str(errors.total),
        **{f"callback_errors: {where}": str(n) for where, n in errors.snapshot().items()},
        **(node.outputs.objects.diagnostics() if node.outputs is not None and node.outputs.objects is not None else {}),
        **_video(node),
        'label_info_classes': str(len(node.label_map)) if node.label_map.active else '-',
        'backend': backend.name if backend else '-', 'backend_detail': backend.describe() if backend else '-',
        'backend_selection': getattr(backend, 'selection', '-'),     # backend auto on a CPU: what it measured
        'model': live.params.model.model, 'mode': live.params.model.mode,
        'device': str(backend.device) if backend else '-',
        'lifecycle_state': node.state, 'vocabulary_version': str(node.vocabulary.version),
        **node.gc_pauses.diagnostics(),
        **changes,
        **{f"rejected: {k}": str(v) for k, v in s.rejected_by_reason.items()},
        **{f"input {topic}": line for topic, (_, line) in inputs.items()},
    }
    return diagnostics_message(node.get_clock().now().to_msg(), level,
                               f"{node.get_fully_qualified_name()}: open-vocabulary classifier", message,
                               str(backend.device) if backend else '', values)


def failed_diagnostics(node, error: Exception) -> DiagnosticArray:
    """What goes out when diagnostics() itself fails: ERROR naming the failure, so a monitor still hears
    the node."""
    return diagnostics_message(node.get_clock().now().to_msg(), DiagnosticStatus.ERROR,
                               f"{node.get_fully_qualified_name()}: open-vocabulary classifier",
                               f"diagnostics failed: {type(error).__name__}: {error}", '',
                               {'callback_errors': str(node.callback_errors.total)})
