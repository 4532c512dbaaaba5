"""The pages in a real browser (headless Chromium) against a real server with the real model."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.browser import (
    DESKTOP,
    LONG_TITLE,
    PHONE,
    SCREENSHOTS,
    UPLOAD_LIMIT,
    Tab,
    ingest,
)
from tests.support.server import running_server

pytestmark = [pytest.mark.browser, pytest.mark.model]

XSS = '<img src=x onerror="window.pwned=1"> and <script>window.pwned=1</script>'


def test_upload_search_open_and_follow_a_similar_document(tab: Tab, tmp_path: Path) -> None:
    glacier = tmp_path / "glaciers.md"
    glacier.write_text(
        "# Glaciers\n\nGlaciers are rivers of ice that carve valleys. Meltwater from a "
        "retreating glacier feeds lakes, and crevasses open where the ice bends."
    )
    choir = tmp_path / "choir.txt"
    choir.write_text("Our choir rehearses on Tuesdays: sopranos, altos, tenors and basses.")
    page = tab.page
    tab.go("/upload")
    page.set_input_files("#files", [glacier, choir])
    rows = page.locator("#queue li")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_class(re.compile(r"\badded\b"), timeout=60_000)
    expect(rows.nth(1)).to_have_class(re.compile(r"\badded\b"), timeout=60_000)
    expect(rows.nth(0)).to_contain_text("glaciers.md")
    tab.shoot("upload-done-desktop")

    tab.go("/")
    page.fill("#q", "melting ice carving valleys")
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r"q=melting"))
    first = page.locator(".hit").first
    expect(first.locator("h2")).to_have_text("Glaciers")
    expect(first.locator(".snippet mark").first).to_be_visible()
    tab.shoot("search-desktop")

    first.locator("h2 a").click()
    expect(page.locator("h1")).to_have_text("Glaciers")
    expect(page.locator(".chunk-mark").first).to_be_visible()
    similar = page.locator("#similar li a").first
    title = similar.inner_text()
    similar.click()
    expect(page.locator("h1")).to_have_text(title)


def test_search_modes_scores_and_shareable_url(tab: Tab) -> None:
    page = tab.page
    tab.go("/?q=bake+bread+in+the+oven&mode=semantic")
    expect(page.locator(".hit h2").first).to_have_text("Sourdough bread")
    expect(page.locator(".scores").first).to_be_hidden()
    page.check("#show-scores")
    expect(page.locator(".scores").first).to_be_visible()
    assert "scores=1" in page.url
    page.click("label[for=mode-keyword]")
    page.wait_for_url(re.compile(r"mode=keyword"))
    expect(page.locator("#mode-keyword")).to_be_checked()
    expect(page.locator(".hit").first).to_be_visible()


def test_document_text_never_runs_as_code(tab: Tab) -> None:
    (doc_id,) = ingest(tab.base, {f"Hostile {XSS}": f"Volcanic xsstoken text. {XSS} The end."})
    page = tab.page
    for path in [f"/documents/{doc_id}", "/?q=xsstoken&mode=keyword", "/documents"]:
        tab.go(path)
        assert page.evaluate("typeof window.pwned") == "undefined", path
        assert page.locator("img[src=x]").count() == 0
    tab.go(f"/documents/{doc_id}")
    expect(page.locator(".text")).to_contain_text("<script>window.pwned=1</script>")
    expect(page.locator("h1")).to_contain_text('onerror="window.pwned=1"')


def test_upload_errors_are_clear_messages(tab: Tab, tmp_path: Path) -> None:
    page = tab.page
    (tmp_path / "program.exe").write_bytes(b"MZ\x00\x01binary")
    (tmp_path / "huge.txt").write_text("word " * (UPLOAD_LIMIT // 4))
    (tmp_path / "fine.txt").write_text("Unreachable server test.")
    tab.go("/upload")
    page.set_input_files("#files", [tmp_path / "program.exe", tmp_path / "huge.txt"])
    rows = page.locator("#queue li")
    expect(rows.nth(0)).to_have_class(re.compile(r"\bfailed\b"), timeout=30_000)
    expect(rows.nth(0).locator(".file-status")).to_contain_text("Failed:")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bfailed\b"))
    expect(rows.nth(1).locator(".file-status")).to_contain_text("Too large")
    page.route("**/api/documents", lambda route: route.abort())
    page.set_input_files("#files", tmp_path / "fine.txt")
    expect(rows.nth(2).locator(".file-status")).to_contain_text("Could not reach the server")
    assert "{" not in page.locator("#queue").inner_text()  # never raw JSON
    tab.shoot("upload-errors-desktop")
    tab.errors.clear()  # the browser logs the refused requests themselves


def test_delete_from_the_list_after_confirming(tab: Tab) -> None:
    (doc_id,) = ingest(tab.base, {"Temporary note": "This note will be deleted from the list."})
    page = tab.page
    tab.go("/documents")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click(f"a[data-delete='{doc_id}']")
    expect(page.locator(f"#document-{doc_id}")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(f"a[data-delete='{doc_id}']")
    expect(page.locator(f"#document-{doc_id}")).to_have_count(0)
    expect(page.locator("#status")).to_contain_text("Deleted")
    assert httpx.get(f"{tab.base}/api/documents/{doc_id}").status_code == 404


def test_cluster_and_explore_the_map(tab: Tab) -> None:
    page = tab.page
    tab.go("/clusters")
    page.select_option("#k", "4")
    page.click("#run-clusters button[type=submit]")
    expect(page.locator(".cluster")).to_have_count(4, timeout=60_000)
    points = page.locator("#map svg a.point")
    documents = httpx.get(f"{tab.base}/api/documents").json()["total"]
    expect(points).to_have_count(documents)
    assert page.locator("#map svg circle.none").count() == 0  # every point has its cluster
    expect(page.locator(".legend button")).to_have_count(4)
    point = points.first
    title = point.get_attribute("aria-label")
    point.hover()
    expect(page.locator(".tip")).to_be_visible()
    expect(page.locator(".tip strong")).to_have_text(title)
    tab.shoot("clusters-desktop")
    point.click()
    expect(page.locator("h1")).to_have_text(title)


def test_playground_heat_map_and_curl(tab: Tab) -> None:
    page = tab.page
    tab.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    tab.go("/playground")
    page.fill(
        "#texts", "A cat sleeps on the mat.\nA kitten naps on a rug.\nBond yields rose today."
    )
    page.click("button:text('Compare')")
    cells = page.locator("#heatmap td.heat")
    expect(cells).to_have_count(9)
    values = [float(v) for v in cells.all_inner_texts()]
    assert values[0] == values[4] == values[8] == 1.0
    assert values[1] > values[2] + 0.2  # cat ~ kitten, not cat ~ bonds
    expect(page.locator("#curl")).to_contain_text("/v1/embeddings")
    expect(page.locator("#curl")).to_contain_text("A kitten naps on a rug.")
    page.click("#copy-curl")
    expect(page.locator("#copy-curl")).to_have_text("Copied")
    assert "/v1/embeddings" in page.evaluate("navigator.clipboard.readText()")
    tab.shoot("playground-desktop")


def test_api_docs_work_offline(tab: Tab) -> None:
    tab.go("/docs")
    expect(tab.page.locator(".swagger-ui .info .title")).to_contain_text("embedsearch")
    expect(tab.page.locator(".opblock").first).to_be_visible()
    outside = [u for u in tab.requests if not u.startswith(tab.base) and not u.startswith("data:")]
    assert outside == []
    tab.shoot("docs-desktop")


def test_keyboard_reaches_search_and_results(tab: Tab) -> None:
    page = tab.page
    tab.go("/")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.type("stock market index")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"q=stock"))
    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.locator(".skip")).to_be_focused()


def test_sign_in_flow_with_keys(browser, tmp_path: Path) -> None:  # noqa: ANN001
    key = "browser-secret-key"
    with running_server(tmp_path, {"EMBEDSEARCH_API_KEYS": key}) as (url, _, log):
        context = browser.new_context(viewport=DESKTOP)
        page = context.new_page()
        page.goto(f"{url}/documents")
        expect(page).to_have_url(re.compile(r"/signin\?next=%2Fdocuments$"))
        page.fill("#key", "wrong-key")
        page.click("button:text('Sign in')")
        expect(page.locator(".notice.error")).to_have_text("That key is not valid.")
        page.screenshot(path=str(_shot("signin-desktop")), full_page=True)
        page.fill("#key", key)
        page.click("button:text('Sign in')")
        expect(page).to_have_url(f"{url}/documents")
        (cookie,) = context.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""
        status = page.evaluate("fetch('/api/collections').then(r => r.status)")
        assert status == 200  # the pages' own API calls are authorised by the cookie
        page.click("button:text('Sign out')")
        expect(page).to_have_url(f"{url}/signin")
        page.goto(f"{url}/upload")
        expect(page).to_have_url(re.compile(r"/signin\?next=%2Fupload$"))
        context.close()
        assert key not in log.read_text()


def _shot(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


@pytest.mark.parametrize(("size", "viewport"), [("desktop", DESKTOP), ("phone", PHONE)])
def test_screenshots_of_every_page(browser, server: str, size: str, viewport: dict) -> None:  # noqa: ANN001
    context = browser.new_context(viewport=viewport)
    tab = Tab(context.new_page(), server)
    listing = httpx.get(f"{server}/api/documents?limit=1000").json()["data"]
    found = [d["id"] for d in listing if d["title"] == LONG_TITLE]
    assert len(found) == 1, [(d["id"], d["title"]) for d in listing]
    long_id = found[0]
    pages = {
        "home": "/",
        "results": "/?q=volcano+lava&scores=1",
        "upload": "/upload",
        "documents": "/documents",
        "document": f"/documents/{long_id}",
        "clusters": "/clusters",
        "playground": "/playground?texts=A+cat%0AA+kitten%0AStock+prices",
        "not-found": "/documents/999999",
    }
    for name, path in pages.items():
        tab.go(path)
        tab.shoot(f"{name}-{size}")
        width = tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport["width"], f"{name} scrolls sideways on {size}"
    context.close()
    assert [e for e in tab.errors if "404" not in e] == []
