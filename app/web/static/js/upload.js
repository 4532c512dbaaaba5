// Upload each chosen or dropped file as its own job, and follow each job to its end.
"use strict";

(() => {
  const form = document.getElementById("upload");
  const input = document.getElementById("files");
  const zone = document.getElementById("dropzone");
  const queue = document.getElementById("queue");
  const section = document.getElementById("queue-section");
  const collectionField = document.getElementById("collection");
  const maxBytes = Number(form.dataset.maxBytes);
  const POLL_MS = 400;
  const OUTCOMES = {
    added: "Added",
    replaced: "Replaced an earlier version",
    duplicate: "Duplicate: already in the collection",
    failed: "Failed",
  };
  let uploads = Promise.resolve();

  function humanSize(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** A row in the list for one file: its name, size, progress bar and status. */
  function addRow(file) {
    const li = element("li", "file queued");
    const head = element("div", "file-head");
    head.append(element("span", "file-name", file.name), element("span", "file-size", humanSize(file.size)));
    const bar = element("progress", "file-progress");
    bar.max = 1;
    bar.value = 0;
    bar.setAttribute("aria-label", `Progress of ${file.name}`);
    const status = element("p", "file-status", "Waiting…");
    li.append(head, bar, status);
    queue.append(li);
    section.hidden = false;
    return { li, bar, status };
  }

  /** Show a state on a row; ``done``/``total`` fill the bar (no total: indeterminate). */
  function show(row, state, text, done, total) {
    row.li.className = `file ${state}`;
    row.status.textContent = text;
    if (total) {
      row.bar.max = total;
      row.bar.value = done;
    } else if (state === "working") {
      row.bar.removeAttribute("value");
    }
  }

  function finish(row, state, text, link) {
    show(row, state, text);
    row.bar.max = 1;
    row.bar.value = 1;
    if (link) {
      row.status.append(" · ");
      const a = element("a", "", link.text);
      a.href = link.href;
      row.status.append(a);
    }
  }

  async function errorMessage(response) {
    if (response.status === 413) {
      return `Too large: the server accepts at most ${humanSize(maxBytes)} per upload.`;
    }
    if (response.status === 401) {
      return "You are signed out. Sign in again, then retry.";
    }
    try {
      const body = await response.json();
      if (body && body.error && body.error.message) return body.error.message;
    } catch (_) {
      // Not JSON: fall through to the status line.
    }
    return `The server answered ${response.status} ${response.statusText}.`.trim();
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** Poll the job until it is done or failed, showing its progress. */
  async function follow(job, row, collection) {
    let misses = 0;
    while (job.state !== "done" && job.state !== "failed") {
      const { done, total } = job.progress;
      const text = job.state === "embedding" && total ? `Embedding: ${done} of ${total} chunks` : job.state === "extracting" ? "Reading…" : "Queued…";
      show(row, "working", text, done, total);
      await sleep(POLL_MS);
      try {
        const response = await fetch(`/api/jobs/${encodeURIComponent(job.id)}`, { headers: { Accept: "application/json" } });
        if (!response.ok) throw new Error(await errorMessage(response));
        job = await response.json();
        misses = 0;
      } catch (error) {
        misses += 1;
        if (misses >= 5) {
          finish(row, "failed", `Lost contact with the server while this file was processed: ${error.message}`);
          return;
        }
      }
    }
    report(job, row, collection);
  }

  function report(job, row, collection) {
    const file = job.result && job.result.files && job.result.files[0];
    if (job.state === "failed" && !file) {
      finish(row, "failed", `Failed: ${job.error || "the job failed."}`);
      return;
    }
    const status = file ? file.status : "failed";
    if (status === "failed") {
      finish(row, "failed", `Failed: ${file.error || job.error || "unknown reason."}`);
      return;
    }
    const ids = file.documents || [];
    let link = null;
    if (ids.length === 1) link = { text: "Open", href: `/documents/${ids[0]}` };
    else if (ids.length > 1) link = { text: `${ids.length} documents`, href: `/documents?collection=${encodeURIComponent(collection)}` };
    finish(row, status, OUTCOMES[status] || status, link);
  }

  async function upload(file, row, collection) {
    if (file.size > maxBytes) {
      finish(row, "failed", `Too large: ${humanSize(file.size)}, and the server accepts at most ${humanSize(maxBytes)} per upload.`);
      return;
    }
    show(row, "working", "Uploading…");
    const body = new FormData();
    body.append("collection", collection);
    body.append("files", file, file.name);
    let response;
    try {
      response = await fetch("/api/documents", { method: "POST", body, headers: { Accept: "application/json" } });
    } catch (_) {
      finish(row, "failed", "Could not reach the server. Check that it is running, then try again.");
      return;
    }
    if (!response.ok) {
      finish(row, "failed", `Failed: ${await errorMessage(response)}`);
      return;
    }
    await follow(await response.json(), row, collection);
  }

  function start(files) {
    if (!files.length) return;
    if (!collectionField.reportValidity()) return;
    const collection = collectionField.value.trim() || "default";
    for (const file of files) {
      const row = addRow(file);
      uploads = uploads.then(() => upload(file, row, collection));
    }
    document.getElementById("see-documents").href = `/documents?collection=${encodeURIComponent(collection)}`;
    document.getElementById("search-now").href = `/?collection=${encodeURIComponent(collection)}`;
  }

  input.addEventListener("change", () => {
    start(Array.from(input.files));
    input.value = "";
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    start(Array.from(event.dataTransfer.files));
  });
  // A file dropped beside the zone must not replace the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
})();
