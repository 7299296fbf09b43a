"""novic-train as users run it: data-parallel under torchrun, stopped by SIGTERM, resumed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from novic_ros.cli.train import main as train_main
from novic_ros.models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_decoder, read_meta
from novic_ros.training.train_log import LOG_FILE
from novic_ros.training.train_state import STATE_FILE, read_state

pytestmark = pytest.mark.usefixtures('one_torch_thread')

# Tiny models run single-threaded: two OpenMP threads on a shared 2-core machine stall for up to a second.
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}
TOY_RUN = ('nouns: toy\nmax_nouns: 30\nprompts_per_noun: 20\nsteps: 8\nbatch_size: 32\neval_every: 8\n'
           'checkpoint_every: 4\nlog_every: 1\nnoise: 0.5\ndecoder: {width: 32, layers: 1, heads: 2, max_tokens: 6}\n')


def losses(run) -> dict[int, float]:
    rows = [line.split(',') for line in (run / LOG_FILE).read_text().splitlines()[1:]]
    return {int(r[0]): float(r[1]) for r in rows}


def test_two_ranks_under_torchrun_train_like_one_process(tmp_path):
    """gloo on the CPU: two ranks, each half of every batch, give the single process's losses; rank 0
    writes the one checkpoint; one process resumes it."""
    cfg = tmp_path / 'toy_run.yaml'
    cfg.write_text(TOY_RUN)
    common = ['--model', 'toy', '--config', str(cfg), '--device', 'cpu', '--cache-dir', str(tmp_path / 'cache'),
              '--no-progress']
    assert train_main([*common, '--out', str(tmp_path / 'one')]) == 0
    two = tmp_path / 'two'
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                           '-m', 'novic_ros.cli.train', *common, '--out', str(two)],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in two.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE, STATE_FILE, LOG_FILE])
    meta = read_meta(two)
    assert meta.training['world_size'] == 2 and meta.training['step'] == 8
    assert read_meta(tmp_path / 'one').training['world_size'] == 1
    one_losses, two_losses = losses(tmp_path / 'one'), losses(two)
    assert list(two_losses) == list(range(1, 9))
    assert two_losses == pytest.approx(one_losses, abs=2e-3)
    assert meta.training['val_loss'] == pytest.approx(read_meta(tmp_path / 'one').training['val_loss'], abs=2e-3)

    assert train_main([*common, '--out', str(two), '--resume', '--steps', '12']) == 0
    assert read_state(two).step == 12 and read_state(two).world_size == 1
    assert list(losses(two)) == list(range(1, 13))
    dec, vocab, meta = load_decoder(two)
    assert meta.training['world_size'] == 1 and len(vocab) == dec.cfg.vocab_size


def test_sigterm_mid_run_checkpoints_and_the_run_resumes(tiny_models_file, tmp_path):
    """What systemd, Slurm and container runtimes send: the run saves its step and exits 128 + 15."""
    cfg = tmp_path / 'cfg.yaml'
    cfg.write_text(
        'nouns: toy\nmax_nouns: 20\nprompts_per_noun: 10\nsteps: 400\nbatch_size: 256\nlog_every: 5\n'
        'eval_every: 1000\ncheckpoint_every: 1000\ndecoder: {width: 32, layers: 1, heads: 2, max_tokens: 6}\n'
    )
    run = tmp_path / 'run'
    args = [sys.executable, '-m', 'novic_ros.cli.train', '--model', 'tiny', '--models-file', str(tiny_models_file),
            '--config', str(cfg), '--out', str(run), '--cache-dir', str(tmp_path / 'c'), '--no-progress']
    proc = subprocess.Popen(args, env=ENV, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300       # a hang guard, generous for a loaded machine
    while not ((run / LOG_FILE).is_file() and len((run / LOG_FILE).read_text().splitlines()) >= 2):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, 'training never started'
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    stopped = read_state(run).step
    assert 0 < stopped < 400 and 'stopped by SIGTERM at step' in err
    assert read_meta(run).training['step'] == stopped
    assert max(losses(run)) <= stopped

    resumed = subprocess.run([*args, '--resume'], env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert read_state(run).step == 400
    steps = list(losses(run))
    assert steps == list(range(5, 401, 5))
