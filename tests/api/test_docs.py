"""``/docs`` and ``/redoc`` work with no internet: everything they name is served here."""

from __future__ import annotations

import re

import pytest

from tests.conftest import Api

# What an HTML page makes the browser load: attributes, and the document Swagger UI reads.
NAMED = re.compile(r"""(?:\bsrc|\bhref|spec-url)\s*=\s*["']([^"']+)["']|\burl:\s*'([^']+)'""")
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)""")


def same_origin(url: str) -> bool:
    """A path on this server (``/x``), not ``http(s)://...`` nor ``//host/...``."""
    return url.startswith("/") and not url.startswith("//")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_load_nothing_from_outside(quiet_api: Api, page: str) -> None:
    response = await quiet_api.http.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http://" not in html and "https://" not in html
    named = [first or second for first, second in NAMED.findall(html)]
    assert len(named) >= 3, named  # the script, the favicon, the OpenAPI document

    for url in named:
        assert same_origin(url), url
        asset = await quiet_api.http.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
        if url.endswith(".css"):
            inside = CSS_URL.findall(asset.text)
            assert all(found.startswith("data:") for found in inside), inside


async def test_swagger_ui_sends_the_document_to_no_validator(quiet_api: Api) -> None:
    html = (await quiet_api.http.get("/docs")).text
    assert '"validatorUrl": null' in html
