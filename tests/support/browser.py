"""Helpers for the browser tests: Debian's Chromium, viewports, the corpus the server holds, a
tab that records console errors, and adding titled documents."""

from __future__ import annotations

from pathlib import Path

from tests.support.live import upload

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
UPLOAD_LIMIT = 200_000

LONG_TITLE = "A history of Vesuvius"  # long enough for several overlapping chunks

# A small corpus in four topics, so search, similarity and clustering have something to find.
CORPUS = {
    "Volcanoes of Iceland": "Iceland sits on the Mid-Atlantic Ridge. Its volcanoes erupt basaltic lava; Eyjafjallajökull's ash cloud grounded flights across Europe in 2010.",
    "How lava cools": "Molten rock that reaches the surface is lava. As it cools it forms basalt, pumice or obsidian, depending on gas content and cooling speed.",
    "Earthquakes and plate tectonics": "Earthquakes happen where tectonic plates grind past each other. Seismometers record the waves, and the magnitude scale measures released energy.",
    "Sourdough bread": "A sourdough starter of flour and water ferments with wild yeast. Knead the dough, let it rise overnight and bake it in a hot oven.",
    "Making pasta at home": "Fresh pasta needs only flour and eggs. Knead the dough until smooth, rest it, then roll it thin and cut tagliatelle.",
    "Roasting vegetables": "Toss carrots and potatoes in olive oil and salt, then roast them in a hot oven until the edges caramelise.",
    "Index funds": "An index fund buys every stock in a market index, so investors get the market's return with low fees.",
    "Bond yields": "When interest rates rise, existing bonds fall in price and their yields go up; investors compare yields across maturities.",
    "Inflation and savings": "Inflation erodes the value of cash savings, so investors look for returns above the rate of price increases.",
    "Training for a marathon": "Marathon runners build mileage slowly, with one long run a week, easy recovery days and a taper before the race.",
    "Football tactics": "A pressing football team wins the ball high up the pitch; the full-backs push forward and the midfield stays compact.",
    "Tennis serve": "A good tennis serve starts with a steady ball toss, a relaxed arm and a snap of the wrist at contact.",
    LONG_TITLE: "\n\n".join(
        f"Vesuvius, part {n}. The volcano above Naples buried Pompeii and Herculaneum in the year "
        "79 under ash and pumice. Pyroclastic flows swept down its slopes faster than anyone "
        "could run, and the eruption column rose more than thirty kilometres into the sky. "
        "Today the observatory on its flank watches for swelling ground, gas and small quakes."
        for n in range(1, 7)
    ),
}


def ingest(url: str, documents: dict[str, str], key: str | None = None) -> list[int]:
    """Add titled documents through the JSON API and wait for them; return their ids."""
    # Each gets an external id, so re-sending a title replaces that document.
    records = [{"title": t, "text": x, "external_id": t} for t, x in documents.items()]
    return upload(url, records, key=key)["documents"]


class Tab:
    """A browser page that records console errors (CSP violations show there) and requests."""

    def __init__(self, page, base: str) -> None:  # noqa: ANN001 - a playwright Page
        self.page = page
        self.base = base
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def go(self, path: str) -> None:
        """Open a path on the server and wait for it to settle."""
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")

    def shoot(self, name: str) -> None:
        """Save a full-page screenshot at the current viewport."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
