"""The contact sheet of a batch run: ``OUT/index.html``.

One static page, rewritten (atomically) with the JSON report after every group: each
group's preview, frames, exposures, backend, time, status and error, and its ghost /
weight maps where a backend wrote one beside the output (``NAME.ghost*.png|jpg``,
``NAME.weights*.png|jpg``). Links are relative (the folder can be moved or served as it
is), there is no script and no network resource, and every name is HTML-escaped.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from urllib.parse import quote

from hdrcli.exposure import describe_exposure

GENERATOR = "hdrcli batch contact sheet"
_BROWSER_IMAGES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;background:#1d1f21;color:#ddd}
h1{font-size:1.4em;margin:0 0 .2em}
.summary{color:#aaa;margin-bottom:1.2em}
.groups{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:14px}
.group{background:#2a2c2f;border-radius:6px;padding:10px;border-left:5px solid #666}
.group.done{border-left-color:#4caf50}.group.skipped{border-left-color:#2196f3}
.group.failed,.group.interrupted{border-left-color:#e53935}.group.pending{border-left-color:#ffb300}
.group img{width:100%;height:auto;display:block;border-radius:3px;background:#000}
.noimg{height:120px;display:flex;align-items:center;justify-content:center;background:#111;color:#888}
.maps{display:flex;gap:6px;margin-top:6px}.maps figure{margin:0;flex:0 1 45%}
figcaption{font-size:.8em;color:#999}
h2{font-size:1.05em;margin:.5em 0 .2em;overflow-wrap:anywhere}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;margin:.3em 0}
dt{color:#999}dd{margin:0;overflow-wrap:anywhere}
.error{color:#ff8a80;overflow-wrap:anywhere}
ul.frames{margin:0;padding-left:1.2em}
a{color:#90caf9}
"""


def _text(value: object) -> str:
    """HTML-escaped text; undecodable file-name bytes are shown as escapes."""
    text = str(value).encode("utf-8", "backslashreplace").decode("utf-8")
    return html.escape(text, quote=True)


def _href(target: str | os.PathLike[str], base: Path) -> str:
    """A relative, percent-encoded link from the page's folder to ``target``."""
    rel = os.path.relpath(os.path.abspath(target), os.path.abspath(base))
    return html.escape(quote(os.fsencode(Path(rel).as_posix()), safe="/"), quote=True)


def _maps(output: Path) -> list[Path]:
    """Ghost and weight maps written beside ``output``: images, and ``.exr`` map files
    (``hdr fuse/batch --save-weights``), whose ghost channel is shown as a thumbnail."""
    if not output.parent.is_dir():
        return []
    found = []
    for kind in ("ghost", "weights"):
        for path in sorted(output.parent.glob(f"{output.stem}.{kind}*")):
            if path.suffix.lower() in (*_BROWSER_IMAGES, ".exr") and path.is_file():
                found.append(path)
    return found


_THUMBS: dict[tuple[str, int, int], str | None] = {}  # (path, mtime, size) -> data URI, per process


