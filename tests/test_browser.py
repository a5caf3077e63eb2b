"""The demo in a real browser: headless Debian Chromium (driven by Playwright; no browser download) loads the
page, uploads a clip, clicks, waits for the vocoded audio, uploads a broken file and sees the error, and
saves screenshots (into tmp_path; also into ``.notes/screenshots/`` of a developer checkout that has a
``.notes`` folder, or into ``$WAVEFLOW_SCREENSHOT_DIR``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import soundfile as sf

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("gradio")
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)", allow_module_level=True)

from demo_server import REPO_ROOT, DemoServer, make_voice, speechlike

BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync"]
WAIT_MS = 120_000


def _keep(screenshot: Path) -> None:
    """Copy a screenshot where a person reviews them (never fails the test)."""
    target = os.environ.get("WAVEFLOW_SCREENSHOT_DIR")
    folder = Path(target) if target else REPO_ROOT / ".notes" / "screenshots"
    if target or folder.parent.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, folder / screenshot.name)


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    make_voice(root / "voices" / "tiny.pt", seed=0, name="Tiny (untrained)")
    with DemoServer(["--voices", str(root / "voices")], root / "sandbox") as url:
        yield url


@pytest.fixture(scope="module")
def page(demo_url):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(WAIT_MS)
        page.goto(demo_url)
        page.get_by_role("tab", name="Copy synthesis").wait_for()
        yield page
        browser.close()


def _upload(page, component: str, path: Path) -> None:
    """Replace the clip of an audio input: Clear, then the hidden file input, as a drag-and-drop would."""
    page.locator(f"#{component} button[aria-label='Clear']").click()
    page.locator(f"#{component} input[type=file]").set_input_files(str(path))
    page.locator(f"#{component} a[data-testid='download-link'][href*='{path.name}']").wait_for(state="attached")


def test_landing_page(page, tmp_path):
    for tab in ("Vocode a mel", "Copy synthesis", "Compare voices", "Inside the flow"):
        assert page.get_by_role("tab", name=tab).is_visible()
    assert page.get_by_text("press the orange button").is_visible()
    shot = tmp_path / "demo-landing.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_upload_click_and_hear(page, tmp_path):
    clip = tmp_path / "my-recording.wav"
    sf.write(clip, speechlike(1.5, 44100, channels=2), 44100)
    page.get_by_role("tab", name="Copy synthesis").click()
    _upload(page, "cs-input", clip)
    page.locator("#cs-button").click()
    vocoded = page.locator("#cs-vocoded a[data-testid='download-link'][href*='my-recording-vocoded.wav']")
    vocoded.wait_for(state="attached")
    assert page.get_by_text("resampled to 22050 Hz").is_visible()
    assert page.get_by_text("log-mel distance (L1)").is_visible()
    shot = tmp_path / "demo-copy-synthesis.png"
    page.screenshot(path=str(shot), full_page=True)
    _keep(shot)


def test_broken_upload_shows_the_reason(page, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    page.get_by_role("tab", name="Copy synthesis").click()
    _upload(page, "cs-input", broken)
    page.locator("#cs-button").click()
    message = page.get_by_text("broken.wav: this file is not readable audio")
    message.wait_for()
    page.wait_for_timeout(1000)  # let the toast finish fading in
    shot = tmp_path / "demo-error.png"
    page.screenshot(path=str(shot))
    _keep(shot)


def test_inside_the_flow_with_the_preloaded_example(page, tmp_path):
    page.get_by_role("tab", name="Inside the flow").click()
    page.locator("#flow-button").click()
    page.locator("#flow-summary").get_by_text("bits per 16-bit sample").wait_for()
    page.get_by_text("Samples of the same mel at several sigmas").scroll_into_view_if_needed()
    shot = tmp_path / "demo-inside-the-flow.png"
    page.screenshot(path=str(shot), full_page=True)
    _keep(shot)
