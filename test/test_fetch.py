"""novic-fetch against a small HTTP server on 127.0.0.1 started here: cut connections and resume,
servers that ignore Range, lie about sizes or send too much, corrupt zips, wrong hashes, unsafe
members, offline use, and after every failure nothing half-written in the cache."""
from __future__ import annotations

import hashlib
import io
import random
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from novic_ros.cli import fetch as fetch_cli
from novic_ros.downloads import http_download, safe_unzip
from novic_ros.downloads.catalog import RELEASES, find_release
from novic_ros.downloads.http_download import DownloadError, DownloadLimits, OfflineError, download
from novic_ros.downloads.release_cache import ChecksumError, plan, recorded_hashes, verify_fetched_file
from novic_ros.downloads.safe_unzip import MANIFEST, UnpackError, unpack_zip

FAST = DownloadLimits(timeout_s=5, retries=4, backoff_s=0)
YE2 = find_release('ye2')


def release_zip(release=YE2, payload: bytes = b'', extra: dict | None = None) -> bytes:
    """A zip laid out as the authors' release: RUN/CHUNK.train (here: stand-in bytes, not a real checkpoint)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(release.train_file, payload or random.Random(0).randbytes(1_000_000))   # incompressible: a 1 MB zip
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


class Server:
    """Serves `files` (path -> bytes) with Range support, plus per-path misbehaviour:
    cut: cut the next N responses after `cut_at` bytes; no_range: answer 200 to a Range request;
    length: announce this Content-Length; no_length: send no Content-Length and close to end;
    extra: append these bytes beyond what was announced."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut = 0
        self.cut_at = 100_000
        self.no_range = False
        self.length: int | None = None
        self.no_length = False
        self.extra = b''
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                rng = self.headers.get('Range')
                server.requests.append((self.path, rng))
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                if rng and not server.no_range:
                    start = int(rng.split('=')[1].split('-')[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header('Content-Range', f'bytes */{len(data)}')
                        self.send_header('Content-Length', '0')
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
                else:
                    self.send_response(200)
                body = data[start:]
                if not server.no_length:
                    self.send_header('Content-Length', str(server.length if server.length is not None else len(body)))
                self.send_header('Connection', 'close')
                self.end_headers()
                if server.cut:
                    server.cut -= 1
                    self.wfile.write(body[:server.cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body + server.extra)

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
        self.thread.start()
        self.base = f'http://127.0.0.1:{self.httpd.server_address[1]}'

    def url(self, name: str) -> str:
        return f'{self.base}/{name}'

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture()
def cache(tmp_path, monkeypatch, server):
    root = tmp_path / 'checkpoints'
    monkeypatch.setenv('NOVIC_CHECKPOINTS', str(root))
    monkeypatch.setenv('NOVIC_RELEASE_URL', server.base)
    return root


def leftovers(root: Path) -> list[str]:
    """Anything in the cache that is not a finished result: partial downloads, temporary folders, locks."""
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob('*')
                  if '.tmp' in p.name or p.name.endswith(('.part', '.part.json'))
                  or (p.name.endswith('.lock') and p.parent.name != '.locks'))    # .locks/ holds the flock files


def serve_release(server: Server, release=YE2, **kw) -> bytes:
    data = release_zip(release, **kw)
    server.files['/' + release.zip_name] = data
    return data


def test_catalog_matches_the_authors_readme():
    # The four releases and their assets as the NOVIC README (commit 110de7e) lists them.
    assert [(r.tag, r.name) for r in RELEASES] == [('ta4', 'ovod_20240610_105233'), ('yb3', 'ovod_20240626_001447'),
                                                    ('ya2', 'ovod_20240620_162925'), ('ye2', 'ovod_20240628_142131')]
    assert YE2.url(base='https://github.com/pallgeuer/novic/releases/download/v1.0.0') == \
        'https://github.com/pallgeuer/novic/releases/download/v1.0.0/dfn5bl_ft0_ye2_ovod_20240628_142131.zip'
    assert find_release('ovod_20240610_105233').embedder == 'openclip:timm/ViT-B-16-SigLIP'
    assert find_release('YB3').train_file == 'ovod_20240626_001447/ovod_chunk0899_20240627_112729.train'
    with pytest.raises(KeyError, match='ta4'):
        find_release('xx9')


def test_cut_connections_resume_and_the_hash_is_recorded(server, cache, capsys, monkeypatch):
    waits = []
    monkeypatch.setattr(http_download.time, 'sleep', waits.append)
    data = serve_release(server)
    server.cut = 2                        # the first two responses stop after 100 kB
    assert fetch_cli.main(['ye2', '-q', '--retries', '3', '--timeout', '5']) == 0
    assert waits == [1.0, 2.0]            # a pause before each resumption, doubling
    out = capsys.readouterr().out
    p = plan(YE2)
    assert p.checkpoint.read_bytes() == zipfile.ZipFile(io.BytesIO(data)).read(YE2.train_file)
    ranges = [r for _, r in server.requests]
    assert ranges == [None, 'bytes=100000-', 'bytes=200000-']       # each try continued where the last stopped
    rec = recorded_hashes(cache)[YE2.zip_name]
    assert rec == {**rec, 'size': len(data), 'sha256': hashlib.sha256(data).hexdigest()}
    assert str(p.checkpoint) in out and f'model:={p.checkpoint}' in out and 'novic-classify --model' in out
    assert not p.zip_path.exists() and leftovers(cache) == []
    # A later run downloads nothing and checks the unpacked file against its manifest.
    server.requests.clear()
    assert fetch_cli.main(['ovod_20240628_142131', '-q']) == 0
    assert server.requests == [] and 'already in the cache' in capsys.readouterr().out
    assert verify_fetched_file(p.checkpoint) is True
    # Changed on disk: every later load (and fetch) says so and names the fix.
    with open(p.checkpoint, 'r+b') as f:
        f.write(b'X')
    with pytest.raises(ChecksumError, match='--force'):
        verify_fetched_file(p.checkpoint)
    assert fetch_cli.main(['ye2', '-q']) == 1
    assert '--force' in capsys.readouterr().err
    # --force fetches again, and the new download must match the recorded hash.
    assert fetch_cli.main(['ye2', '-q', '--force']) == 0
    assert verify_fetched_file(p.checkpoint) is True


def test_loading_a_fetched_checkpoint_checks_it_against_the_recorded_hash(server, cache):
    """The loader (torch_pipeline, behind model:=PATH.train, novic-classify and novic-export) checks a
    fetched checkpoint before reading it: changed on disk, it is refused naming the fix."""
    pytest.importorskip('torch')
    from novic_ros.core.errors import ModelLoadError
    from novic_ros.core.variants import get_variant
    from novic_ros.torch_pipeline import load_models
    serve_release(server)
    assert fetch_cli.main(['ye2', '-q']) == 0
    checkpoint = plan(YE2).checkpoint
    variant = get_variant(str(checkpoint))
    # Unchanged, the check passes and the stand-in bytes reach the checkpoint reader, which refuses them.
    with pytest.raises(ModelLoadError) as unchanged:
        load_models(variant, 'cpu', 'fp32', with_decoder=True)
    assert not isinstance(unchanged.value, ChecksumError)
    with open(checkpoint, 'r+b') as f:
        f.write(b'X')
    with pytest.raises(ChecksumError, match='novic-fetch ye2 --force'):
        load_models(variant, 'cpu', 'fp32', with_decoder=True)


def test_a_changed_file_on_the_server_is_refused_against_the_recorded_hash(server, cache, capsys):
    serve_release(server)
    assert fetch_cli.main(['ye2', '-q']) == 0
    first = plan(YE2).checkpoint.read_bytes()
    serve_release(server, payload=b'another file of another size' * 100)
    assert fetch_cli.main(['ye2', '-q', '--force']) == 1
    err = capsys.readouterr().err
    assert 'known to be' in err or 'sha256' in err
    assert plan(YE2).checkpoint.read_bytes() == first              # the good folder is untouched
    assert leftovers(cache) == [] and not plan(YE2).zip_path.exists()
    # Same size, other bytes: the sha256 check refuses it.
    good = release_zip()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    server.files['/' + YE2.zip_name] = bytes(bad)
    assert fetch_cli.main(['ye2', '-q', '--force']) == 1
    assert 'differs from the known' in capsys.readouterr().err
    assert plan(YE2).checkpoint.read_bytes() == first and leftovers(cache) == []


def test_a_server_that_ignores_range_restarts_from_zero(server, tmp_path):
    data = b'0123456789' * 50_000
    server.files['/f.bin'] = data
    server.cut, server.no_range = 1, True
    got = download(server.url('f.bin'), tmp_path / 'f.bin', limits=FAST)
    assert got.path.read_bytes() == data and got.attempts == 2
    assert got.sha256 == hashlib.sha256(data).hexdigest()


def test_sizes_the_server_gets_wrong_are_refused(server, tmp_path):
    data = b'x' * 300_000
    server.files['/f.bin'] = data
    dest = tmp_path / 'f.bin'
    # Announced size differs from the known one: refused before reading.
    with pytest.raises(DownloadError, match='known to be 1000'):
        download(server.url('f.bin'), dest, size=1000, limits=FAST)
    # An absurd announced size: refused, nothing kept.
    server.length = 10 ** 15
    with pytest.raises(DownloadError, match='above the limit'):
        download(server.url('f.bin'), dest, limits=FAST)
    server.length = None
    # No Content-Length, and more bytes than the file is known to be: cut off and refused.
    server.no_length, server.extra = True, b'y' * 5000
    with pytest.raises(DownloadError, match='more than'):
        download(server.url('f.bin'), dest, size=len(data), limits=FAST)
    # No Content-Length and no known size: bounded by the limit.
    with pytest.raises(DownloadError, match='more than'):
        download(server.url('f.bin'), dest, limits=DownloadLimits(max_bytes=100_000, timeout_s=5, retries=0))
    # A Content-Length other than the known size (here: a short one) is refused.
    server.no_length, server.extra = False, b''
    server.length = len(data) - 10
    with pytest.raises(DownloadError):
        download(server.url('f.bin'), dest, size=len(data), limits=FAST)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_connection_cut_every_time_keeps_the_part_for_the_next_run(server, tmp_path):
    data = b'z' * 500_000
    server.files['/f.bin'] = data
    server.cut = 10
    dest = tmp_path / 'f.bin'
    with pytest.raises(DownloadError, match='next run resumes'):
        download(server.url('f.bin'), dest, limits=DownloadLimits(timeout_s=5, retries=1, backoff_s=0))
    assert not dest.exists()
    assert (tmp_path / 'f.bin.part').stat().st_size == 200_000
    server.cut = 0
    server.requests.clear()
    got = download(server.url('f.bin'), dest, limits=FAST)
    assert got.path.read_bytes() == data and server.requests[0][1] == 'bytes=200000-'
    # A part of another URL is never continued.
    (tmp_path / 'g.bin.part').write_bytes(b'q' * 1000)
    (tmp_path / 'g.bin.part.json').write_text(json.dumps({'url': 'http://elsewhere/g.bin', 'total': 2000}))
    server.files['/g.bin'] = b'g' * 3000
    assert download(server.url('g.bin'), tmp_path / 'g.bin', limits=FAST).path.read_bytes() == b'g' * 3000


def test_a_corrupt_zip_is_removed_and_nothing_is_recorded(server, cache, capsys):
    data = bytearray(release_zip())
    data[200:400] = b'\0' * 200            # inside the member's compressed data: the CRC or inflate fails
    server.files['/' + YE2.zip_name] = bytes(data)
    assert fetch_cli.main(['ye2', '-q']) == 1
    assert 'not a valid zip' in capsys.readouterr().err
    p = plan(YE2)
    assert not p.folder.exists() and not p.zip_path.exists() and leftovers(cache) == []
    assert YE2.zip_name not in recorded_hashes(cache)
    # Not a zip at all (an HTML error page served as 200).
    server.files['/' + YE2.zip_name] = b'<html>rate limited</html>'
    assert fetch_cli.main(['ye2', '-q']) == 1
    assert not p.folder.exists() and leftovers(cache) == []


def test_a_zip_without_the_checkpoint_or_with_unsafe_members_is_refused(tmp_path):
    def make(members):
        path = tmp_path / 'x.zip'
        with zipfile.ZipFile(path, 'w') as zf:
            for name, data in members.items():
                zf.writestr(name, data)
        return path
    dest = tmp_path / 'out'
    with pytest.raises(UnpackError, match='does not contain'):
        unpack_zip(make({'other/file.train': b'1'}), dest, required=[YE2.train_file])
    with pytest.raises(UnpackError, match='outside'):
        unpack_zip(make({YE2.train_file: b'1', '../evil': b'2'}), dest, required=[YE2.train_file])
    with pytest.raises(UnpackError, match='outside'):
        unpack_zip(make({'/etc/evil': b'2'}), dest)
    link = zipfile.ZipInfo('ln')
    link.external_attr = (0o120777 << 16)
    path = tmp_path / 'ln.zip'
    with zipfile.ZipFile(path, 'w') as zf:
        zf.writestr(link, '/etc/passwd')
    with pytest.raises(UnpackError, match='symbolic link'):
        unpack_zip(path, dest)
    with pytest.raises(UnpackError, match='above the limit'):
        unpack_zip(make({'big': b'0' * 10_000}), dest, max_bytes=1000)
    assert not dest.exists() and not (tmp_path / 'evil').exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []


def test_a_failure_mid_unpack_leaves_the_old_folder_whole(tmp_path, monkeypatch):
    path = tmp_path / 'a.zip'
    path.write_bytes(release_zip(extra={'z_second': b'2' * 1000}))
    dest = tmp_path / 'out'
    unpack_zip(path, dest, required=[YE2.train_file])
    before = sorted(p.relative_to(dest).as_posix() for p in dest.rglob('*'))
    real = safe_unzip._extract
    calls = []

    def failing(zf, info, root):
        calls.append(info.filename)
        if len(calls) == 2:
            raise OSError(28, 'No space left on device')
        return real(zf, info, root)
    monkeypatch.setattr(safe_unzip, '_extract', failing)
    with pytest.raises(OSError, match='No space'):
        unpack_zip(path, dest, required=[YE2.train_file])
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob('*')) == before
    assert json.loads((dest / MANIFEST).read_text())['files'][YE2.train_file]['size'] == 1_000_000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []


def test_offline_says_what_and_where_and_a_hand_carried_zip_unpacks(tmp_path, monkeypatch, capsys):
    root = tmp_path / 'checkpoints'
    monkeypatch.setenv('NOVIC_CHECKPOINTS', str(root))
    monkeypatch.delenv('NOVIC_RELEASE_URL', raising=False)
    assert fetch_cli.main(['ta4', '--offline']) == fetch_cli.EXIT_OFFLINE
    err = capsys.readouterr().err
    p = plan(find_release('ta4'))
    assert 'https://github.com/pallgeuer/novic/releases/download/v1.0.0/vitb16_ft2_ta4_ovod_20240610_105233.zip' in err
    assert str(p.zip_path) in err and '--zip' in err and 'sha256 unknown' in err
    assert not root.exists() or leftovers(root) == []
    # Unreachable server (a closed loopback port): the same message, exit code 3.
    import socket
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(OfflineError):
        download(f'http://127.0.0.1:{port}/x.zip', tmp_path / 'x.zip', limits=FAST)
    assert fetch_cli.main(['ta4', '--url', f'http://127.0.0.1:{port}/x.zip']) == fetch_cli.EXIT_OFFLINE
    assert 'offline' in capsys.readouterr().err
    # The zip put where the message said: unpacked with no network, its hash recorded.
    data = release_zip(p.release)
    p.zip_path.parent.mkdir(parents=True, exist_ok=True)
    p.zip_path.write_bytes(data)
    assert fetch_cli.main(['ta4', '--offline', '--path']) == 0
    assert capsys.readouterr().out.strip() == str(p.checkpoint)
    assert p.checkpoint.is_file() and recorded_hashes(root)['vitb16_ft2_ta4_ovod_20240610_105233.zip']['sha256'] == \
        hashlib.sha256(data).hexdigest()
    # --zip with another file than the recorded one is refused, and the good folder stays.
    other = tmp_path / 'other.zip'
    other.write_bytes(release_zip(p.release, payload=b'other'))
    assert fetch_cli.main(['ta4', '--zip', str(other)]) == 1
    assert 'known' in capsys.readouterr().err and other.exists() and verify_fetched_file(p.checkpoint)


def test_novic_fetch_runs_without_torch(tmp_path, server):
    from torch_free import MESSAGE, run_module, torch_free_env
    serve_release(server, find_release('yb3'))
    env = torch_free_env(tmp_path / 'hook')
    env.update(NOVIC_CHECKPOINTS=str(tmp_path / 'c'), NOVIC_RELEASE_URL=server.base)
    r = run_module('novic_ros.cli.fetch', ['yb3', '-q'], env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert MESSAGE not in r.stderr and (tmp_path / 'c' / find_release('yb3').folder_name / MANIFEST).is_file()
    r = run_module('novic_ros.cli.fetch', ['--list'], env, timeout=60)
    assert r.returncode == 0 and 'in cache' in r.stdout and 'ViT-SO400M-14-SigLIP' in r.stdout
