// Delete documents from the list in place, after a confirmation dialog.
"use strict";

(() => {
  const status = document.getElementById("status");

  function say(text, kind) {
    status.textContent = text;
    status.className = `notice ${kind}`;
    status.hidden = false;
  }

  async function remove(link) {
    const title = link.dataset.title;
    if (!window.confirm(`Delete “${title}”? It will no longer be found by search. This cannot be undone.`)) return;
    let response;
    try {
      response = await fetch(`/api/documents/${link.dataset.delete}`, { method: "DELETE", headers: { Accept: "application/json" } });
    } catch (_) {
      say("Could not reach the server. Check that it is running, then try again.", "error");
      return;
    }
    if (response.ok || response.status === 404) {
      link.closest("tr").remove();
      say(`Deleted “${title}”.`, "success");
      return;
    }
    let message = `The server answered ${response.status}.`;
    try {
      message = (await response.json()).error.message;
    } catch (_) {
      // Keep the status line.
    }
    say(`Could not delete “${title}”: ${message}`, "error");
  }

  for (const link of document.querySelectorAll("a[data-delete]")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      remove(link);
    });
  }
})();
