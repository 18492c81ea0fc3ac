"""The browser demo (``demo/gradio_demo.py``) end to end in a real headless Chromium: the server started as a user
types it, the sample picked or a video uploaded, *Segment* pressed, and what the page shows (overlay video with its
sound, one mask per sampled second with its time) checked against the project's API on the same checkpoint.

Skipped, with the reason, where Gradio, Playwright or a system Chromium is missing
(``pip install -r requirements/demo.txt -r requirements/browser_tests.txt``, ``apt-get install chromium``; another
browser binary can be named with ``CCFORMER_CHROMIUM``).
"""

import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
import torch
from _tools import load_tool

pytest.importorskip('gradio', reason='the browser demo is optional: pip install -r requirements/demo.txt')
playwright_api = pytest.importorskip(
    'playwright.sync_api', reason='browser tests need Playwright: pip install -r requirements/browser_tests.txt'
)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'ccformer', 'ccformer_tiny-robust_1xb2-toy_avsbench-s4-64x64.py')
TIMEOUT_MS = 240_000  # a segmentation on a loaded 2-core machine


def _chromium() -> str:
    names = [os.environ.get('CCFORMER_CHROMIUM', ''), 'chromium', 'chromium-browser', 'google-chrome']
    for name in filter(None, names):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip('no Chromium on PATH: apt-get install chromium (or set CCFORMER_CHROMIUM to a browser binary)')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    from projects.ccformer.apis import init_avs_model, segment_video

    torch.manual_seed(0)
    model = init_avs_model(CONFIG, None, device='cpu')
    for m in model.audio_encoder.modules():  # sounds kept apart by the random audio encoder
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            torch.nn.init.zeros_(m.bias)
    # the presence gate set between the frames' scores on the page's sample: some seconds masked, some empty
    demo = load_tool('demo/gradio_demo.py')
    sample = demo.make_sample(str(tmp_path_factory.mktemp('sample')), img_size=64)
    scores = []
    hook = model.decode_head.presence_head.register_forward_hook(lambda m, i, o: scores.append(o.detach().flatten()))
    segment_video(model, sample, img_size=(64, 64))
    hook.remove()
    middle = torch.cat(scores).sort().values[4:6].mean()
    with torch.no_grad():
        model.decode_head.presence_head.bias -= middle
    path = str(tmp_path_factory.mktemp('ckpt') / 'tiny_s4.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


@pytest.fixture(scope='module')
def server(checkpoint, tmp_path_factory):
    """``python demo/gradio_demo.py CONFIG CKPT --device cpu --port 0 --out OUT``; yields its address and folder."""
    out = str(tmp_path_factory.mktemp('gradio_out'))
    env = dict(os.environ, PYTHONPATH=ROOT, GRADIO_ANALYTICS_ENABLED='False', OMP_NUM_THREADS='1')
    cmd = [sys.executable, 'demo/gradio_demo.py', CONFIG, checkpoint, '--device', 'cpu', '--port', '0', '--out', out]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, url = [], []

    def read():
        for line in proc.stdout:
            lines.append(line)
            found = re.search(r'(http://127\.0\.0\.1:\d+)', line)
            if found and not url:
                url.append(found.group(1))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 300
    while not url and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if not url:
        proc.kill()
        pytest.fail('the demo did not start:\n' + ''.join(lines))
    yield dict(url=url[0], out=out, log=lines)
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope='module')
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), headless=True, args=['--no-sandbox'])
        yield b
        b.close()


def _open(browser, server):
    page = browser.new_page(viewport={'width': 1200, 'height': 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server['url'])
    page.get_by_role('button', name='Segment').wait_for()
    return page


def _segment_and_read(page) -> dict:
    """Press Segment, wait for the outputs, and download what the page shows."""
    page.get_by_role('button', name='Segment').click()
    page.locator('#masks img').first.wait_for()
    page.locator('#overlay video').wait_for()
    page.wait_for_function("document.querySelector('#summary').innerText.includes('frames')")
    masks = []
    for img in page.locator('#masks img').all():
        body = page.request.get(img.get_attribute('src')).body()
        masks.append(cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_GRAYSCALE))
    captions = re.findall(r'\d+\.\d\d s', page.locator('#masks').inner_text())
    overlay = page.request.get(page.locator('#overlay video').get_attribute('src')).body()
    return dict(masks=masks, captions=captions, overlay=overlay, summary=page.locator('#summary').inner_text())


def _expected(checkpoint: str, video: str) -> dict:
    from projects.ccformer.apis import init_avs_model, segment_video

    model = init_avs_model(CONFIG, checkpoint, device='cpu')
    return segment_video(model, video, fps=1, img_size=(64, 64))  # the config's size


def _check(shown: dict, expected: dict, tmp_path) -> None:
    from projects.ccformer.apis import read_video_audio, video_info

    assert len(shown['masks']) == len(expected['masks']) == 10  # 10 s at 1 frame a second
    for got, want in zip(shown['masks'], expected['masks']):
        np.testing.assert_array_equal(got, (want > 0).astype(np.uint8) * 255)
    assert shown['captions'] == [f'{t:.2f} s' for t in expected['timestamps']]
    overlay = tmp_path / 'overlay.mp4'
    overlay.write_bytes(shown['overlay'])
    assert abs(video_info(str(overlay))['duration'] - 10) < 0.5
    assert np.abs(read_video_audio(str(overlay))).max() > 0.01  # the overlay keeps the soundtrack
    assert shown['summary'].startswith('10 frames (1 a second) in 2 windows of T=5')


def test_pick_the_sample_and_segment(browser, server, checkpoint, tmp_path):
    page = _open(browser, server)
    page.get_by_role('button', name='Segment').click()  # nothing chosen yet: the page says what to do
    page.get_by_text('Upload a video with sound first').first.wait_for()
    page.locator('.gallery-item, button.gallery').first.click()  # the "Sample" example
    page.locator('#video-in video').wait_for()
    shown = _segment_and_read(page)
    sample = osp.join(server['out'], 'sample', 'sample.mp4')
    _check(shown, _expected(checkpoint, sample), tmp_path)
    empty = [not m.any() for m in shown['masks']]
    assert 0 < sum(empty) < len(empty)  # seconds whose sound the gate rejects are empty, the others masked
    page.screenshot(path=str(tmp_path / 'gradio_demo.png'), full_page=True)
    page.close()


def test_upload_a_video_and_segment(browser, server, checkpoint, toy_s4_root, tmp_path):
    from projects.ccformer.datasets.toy_video import make_toy_video

    video = str(tmp_path / 'my video.mp4')  # a name with a space, as users' files have
    make_toy_video(toy_s4_root, video)
    page = _open(browser, server)
    page.locator('#video-in input[type=file]').set_input_files(video)
    page.locator('#video-in video').wait_for()
    _check(_segment_and_read(page), _expected(checkpoint, video), tmp_path)
    page.close()


def test_a_video_without_sound_is_refused_in_the_page(browser, server, tmp_path):
    from projects.ccformer.apis import write_video

    video = str(tmp_path / 'silent.mp4')
    write_video(video, [np.full((64, 64, 3), 80, np.uint8)] * 10, fps=2)  # 5 s, no audio track
    page = _open(browser, server)
    page.locator('#video-in input[type=file]').set_input_files(video)
    page.locator('#video-in video').wait_for()
    page.get_by_role('button', name='Segment').click()
    page.get_by_text('has no audio track').first.wait_for()
    assert page.locator('#masks img').count() == 0
    page.close()
