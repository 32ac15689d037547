"""`OUT/index.html`, the batch contact sheet: escaped, relative, offline, and shown by a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest

from hdrcli.contact_sheet import is_contact_sheet, render_contact_sheet, write_contact_sheet
from tests.conftest import textured_scene
from tests.test_batch import T0, shoot
from tests.test_cli import hdr

HOSTILE = 'a<b>&"q\'.jpg'


def test_page_is_escaped_relative_and_offline(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    frames = tmp_path / "shoot"
    frames.mkdir()
    rows = [
        {"group": 1, "frames": [str(frames / HOSTILE), str(frames / "b 2#.jpg")], "exposures_s": [0.01, 0.04],
         "backend": "debevec", "output": str(out / "x<y>.exr"), "preview": str(out / "x<y>.preview.jpg"),
         "time_s": 1.5, "error": None, "status": "done"},
        {"group": 2, "frames": [str(frames / "c.jpg")], "exposures_s": [0.01], "backend": "debevec",
         "output": str(out / "c.exr"), "preview": None, "time_s": None,
         "error": "<script>alert(1)</script> [red]markup[/]", "status": "failed"},
        {"group": None, "frames": [str(frames / "noexif.png")], "exposures_s": [], "backend": None, "output": None,
         "preview": None, "time_s": None, "error": "no capture time in EXIF", "status": "not grouped"},
    ]
    cv2.imwrite(str(out / "x<y>.preview.jpg"), np.full((8, 8, 3), 128, np.uint8))
    page = write_contact_sheet(out / "index.html", rows, out / "hdr-batch-report.json").read_text()
    assert is_contact_sheet(out / "index.html")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "a&lt;b&gt;&amp;&quot;q&#x27;.jpg" in page
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links and not [u for u in links if re.match(r"[a-z]+:", u) or u.startswith("/")]  # relative only
    assert "../shoot/a%3Cb%3E%26%22q%27.jpg" in links and "../shoot/b%202%23.jpg" in links
    assert "x%3Cy%3E.preview.jpg" in links and "hdr-batch-report.json" in links
    assert "http" not in page.lower().replace("http-equiv", "")
    assert "no preview" in page and "noexif.png" in page
    # A ghost map beside an output is shown with it: an image as it is, a maps EXR
    # (--save-weights) as an embedded thumbnail of its ghost channel.
    cv2.imwrite(str(out / "x<y>.ghost.png"), np.zeros((8, 8), np.uint8))
    assert "x%3Cy%3E.ghost.png" in render_contact_sheet(rows, out)
    from hdrcli.io.hdr import write_maps

    write_maps(out / "x<y>.weights.exr", {"ghost": np.eye(8, dtype=np.float32)})
    page = render_contact_sheet(rows, out)
    assert 'href="x%3Cy%3E.weights.exr"' in page and '<img src="data:image/png;base64,' in page


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _browser(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium (Debian package chromium) installed")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--hide-scrollbars", "--allow-file-access-from-files", "--virtual-time-budget=5000"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def batch_out(tmp_path) -> Path:
    """A real `hdr batch` run: two brackets (one with a hostile file name) and a failing group."""
    folder = tmp_path / "shoot <1>"
    folder.mkdir()
    scene = textured_scene(96, 128, seed=7, stops=8)
    for i, t in enumerate((1 / 200, 1 / 50, 1 / 12.5)):
        shoot(folder / (HOSTILE if i == 0 else f"a{i}.jpg"), scene, t, T0 + timedelta(seconds=0.4 * i))
        shoot(folder / f"b{i}.jpg", scene[:, ::-1], t, T0 + timedelta(minutes=3, seconds=0.4 * i))
    shoot(folder / "m1.jpg", scene, 1 / 100, T0 + timedelta(minutes=9), camera=("Canon", "A"))
    shoot(folder / "m2.jpg", scene, 1 / 25, T0 + timedelta(minutes=9, seconds=0.5), camera=("Nikon", "B"))
    out = tmp_path / "out"
    r = hdr("batch", folder, "-o", out, "--align", "none", "--name", "{index}-{first}", "--jobs", "2")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr  # the mixed-camera group fails
    report = json.loads((out / "hdr-batch-report.json").read_text())
    assert [row["status"] for row in report] == ["done", "done", "failed"]
    cv2.imwrite(str(out / "2-b0.ghost.png"), np.tile(np.linspace(0, 255, 128, dtype=np.uint8), (96, 1)))
    return out


def test_contact_sheet_in_a_headless_browser(batch_out, tmp_path):
    page = batch_out / "index.html"
    html = page.read_text()
    assert html.count("<img") == 2  # two previews; the ghost map was written after the run
    # The page as the last group left it, plus the ghost map found now (as a later update would).
    from hdrcli.contact_sheet import write_contact_sheet

    report = json.loads((batch_out / "hdr-batch-report.json").read_text())
    write_contact_sheet(page, report, batch_out / "hdr-batch-report.json")
    html = page.read_text()
    assert html.count("<img") == 3
    # A copy of the page with a probe script beside it (same folder, so the same relative
    # links): every <img> must have loaded with a real size.
    probe = batch_out / "probe.html"
    script = ("<script>window.addEventListener('load',()=>{const i=[...document.images];"
              "document.body.dataset.images=i.length;"
              "document.body.dataset.broken=i.filter(x=>!(x.complete&&x.naturalWidth>0)).map(x=>x.src).join(' ');});"
              "</script></body>")
    probe.write_text(html.replace("</body>", script))
    r = _browser("--dump-dom", probe.as_uri())
    probe.unlink()
    match = re.search(r'<body[^>]*data-images="(\d+)"[^>]*data-broken="([^"]*)"', r.stdout)
    assert match, r.stdout[:2000] + r.stderr[-2000:]
    assert match.group(1) == "3" and match.group(2) == "", match.group(0)
    # A screenshot of the page itself is not blank: it shows the previews and the text.
    shot = tmp_path / "sheet.png"
    r = _browser(f"--screenshot={shot}", "--window-size=1100,800", page.as_uri())
    image = cv2.imread(str(shot))
    assert image is not None, r.stderr[-2000:]
    assert image.shape[:2] == (800, 1100) and image.std() > 20
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 500  # previews, not a flat page
