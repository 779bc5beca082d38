"""Offline API docs: with SELF_HOSTED on, /docs and /redoc load nothing from a CDN."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from opa._api_docs import STATIC_PATH
from support import make_app

PAGES = ("/docs", "/redoc")


class _AssetLinks(HTMLParser):
    """Collects the URLs of a page's <script src> and <link href>."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def asset_urls(html: str) -> list[str]:
    """The script and stylesheet (and icon) URLs that *html* makes a browser load."""
    parser = _AssetLinks()
    parser.feed(html)
    return parser.urls


def is_remote(url: str) -> bool:
    """Tell whether *url* points off the app (absolute http(s) or protocol-relative)."""
    return url.lower().startswith(("http://", "https://", "//"))


@pytest.mark.parametrize("page", PAGES)
def test_self_hosted_pages_reference_no_remote_asset(page: str) -> None:
    """With SELF_HOSTED on, the page's scripts and styles are all the app's own URLs."""
    with TestClient(make_app()) as client:
        response = client.get(page)
    assert response.status_code == 200
    urls = asset_urls(response.text)
    assert any(url.endswith(".js") for url in urls), urls
    assert [url for url in urls if is_remote(url)] == []
    assert all(url.startswith(f"{STATIC_PATH}/") for url in urls), urls
    assert "googleapis" not in response.text


@pytest.mark.parametrize("page", PAGES)
def test_self_hosted_assets_are_served(page: str) -> None:
    """Every asset a docs page references is served by the app with a JS, CSS or image type."""
    expected = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    with TestClient(make_app()) as client:
        urls = asset_urls(client.get(page).text)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200, url
            kind = expected[url[url.rfind(".") :]]
            assert kind in response.headers["content-type"], (url, response.headers)
            assert len(response.content) > 1000, url


def test_swagger_ui_has_its_oauth2_redirect_page() -> None:
    """The self-hosted Swagger UI names its OAuth2 redirect page, and the app serves it."""
    with TestClient(make_app()) as client:
        assert "/docs/oauth2-redirect" in client.get("/docs").text
        response = client.get("/docs/oauth2-redirect")
    assert response.status_code == 200
    assert "oauth2" in response.text.lower()


# FastAPI deprecates its root_path argument, which OPENAPI_PREFIX sets; not this test's topic.
@pytest.mark.filterwarnings("ignore:The `root_path` parameter is deprecated")
def test_self_hosted_pages_follow_the_openapi_prefix() -> None:
    """Behind OPENAPI_PREFIX, the schema and asset URLs carry the prefix."""
    with TestClient(make_app(OPENAPI_PREFIX="/api")) as client:
        html = client.get("/docs").text
    urls = asset_urls(html)
    assert urls and all(url.startswith(f"/api{STATIC_PATH}/") for url in urls), urls
    assert "'/api/openapi.json'" in html


def test_without_self_hosted_the_cdn_defaults_are_used() -> None:
    """With SELF_HOSTED off, FastAPI's own pages load their assets from the CDN."""
    with TestClient(make_app(SELF_HOSTED=False)) as client:
        docs, redoc = client.get("/docs"), client.get("/redoc")
        static = client.get(f"{STATIC_PATH}/swagger-ui.css")
    assert docs.status_code == redoc.status_code == 200
    for page in (docs, redoc):
        scripts = [url for url in asset_urls(page.text) if url.endswith(".js")]
        assert scripts and all(url.startswith("https://") for url in scripts), scripts
    assert static.status_code == 404


@pytest.mark.parametrize("self_hosted", [True, False])
def test_empty_docs_url_disables_the_swagger_page(self_hosted: bool) -> None:
    """DOCS_URL="" removes /docs and its redirect page, while /redoc stays."""
    with TestClient(make_app(DOCS_URL="", SELF_HOSTED=self_hosted)) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/docs/oauth2-redirect").status_code == 404
        assert client.get("/redoc").status_code == 200


def test_empty_redoc_url_disables_the_redoc_page() -> None:
    """REDOC_URL="" removes /redoc, while /docs stays."""
    with TestClient(make_app(REDOC_URL="")) as client:
        assert client.get("/redoc").status_code == 404
        assert client.get("/docs").status_code == 200


def test_docs_pages_are_not_in_the_schema() -> None:
    """The docs pages and their assets add nothing to the OpenAPI schema."""
    with TestClient(make_app()) as client:
        paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc", "/_opa"))]
