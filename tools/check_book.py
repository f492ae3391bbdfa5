"""Open every page of the built book in headless Chromium and fail on what a reader would see broken.

    python tools/check_book.py [_build/html] [--screenshots _build/screenshots]   (or: make check-book)

Serves the HTML folder from a local ``http.server`` on 127.0.0.1 (a thread, a random port), drives the
Debian ``chromium`` through Playwright's Python API (no downloaded browser: ``executable_path``), and for
every page reports

* a JavaScript error: an uncaught exception or a ``console.error`` message;
* a missing image: a failed or non-2xx request for the page's own files, or an ``<img>`` whose
  ``naturalWidth`` is 0 once loading has finished;
* a broken internal link: an ``<a href>`` to a file of the book that does not exist, or to an anchor that
  the target page does not have.

Requests to other hosts (the MathJax CDN, the Colab and GitHub buttons' targets) are blocked, counted and
not judged: the check runs offline. Screenshots of the intro, the first notebook page and the results page
go to the screenshot folder. Exit status 0 when no page has a problem, 1 otherwise, 2 when Chromium or
Playwright is missing.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin, urlsplit

DEFAULT_CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
#: Screenshot name -> glob of pages (relative to the HTML folder); the first match is shot.
DEFAULT_SHOTS: dict[str, str] = {
    "intro": "book/intro.html",
    "notebook": "notebooks/*.html",
    "results": "book/results.html",
}
SKIP_DIRS = ("_static", "_sources", "_images", "_sphinx_design_static", "_panels_static")
IGNORED_PATHS = ("/favicon.ico",)

_WAIT_FOR_IMAGES = """
() => Promise.all(Array.from(document.images).map(img => {
  img.loading = 'eager';
  if (img.complete) return null;
  return new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done);
                               setTimeout(done, 5000); });
}))
"""
_BROKEN_IMAGES = """
() => Array.from(document.images)
  .filter(img => img.getAttribute('src') && img.complete && img.naturalWidth === 0)
  .map(img => img.getAttribute('src'))
