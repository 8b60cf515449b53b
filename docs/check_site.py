"""Crawl the built documentation site: every page renders, and no link or image is broken.

    mkdocs build --strict && python docs/check_site.py [site]

Two passes over the site folder (default ``site/``):

1. Static: every ``href`` and ``src`` of every page that points inside the site names a file
   that exists, and every ``#anchor`` names an element id of its page.
2. In headless Chromium (skipped with a note when no ``chromium`` is installed): the site is
   served on 127.0.0.1, a crawler page opens each page in a frame and reports pages whose
   article did not render and images that did not load (``naturalWidth`` 0).

Exit status 1 with one line per problem, 0 when there is none.
"""

from __future__ import annotations

import functools
import html
import http.server
import json
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

CRAWLER = "_crawl.html"


class Links(HTMLParser):
    """The href/src values and the element ids of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if value and (name == "src" or (name == "href" and tag in ("a", "link"))):
                self.targets.append(value)


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def resolve(site: Path, page: Path, target: str) -> tuple[Path, str] | None:
    """The file a link points at and its anchor; None for links that leave the site."""
    url = urlsplit(target)
    if url.scheme or url.netloc or target.startswith(("mailto:", "javascript:", "data:")):
        return None
    path = unquote(url.path)
    file = page if not path else (site / path.lstrip("/") if path.startswith("/") else page.parent / path)
    file = file.resolve()
    if file.is_dir() or path.endswith("/"):
        file = file / "index.html"
    return file, url.fragment


def static_problems(site: Path) -> list[str]:
    pages = sorted(site.rglob("*.html"))
    parsed = {page.resolve(): parse(page) for page in pages}
    problems = []
    for page in pages:
        for target in parsed[page.resolve()].targets:
            resolved = resolve(site, page, target)
            if resolved is None:
                continue
            file, anchor = resolved
            where = page.relative_to(site)
            if not file.is_file():
                problems.append(f"{where}: broken link or image {target!r}")
            elif anchor and file.suffix == ".html":
                ids = parsed[file].ids if file in parsed else parse(file).ids
                if anchor not in ids:
                    problems.append(f"{where}: {target!r} names no element id {anchor!r}")
    return problems


# Every page in a frame of one page: its load event waits for each frame and each frame's images,
# and its handler writes what it found before Chromium dumps the DOM.
CRAWLER_PAGE = """<!doctype html><meta charset="utf-8"><pre id="result">not loaded</pre>%s<script>
window.addEventListener("load", () => {
  const problems = [];
  for (const frame of document.querySelectorAll("iframe")) {
    const url = frame.getAttribute("src"), doc = frame.contentDocument;
    const article = doc && doc.querySelector("article");
    if (!article || article.textContent.trim().length < 20) problems.push(url + ": the page did not render its article");
    for (const img of doc ? doc.images : []) if (!img.naturalWidth) problems.push(url + ": image did not load: " + img.getAttribute("src"));
  }
  document.getElementById("result").textContent = JSON.stringify({checked: document.querySelectorAll("iframe").length, problems});
});
</script>"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def browser_problems(site: Path, chromium: str) -> list[str]:
    pages = [str(p.relative_to(site)) for p in sorted(site.rglob("*.html")) if p.name != CRAWLER and p.name != "404.html"]
    frames = "".join(f'<iframe src="{page}" width="1200" height="900"></iframe>' for page in pages)
    (site / CRAWLER).write_text(CRAWLER_PAGE % frames, encoding="utf-8")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--timeout=60000",
                              "--dump-dom", f"http://127.0.0.1:{server.server_address[1]}/{CRAWLER}"],
                             capture_output=True, text=True, timeout=120).stdout
    finally:
        server.shutdown()
        (site / CRAWLER).unlink()
    start = dom.find('<pre id="result">')
    text = html.unescape(dom[start + len('<pre id="result">'):dom.find("</pre>", start)]) if start >= 0 else ""
    if not text.startswith("{"):
        return [f"the crawler page did not load in Chromium ({text or 'no output'})"]
    result = json.loads(text)
    print(f"Chromium: {result['checked']} pages rendered and their images checked")
    return result["problems"] + ([] if result["checked"] == len(pages) else [f"Chromium checked {result['checked']} of {len(pages)} pages"])


def main() -> int:
    site = Path(sys.argv[1] if len(sys.argv) > 1 else "site")
    if not (site / "index.html").is_file():
        print(f"{site}/index.html does not exist: run mkdocs build first", file=sys.stderr)
        return 1
    problems = static_problems(site)
    print(f"static check: {len(list(site.rglob('*.html')))} pages")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium:
        problems += browser_problems(site, chromium)
    else:
        print("note: no chromium on PATH; the in-browser check was skipped")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
