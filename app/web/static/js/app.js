// Small enhancements shared by every page; each page works without them.
"use strict";

// A collection picker changes the page as soon as a collection is chosen.
for (const select of document.querySelectorAll("select[data-autosubmit]")) {
  select.addEventListener("change", () => select.form.requestSubmit());
}

// "Show scores" toggles at once, and the URL keeps the choice so it can be shared.
const scores = document.getElementById("show-scores");
const results = document.getElementById("results");
if (scores && results) {
  scores.addEventListener("change", () => {
    results.classList.toggle("show-scores", scores.checked);
    const url = new URL(window.location.href);
    if (scores.checked) url.searchParams.set("scores", "1");
    else url.searchParams.delete("scores");
    history.replaceState(null, "", url);
  });
}

// Changing the search mode re-runs the search straight away.
for (const radio of document.querySelectorAll(".modes input[type=radio]")) {
  radio.addEventListener("change", () => {
    if (radio.form.q.value.trim()) radio.form.requestSubmit();
  });
}