def _ghost_thumbnail(path: Path, width: int = 320) -> str | None:
    """The ``ghost`` channel of a maps EXR as a small grey PNG ``data:`` URI (embedded: no
    extra file, no network), or None when the file has no such channel or cannot be read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key in _THUMBS:
        return _THUMBS[key]
    uri = None
    try:
        import base64

        import cv2
        import numpy as np
        import OpenEXR

        if stat.st_size > 256 * 1024 * 1024:  # not a map this batch wrote: no thumbnail
            raise ValueError("too large")
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            channels = exr.channels()
            if "ghost" in channels:
                ghost = np.nan_to_num(np.asarray(channels["ghost"].pixels, np.float32))
                h, w = ghost.shape[:2]
                if w > width:
                    ghost = cv2.resize(ghost, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
                ok, png = cv2.imencode(".png", np.round(np.clip(ghost, 0, 1) * 255).astype(np.uint8))
                if ok:
                    uri = "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii")
    except Exception:  # noqa: BLE001 - a thumbnail is optional; the link to the file stays
        uri = None
    _THUMBS[key] = uri
    return uri


def _group_card(row: dict, base: Path) -> str:
    status = str(row.get("status") or "")
    css = status.split(" ")[0] if status else "pending"
    output = Path(row["output"]) if row.get("output") else None
    preview = Path(row["preview"]) if row.get("preview") else None
    title = output.name if output else f"group {row.get('group')}"
    parts = [f'<section class="group {_text(css)}" id="group-{_text(row.get("group"))}">']
    if (preview is None or not preview.is_file()) and output is not None and output.suffix.lower() in _BROWSER_IMAGES:
        preview = output  # a display image itself (Ultra HDR JPEG: HDR in browsers that show gain maps)
    if preview is not None and preview.is_file():
        parts.append(f'<a href="{_href(output or preview, base)}"><img src="{_href(preview, base)}" '
                     f'alt="preview of {_text(title)}" loading="eager"></a>')
    else:
        parts.append(f'<div class="noimg">{"no preview" if status != "pending" else "not fused yet"}</div>')
    maps = _maps(output) if output is not None else []
    if maps:
        parts.append('<div class="maps">')
        for path in maps:
            src = _href(path, base) if path.suffix.lower() in _BROWSER_IMAGES else _ghost_thumbnail(path)
            image = f'<img src="{src}" alt="ghost map of {_text(title)}">' if src else _text(path.name)
            parts.append(f'<figure><a href="{_href(path, base)}">{image}</a><figcaption>{_text(path.name)}'
                         f'{" (ghost channel)" if src and path.suffix.lower() == ".exr" else ""}</figcaption></figure>')
        parts.append("</div>")
    heading = f'<a href="{_href(output, base)}">{_text(title)}</a>' if output is not None and output.is_file() else _text(title)
    parts.append(f"<h2>{row.get('group')}. {heading}</h2><dl>")
    parts.append(f"<dt>status</dt><dd>{_text(status)}</dd>")
    parts.append(f"<dt>backend</dt><dd>{_text(row.get('backend') or '-')}</dd>")
    seconds = row.get("time_s")
    parts.append(f"<dt>time</dt><dd>{'-' if seconds is None else f'{float(seconds):.2f} s'}</dd>")
    frames = row.get("frames") or []
    exposures = row.get("exposures_s") or []
    items = []
    for i, frame in enumerate(frames):
        exposure = f" ({_text(describe_exposure(exposures[i]))})" if i < len(exposures) and exposures[i] else ""
        items.append(f'<li><a href="{_href(frame, base)}">{_text(Path(frame).name)}</a>{exposure}</li>')
    parts.append(f"<dt>frames</dt><dd><ul class=\"frames\">{''.join(items)}</ul></dd>")
    if row.get("retries"):
        parts.append(f"<dt>retries</dt><dd>{_text(row['retries'])}</dd>")
    if row.get("error"):
        parts.append(f'<dt>error</dt><dd class="error">{_text(row["error"])}</dd>')
    parts.append("</dl></section>")
    return "".join(parts)


def render_contact_sheet(rows: list[dict], base: Path, report: Path | None = None) -> str:
    """The page for report ``rows``, with links relative to the folder ``base``."""
    groups = [r for r in rows if r.get("group") is not None]
    loose = [r for r in rows if r.get("group") is None]
    counts: dict[str, int] = {}
    for r in groups:
        key = str(r.get("status") or "pending").split(" ")[0]
        counts[key] = counts.get(key, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no groups"
    report_link = f' &middot; <a href="{_href(report, base)}">JSON report</a>' if report is not None else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta name="generator" content="{GENERATOR}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>hdr batch: {_text(base.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>hdr batch: {_text(base.name)}</h1>",
        f'<div class="summary">{len(groups)} groups: {_text(summary)}{report_link}</div>',
        '<div class="groups">',
        *(_group_card(r, base) for r in groups),
        "</div>",
    ]
    if loose:
        parts.append("<h2>Frames not grouped</h2><ul>")
        for r in loose:
            frame = (r.get("frames") or ["?"])[0]
            parts.append(f'<li><a href="{_href(frame, base)}">{_text(Path(frame).name)}</a>: '
                         f'<span class="error">{_text(r.get("error") or "")}</span></li>')
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_contact_sheet(path: str | os.PathLike[str], rows: list[dict], report: Path | None = None) -> Path:
    """Write (atomically) the contact sheet for ``rows`` at ``path`` (normally ``OUT/index.html``)."""
    from hdrcli.io.atomic import atomic_path

    path = Path(path)
    page = render_contact_sheet(rows, path.parent, report)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def is_contact_sheet(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a page this module wrote (an earlier run's, replaced freely)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">'.encode() in head


__all__ = ["GENERATOR", "is_contact_sheet", "render_contact_sheet", "write_contact_sheet"]
