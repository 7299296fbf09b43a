"""report.html opened in a real headless Chromium (Debian's, which scripts/setup.sh installs): it
renders (a screenshot that is not blank), the summary numbers are in the page's text, the gallery
holds one picture per miss it lists, and the page asks the network for nothing."""
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from novic_ros.cli.eval import main as eval_main
from novic_ros.training import toy_world

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium; "
                                                         "scripts/setup.sh installs it)")
# Chromium's own services (updates, time, accounts): the browser's traffic, never the page's.
BROWSER_HOSTS = re.compile(r'^https?://([a-z0-9-]+\.)*(google\.com|googleapis\.com|gvt1\.com|gstatic\.com)/')


def _chromium(tmp_path, url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, '--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
                           '--no-first-run', '--disable-background-networking', '--disable-component-update',
                           # Chromium still calls its update and account hosts with the flags above; resolving
                           # no name at all keeps every such request on this machine (CI sends nothing out).
                           '--host-resolver-rules=MAP * ~NOTFOUND',
                           f'--user-data-dir={tmp_path / "profile"}', '--window-size=1200,2400', *args, url],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    """An offline run of the toy model over 24 labelled toy-world frames (some of them missed)."""
    d = tmp_path_factory.mktemp('report')
    pics = d / 'pics'
    pics.mkdir()
    renders = toy_world.render_set(1, (64, 64), seed=5, classes=list(range(0, 144, 6)))
    for i, r in enumerate(renders):
        Image.fromarray(r.image).save(pics / f'{i:02d}.png')
    (pics / 'labels.json').write_text(json.dumps({f'{i:02d}.png': r.label for i, r in enumerate(renders)}))
    assert eval_main(['make-bag', str(pics), str(d / 'bag'), '--no-progress']) == 0
    assert eval_main(['offline', str(d / 'bag'), '--out', str(d / 'out'), '--backend', 'torch', '--no-progress']) == 0
    return d / 'out'


def test_report_renders_in_chromium_with_its_numbers_and_one_picture_per_miss(report, tmp_path):
    page = report / 'report.html'
    summary = json.loads((report / 'summary.json').read_text())
    score = summary['score']
    url = page.resolve().as_uri()
    dom = _chromium(tmp_path, url, '--dump-dom').stdout
    assert '<h2>Summary</h2>' in dom, dom[:2000]
    text = re.sub(r'<[^>]+>', ' ', dom)
    for value in (f"{score['top1']:.1%}", f"{score['topk']:.1%}", f"{score['hierarchy']:.3f}",
                  f"{summary['category_score']['accuracy']:.1%}"):
        assert value in text
    assert re.search(r'classifier time per frame p50 / p95 / p99 / max\s+[\d.]+ / [\d.]+ / [\d.]+ / [\d.]+ ms', text)
    misses = score['n'] - round(score['top1'] * score['n'])
    assert misses > 0, "the toy model missed nothing: the gallery is not exercised"
    assert f"Worst frames ({misses} of {misses} misses" in text
    figures = re.findall(r'<figure class="miss">(.*?)</figure>', dom, re.S)
    assert len(figures) == misses
    assert all(re.search(r'<img [^>]*src="data:image/jpeg;base64,[A-Za-z0-9+/=]{200,}"', f) for f in figures)
    assert all('true:' in f for f in figures)
    shot = tmp_path / 'shot.png'
    net = tmp_path / 'net.json'
    _chromium(tmp_path, url, f'--screenshot={shot}', f'--log-net-log={net}')
    pixels = np.asarray(Image.open(shot).convert('L'), np.float32)
    assert pixels.shape == (2400, 1200) and pixels.std() > 10 and (pixels < 128).mean() > 0.01     # text and pictures
    urls = set(re.findall(r'"url":"([^"]+)"', net.read_text()))
    assert not {u for u in urls if not u.startswith(('file:', 'data:')) and not BROWSER_HOSTS.match(u)}
    assert not re.search(r'(src|href)="(?!data:)', dom)      # nothing the page could fetch