"""
_LINKS = "() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"
_REFRESH = re.compile(r"""<meta\s+http-equiv=["']refresh["']\s+content=["'][^"']*url=([^"']+)["']""", re.I)


class CheckBookError(RuntimeError):
    """The checker cannot run (no Chromium, no Playwright, no HTML folder)."""


@dataclass
class PageReport:
    """Problems found on one page (``page`` is relative to the HTML folder)."""

    page: str
    problems: list[str] = field(default_factory=list)
    external_blocked: int = 0


@dataclass
class BookReport:
    """The result of :func:`check_book`."""

    pages: list[PageReport] = field(default_factory=list)
    screenshots: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return [f"{p.page}: {msg}" for p in self.pages for msg in p.problems]

    @property
    def ok(self) -> bool:
        return bool(self.pages) and not self.problems

    def summary(self) -> str:
        blocked = sum(p.external_blocked for p in self.pages)
        lines = [f"checked {len(self.pages)} pages: {len(self.problems)} problems "
                 f"({blocked} requests to other hosts blocked, not judged)"]
        lines += [f"  PROBLEM {msg}" for msg in self.problems]
        lines += [f"  screenshot {name}: {path}" for name, path in self.screenshots.items()]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The browser closing a connection early (a blocked or cancelled request) is not a problem.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 at a random port from a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="check-book-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def find_pages(root: Path) -> list[Path]:
    """Every HTML page of the book (relative paths), assets folders excluded."""
    pages = [p.relative_to(root) for p in root.rglob("*.html")]
    return sorted(p for p in pages if not any(part in SKIP_DIRS for part in p.parts))


@functools.cache
def _anchors(path: Path) -> frozenset[str]:
    text = path.read_text(errors="replace")
    return frozenset(re.findall(r"""\b(?:id|name)\s*=\s*["']([^"']+)["']""", text))


def check_link(root: Path, base_url: str, href: str) -> str | None:
    """A problem description when ``href`` (absolute URL) points into the book but does not resolve."""
    if not href.startswith(base_url):
        return None
    url, fragment = urldefrag(href)
    rel = unquote(urlsplit(url).path)[len(urlsplit(base_url).path):]
    target = root / rel
    if rel == "" or target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"broken link to {rel or '/'} (no such file)"
    if fragment and target.suffix == ".html" and unquote(fragment) not in _anchors(target):
        return f"broken link to {rel}#{fragment} (no such anchor)"
    return None


def _launch(playwright: Any, chromium: str, user_data_dir: str) -> Any:
    return playwright.chromium.launch_persistent_context(
        user_data_dir, executable_path=chromium, headless=True, args=list(CHROMIUM_FLAGS),
        viewport={"width": 1280, "height": 900}, service_workers="block")


def check_page(context: Any, root: Path, base_url: str, rel: Path, *, timeout_s: float,
               screenshot: Path | None = None) -> PageReport:
    """Load one page and collect its problems (see the module docstring)."""
    report = PageReport(str(rel))
    redirect = _REFRESH.search((root / rel).read_text(errors="replace"))
    if redirect:  # a redirect page (index.html): its target must exist; the target is checked on its own
        href = urljoin(base_url + rel.as_posix(), redirect.group(1).strip())
        problem = check_link(root, base_url, href)
        if problem:
            report.problems.append(f"redirect: {problem}")
        return report
    page = context.new_page()
    origin = base_url.rstrip("/")

    def route(route: Any) -> None:
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            report.external_blocked += 1
            route.abort("blockedbyclient")

    def on_console(msg: Any) -> None:
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        if where and not where.startswith(origin):
            return  # a blocked request to another host
        if "ERR_BLOCKED_BY_CLIENT" in msg.text:
            return
        report.problems.append(f"console error: {msg.text}")

    def on_failed(request: Any) -> None:
        if request.url.startswith(origin) and urlsplit(request.url).path not in IGNORED_PATHS:
            report.problems.append(f"request failed: {request.url[len(origin):]} ({request.failure})")

    def on_response(response: Any) -> None:
        path = urlsplit(response.url).path
        if response.url.startswith(origin) and response.status >= 400 and path not in IGNORED_PATHS:
            report.problems.append(f"HTTP {response.status} for {path}")

    page.route("**/*", route)
    page.on("pageerror", lambda exc: report.problems.append(f"JavaScript error: {exc}"))
    page.on("console", on_console)
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    try:
        page.goto(base_url + rel.as_posix(), wait_until="load", timeout=timeout_s * 1000)
        page.evaluate(_WAIT_FOR_IMAGES)
        try:
            page.wait_for_load_state("networkidle", timeout=3000)
        except Exception:  # a page that keeps polling is judged on what it loaded so far
            pass
        for src in page.evaluate(_BROKEN_IMAGES):
            report.problems.append(f"image not displayed: {src}")
        seen: set[str] = set()
        for href in page.evaluate(_LINKS):
            problem = check_link(root, base_url, href)
            if problem and problem not in seen:
                seen.add(problem)
                report.problems.append(problem)
        if screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
    except Exception as exc:  # a page that cannot load is a problem of that page, not a crash
        report.problems.append(f"could not load: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    finally:
        page.close()
    return report


def _shot_targets(pages: Sequence[Path], shots: Mapping[str, str]) -> tuple[dict[Path, str], list[str]]:
    targets: dict[Path, str] = {}
    missing: list[str] = []
    for name, pattern in shots.items():
        match = next((p for p in pages if p.match(pattern) and p.as_posix().count("/") == pattern.count("/")),
                     None)
        if match is None:
            missing.append(f"no page matches {pattern!r}: no {name} screenshot")
        else:
            targets[match] = name
    return targets, missing


def check_book(html_dir: str | Path, *, screenshots: str | Path | None = None, chromium: str = DEFAULT_CHROMIUM,
               shots: Mapping[str, str] = DEFAULT_SHOTS, timeout_s: float = 30.0) -> BookReport:
    """Check every page of the HTML folder ``html_dir`` in headless Chromium (see the module docstring).

    Screenshots named after ``shots`` are written to ``screenshots`` (none when ``None``). Raises
    :class:`CheckBookError` when the folder, Chromium or Playwright is missing.
    """
    root = Path(html_dir).resolve()
    if not root.is_dir():
        raise CheckBookError(f"{root} is not a folder; build the book first (make book)")
    exe = shutil.which(chromium)
    if exe is None:
        raise CheckBookError(f"Chromium not found at {chromium!r}; install it (apt-get install chromium) "
                             "or pass --chromium PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise CheckBookError("the Python package playwright is missing: pip install playwright "
                             "(no 'playwright install' needed: the system Chromium is used)") from None
    pages = find_pages(root)
    report = BookReport()
    if not pages:
        report.notes.append(f"no HTML pages under {root}")
        return report
    targets, missing = _shot_targets(pages, shots) if screenshots is not None else ({}, [])
    report.notes.extend(missing)
    _anchors.cache_clear()
    with serve(root) as base_url, tempfile.TemporaryDirectory(prefix="check-book-profile-") as profile_dir, \
            sync_playwright() as playwright:
        context = _launch(playwright, exe, profile_dir)
        try:
            for rel in pages:
                shot = Path(screenshots) / f"{targets[rel]}.png" if rel in targets else None
                page_report = check_page(context, root, base_url, rel, timeout_s=timeout_s, screenshot=shot)
                report.pages.append(page_report)
                if shot is not None and shot.exists():
                    report.screenshots[targets[rel]] = shot
        finally:
            context.close()
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html_dir", nargs="?", default="_build/html", help="the built book (default _build/html)")
    parser.add_argument("--screenshots", default="_build/screenshots",
                        help="folder for the screenshots (default _build/screenshots)")
    parser.add_argument("--chromium", default=DEFAULT_CHROMIUM, help=f"browser binary (default {DEFAULT_CHROMIUM})")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to load one page (default 30)")
    args = parser.parse_args(argv)
    try:
        report = check_book(args.html_dir, screenshots=args.screenshots, chromium=args.chromium,
                            timeout_s=args.timeout)
    except CheckBookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
