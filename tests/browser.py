"""Open an HTML file in a real headless browser (Debian's chromium via selenium) and list what failed
to render: images that did not load, tables without data rows or with no size on screen.

Offline by construction: explicit chromedriver path (so Selenium Manager never runs or downloads)
and chromium flags that stop it from reaching the network.
"""

from __future__ import annotations

import base64
import contextlib
import io
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1024",
)
INSTALL_HINT = "./run test installs them (apt-get install chromium chromium-driver)"

# Runs in the page: wait until every <img> has decoded or failed, then list the problems.
_CHECK_JS = """
const done = arguments[arguments.length - 1];
const shown = (el) => {
  const r = el.getBoundingClientRect(), s = getComputedStyle(el);
  return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none";
};
const size = (el) => { const r = el.getBoundingClientRect(); return `${r.width}x${r.height}`; };
const imgs = Array.from(document.images);
Promise.all(imgs.map((i) => i.decode().then(() => null, (e) => String(e)))).then((errors) => {
  const problems = [];
  imgs.forEach((img, k) => {
    const src = (img.getAttribute("src") || "").slice(0, 40);
    const name = `<img> #${k + 1} (alt=${JSON.stringify(img.alt)}, src=${JSON.stringify(src)})`;
    if (!img.complete || img.naturalWidth === 0) problems.push(`${name} did not load`);
    else if (errors[k]) problems.push(`${name} cannot be decoded: ${errors[k]}`);
    else if (!shown(img)) problems.push(`${name} is not shown (size ${size(img)})`);
  });
  document.querySelectorAll("table").forEach((t, k) => {
    const head = t.querySelector("th, td");
    const name = `<table> #${k + 1} (${JSON.stringify(head ? head.textContent : "")})`;
    const data = Array.from(t.rows).filter((r) => r.querySelector("td"));
    if (t.rows.length === 0) problems.push(`${name} has no rows`);
    else if (data.length === 0) problems.push(`${name} has a header but no data rows`);
    if (!shown(t)) problems.push(`${name} is not shown (size ${size(t)})`);
  });
  done(problems);
});
"""


def browser_missing() -> str | None:
    """Why the browser check cannot run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    return f"{', '.join(missing)} missing; {INSTALL_HINT}" if missing else None


@contextlib.contextmanager
def headless_chromium(timeout_s: float = 30.0) -> Iterator:
    """A selenium Chrome driver on /usr/bin/chromium with a fresh, throw-away profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="edgetl-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(timeout_s)
        driver.set_script_timeout(timeout_s)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def check_html_renders(html_path: str | Path, driver=None) -> list[str]:
    """Problems seen when ``html_path`` is opened in headless chromium; empty when all is fine.

    Every <img> must load (complete, naturalWidth > 0), decode and be shown; every <table> must have
    data rows and a non-zero size on screen. Pass ``driver`` to reuse an open browser.
    """
    html_path = Path(html_path).resolve()
    if not html_path.is_file():
        return [f"{html_path} does not exist"]
    if driver is None:
        with headless_chromium() as own:
            return check_html_renders(html_path, own)
    driver.get(html_path.as_uri())
    problems = list(driver.execute_async_script(_CHECK_JS))
    problems += _truncated_images(driver, problems)
    if not driver.find_elements("css selector", "body *"):
        problems.append(f"{html_path.name}: the page body is empty")
    return problems


def _truncated_images(driver, problems: list[str]) -> list[str]:
    """Images the browser shows although their data is cut short (a half-written PNG renders in
    part, with a naturalWidth): decode the bytes it loaded (data: or file: URLs) with PIL."""
    from PIL import Image

    out = []
    srcs = driver.execute_script("return Array.from(document.images).map((i) => [i.alt, i.currentSrc])")
    for k, (alt, src) in enumerate(srcs, 1):
        if any(p.startswith(f"<img> #{k} ") for p in problems):
            continue  # already reported by the browser
        if src.startswith("data:") and ";base64," in src:
            data = base64.b64decode(src.split(",", 1)[1])
        elif src.startswith("file:"):
            data = Path(url2pathname(urlparse(src).path)).read_bytes()
        else:
            continue
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
        except Exception as e:  # PIL raises several types for broken data
            out.append(f"<img> #{k} (alt={alt!r}) shows only part of its data: {e}")
    return out
