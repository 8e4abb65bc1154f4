"""The dashboard's files: the vendored chart library is served, shipped with its licence, and
everything the page loads comes from the bridge itself (it must work with no internet)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from importlib import resources

STATIC = resources.files("secmon_http") / "static"


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_page_loads_nothing_from_elsewhere():
    page = (STATIC / "index.html").read_text()
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "/static/vendor/uPlot.iife.min.js" in loaded and "/static/app.js" in loaded
    assert all(url.startswith(("/static/", "#")) for url in loaded), loaded
    assert "<script>" not in page and " style=" not in page  # nothing inline: the CSP allows only 'self'


def test_the_vendored_library_is_the_version_its_readme_names_with_its_licence():
    vendor = STATIC / "vendor"
    banner = (vendor / "uPlot.iife.min.js").read_text()[:200]
    version = re.search(r"\(v(\d+\.\d+\.\d+)\)", banner)
    assert version, banner
    assert f"`uplot` {version[1]}" in (vendor / "README.md").read_text()
    assert "MIT License" in (vendor / "uPlot.LICENSE").read_text()


SERVED = [
    ("/static/vendor/uPlot.iife.min.js", 200, "application/javascript"),
    ("/static/vendor/uPlot.min.css", 200, "text/css"),
    ("/static/vendor/uPlot.LICENSE", 404, None),  # not a type the bridge serves
    ("/static/vendor/nosuch.js", 404, None),
    ("/static/vendor/..%2Fapp.js", 404, None),
    ("/static/other/app.js", 401, None),  # no public route: behind the token like any unknown path
]


def test_vendored_files_are_served_without_the_token_and_nothing_else(cluster, hub):
    http = cluster.start_http()
    for path, status, kind in SERVED:
        code, headers, body = fetch(http.url + path)
        assert code == status, (path, body[:200])
        if kind:
            assert headers["Content-Type"].startswith(kind), path
            assert "default-src 'self'" in headers["Content-Security-Policy"]
            assert len(body) > 1000
