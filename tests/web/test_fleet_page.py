"""The live fleet page: fed from the predictions and battery-health topics, rendered by
headless Chromium."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.chromium import Browser, chromium_path
from tests.support.ops import get_json, prediction, produce_json, scrape, settings_of, wait_for
from tests.web.test_fleet_view import health

pytestmark = pytest.mark.integration

# asset -> RUL per successive prediction; the last one is what the page ranks by.
FLEET = {
    "PAGE-ENGINE-01": [120.0, 110.0, 98.5],
    "PAGE-ENGINE-02": [60.0, 41.0, 22.0],
    "PAGE-ENGINE-03": [140.0, 139.0, 137.0],
    "PAGE-ENGINE-04": [35.0, 20.0, 8.5],
    "PAGE-ENGINE-05": [90.0, 70.0, 55.0],
}
EXPECTED_ORDER = sorted(FLEET, key=lambda asset: FLEET[asset][-1])
# VIN -> SoH of three successive weeks; one ends under the end-of-life SoH (80 %).
EVS = {
    "PAGEEV00000000001": [99.0, 98.6, 98.1],
    "PAGEEV00000000002": [82.0, 80.6, 79.4],
    "PAGEEV00000000003": [91.0, 90.2, 89.9],
}
WEEKS = ["2026-11-02", "2026-11-09", "2026-11-16"]
EV_ORDER = sorted(EVS, key=lambda vin: EVS[vin][-1])
END_OF_LIFE = {
    "threshold": 80.0,
    "date": "2029-05-07",
    "date_lower": "2028-10-02",
    "date_upper": None,
    "odometer_km": 151000.0,
}

# What the page shows of the EVs above: their rows' order and highlights, points per
# sparkline, the first row's end of life and the under-threshold tile.
EV_TABLE = """(() => {
  const rows = [...document.querySelectorAll('#evs tbody tr')]
    .filter((r) => [VINS].includes(r.dataset.vin));
  return {
    order: rows.map((r) => r.dataset.vin),
    critical: rows.filter((r) => r.classList.contains('critical')).map((r) => r.dataset.vin),
    points: rows.map((r) => r.querySelector('svg.soh-chart polyline')
      .getAttribute('points').trim().split(' ').length),
    eol: rows[0].querySelector('td.eol').textContent,
    under: document.querySelector('#c-evs-under').textContent,
  };
})()"""


@pytest.fixture(scope="module")
def fleet_worker(web_worker):
    worker, env = web_worker
    records = [
        prediction(asset, rul, f"2026-11-22T06:{10 + step:02d}:00Z")
        for asset, ruls in FLEET.items()
        for step, rul in enumerate(ruls)
    ]
    produce_json(env, env["TOPIC_PREDICTIONS"], [*records, *records[:3]])
    weeks = [
        health(vin, week, soh, end_of_life=END_OF_LIFE if vin == EV_ORDER[0] else None)
        for vin, sohs in EVS.items()
        for week, soh in zip(WEEKS, sohs, strict=True)
    ]
    produce_json(env, settings_of(env).topic_battery_health, weeks)

    def arrived():
        body = get_json(worker, "/api/v1/fleet")
        mine = [a for a in body["assets"] if a["asset_id"] in FLEET]
        evs = [ev for ev in body["evs"] if ev["vin"] in EVS]
        complete = len(mine) == len(FLEET) and all(len(a["history"]) == 3 for a in mine)
        return body if complete and [len(ev["trend"]) for ev in evs] == [3] * len(EVS) else None

    wait_for(arrived, 60, "predictions and battery health on the fleet API")
    return worker


def test_fleet_api_ranks_assets_by_latest_rul_with_intervals_and_history(fleet_worker) -> None:
    body = get_json(fleet_worker, "/api/v1/fleet")
    mine = [a for a in body["assets"] if a["asset_id"] in FLEET]
    assert [a["asset_id"] for a in mine] == EXPECTED_ORDER
    for asset in mine:
        ruls = FLEET[asset["asset_id"]]
        assert asset["rul"] == ruls[-1]
        assert asset["lower"] == max(0.0, ruls[-1] - 12.0) and asset["upper"] == ruls[-1] + 12.0
        assert [point["rul"] for point in asset["history"]] == ruls  # duplicates ignored
        assert asset["model_version"] == "test-v1"
    assert body["under_threshold"] >= 2  # 8.5 and 22.0 are under the default 30 cycles
    assert "streamapp_ingest_messages" in body["counters"]
    gauge = scrape(fleet_worker)["streamapp_rul_assets_under_threshold"].samples[0].value
    assert gauge == body["under_threshold"]


def test_fleet_api_lists_evs_most_worn_first_with_their_trend(fleet_worker) -> None:
    body = get_json(fleet_worker, "/api/v1/fleet")
    mine = [ev for ev in body["evs"] if ev["vin"] in EVS]
    assert [ev["vin"] for ev in mine] == EV_ORDER
    for ev in mine:
        assert ev["soh"] == EVS[ev["vin"]][-1] and ev["week"] == WEEKS[-1]
        assert ev["trend"] == [
            {"week": week, "soh": soh} for week, soh in zip(WEEKS, EVS[ev["vin"]], strict=True)
        ]
    assert mine[0]["end_of_life"] == END_OF_LIFE
    assert body["evs_under_threshold"] >= 1 and body["eol_soh"] == 80.0


def test_fleet_page_renders_the_table_and_charts_in_chromium(fleet_worker, artifacts_dir) -> None:
    executable = chromium_path()
    assert executable, "Chromium is missing: apt-get install -y chromium (make test does it)"
    ids = ", ".join(f"'{asset}'" for asset in FLEET)

    vins = ", ".join(f"'{vin}'" for vin in EVS)

    async def drive() -> tuple[list[str], list[int], str, dict[str, Any], bytes]:
        async with Browser(executable) as browser:
            await browser.goto(fleet_worker.base_url + "/")
            await browser.wait_for(
                f"[{ids}].every(id => document.querySelector(`tr[data-asset='${{id}}']`))"
            )
            await browser.wait_for(
                f"[{vins}].every(vin => document.querySelector(`#evs tr[data-vin='${{vin}}']`))"
            )
            await browser.wait_for("document.querySelector('#status').className.includes('live')")
            order = await browser.evaluate(
                f"[...document.querySelectorAll('#fleet tbody tr')].map(r => r.dataset.asset)"
                f".filter(id => [{ids}].includes(id))"
            )
            points = await browser.evaluate(
                f"[{ids}].map(id => document.querySelector(`tr[data-asset='${{id}}'] "
                "svg.rul-chart polyline`).getAttribute('points').trim().split(' ').length)"
            )
            assets_tile = await browser.evaluate("document.querySelector('#c-assets').textContent")
            evs = await browser.evaluate(EV_TABLE.replace("VINS", vins))
            return order, points, assets_tile, evs, await browser.screenshot()

    order, points, assets_tile, evs, png = asyncio.run(drive())
    assert order == EXPECTED_ORDER
    assert points == [3] * len(FLEET)
    assert int(assets_tile) >= len(FLEET)
    assert evs["order"] == EV_ORDER and evs["critical"] == ["PAGEEV00000000002"]
    assert evs["points"] == [3] * len(EVS) and int(evs["under"]) >= 1
    assert evs["eol"] == "2029-05-07 [2028-10-02, later]"
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    # For a human to look at (and to copy to docs/img/ when the page changes); a test
    # run never rewrites the checkout's tracked files.
    (artifacts_dir / "fleet-page.png").write_bytes(png)


def test_static_files_are_served_and_unknown_ones_are_404(web_worker) -> None:
    worker, _ = web_worker
    status, page = worker.get("/")
    assert status == 200 and b"/static/fleet.js" in page and b'<table id="fleet">' in page
    assert b'<table id="evs">' in page
    assert worker.get("/static/fleet.js")[0] == 200
    assert worker.get("/static/fleet.css")[0] == 200
    assert worker.get("/static/nothing.js")[0] == 404
    assert worker.get("/static/..%2Fviews.py")[0] == 404
