"""GA4GH service-info of the DRS API (DRS 1.2: GET {drs base}/service-info)."""

from __future__ import annotations

import requests

from ghga_tasks import __version__

T = 30


def test_drs_service_info(stack):
    r = requests.get(f"{stack.drs_api}/service-info", timeout=T)
    assert r.status_code == 200, r.text
    info = r.json()
    # the required fields of the GA4GH service-info schema
    assert info["type"] == {"group": "org.ga4gh", "artifact": "drs", "version": "1.2.0"}
    assert isinstance(info["id"], str) and info["id"]
    assert isinstance(info["name"], str) and info["name"]
    assert info["version"] == __version__
    assert isinstance(info["organization"]["name"], str) and info["organization"]["name"]
    assert info["organization"]["url"].startswith("http")


def test_service_info_is_exempt_from_injected_faults(stack):
    stack.configure(error_rate=1.0)
    try:
        assert requests.get(f"{stack.drs_api}/objects/any", timeout=T).status_code in (429, 503)
        r = requests.get(f"{stack.drs_api}/service-info", timeout=T)
        assert r.status_code == 200, r.text
        assert r.json()["type"]["artifact"] == "drs"
    finally:
        stack.configure(error_rate=0)
