// The clusters page: a busy note while clustering runs, and the 2D map drawn as SVG.
"use strict";

(() => {
  const form = document.getElementById("run-clusters");
  if (form) {
    form.addEventListener("submit", () => {
      document.getElementById("cluster-busy").hidden = false;
      form.querySelector("button[type=submit]").disabled = true;
    });
  }
  const figure = document.getElementById("map");
  if (!figure) return;
  const status = document.getElementById("map-status");
  const SVG = "http://www.w3.org/2000/svg";
  const PAD = 16;
  const COLOURS = 12;

  function svgElement(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    return node;
  }

  function colourClass(cluster) {
    return cluster === null || cluster === undefined ? "none" : `c${cluster % COLOURS}`;
  }

  /** A function mapping values in [min, max] onto [from, to] (the middle if all are equal). */
  function scale(values, from, to) {
    const min = Math.min(...values);
    const max = Math.max(...values);
    if (max === min) return () => (from + to) / 2;
    return (value) => from + ((value - min) / (max - min)) * (to - from);
  }

  function showTip(tip, anchor, point, labels) {
    tip.replaceChildren();
    const title = document.createElement("strong");
    title.textContent = point.title || `Document ${point.id}`;
    tip.append(title);
    if (point.cluster !== null && point.cluster !== undefined) {
      const cluster = document.createElement("span");
      cluster.textContent = labels.get(point.cluster) || `cluster ${point.cluster}`;
      tip.append(cluster);
    }
    const box = anchor.getBoundingClientRect();
    const frame = figure.getBoundingClientRect();
    tip.hidden = false;
    const left = Math.min(box.left - frame.left + box.width / 2, frame.width - tip.offsetWidth / 2 - 4);
    tip.style.left = `${Math.max(tip.offsetWidth / 2 + 4, left)}px`;
    tip.style.top = `${box.top - frame.top - 8}px`;
  }

  function legend(map, svg) {
    const list = document.createElement("ul");
    list.className = "legend";
    for (const cluster of map.clusters) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      const dot = document.createElement("span");
      dot.className = `dot ${colourClass(cluster.id)}`;
      button.append(dot, `${cluster.label} (${cluster.size})`);
      const on = () => {
        svg.classList.add("focused");
        for (const node of svg.querySelectorAll(`[data-cluster="${cluster.id}"]`)) node.classList.add("lit");
      };
      const off = () => {
        svg.classList.remove("focused");
        for (const node of svg.querySelectorAll(".lit")) node.classList.remove("lit");
      };
      button.addEventListener("mouseenter", on);
      button.addEventListener("focus", on);
      button.addEventListener("mouseleave", off);
      button.addEventListener("blur", off);
      button.addEventListener("click", () => document.getElementById(`cluster-${cluster.id}`)?.scrollIntoView({ behavior: "smooth" }));
      item.append(button);
      list.append(item);
    }
    return list;
  }

  function draw(map) {
    figure.querySelectorAll("svg, .legend, .tip").forEach((node) => node.remove());
    if (!map.points.length) {
      status.textContent = "No documents to map yet.";
      return;
    }
    status.hidden = true;
    const width = Math.max(280, figure.clientWidth);
    const height = Math.round(Math.max(260, Math.min(560, width * 0.6)));
    const radius = map.points.length > 500 ? 4 : 6;
    const x = scale(map.points.map((p) => p.x), PAD + radius, width - PAD - radius);
    const y = scale(map.points.map((p) => p.y), height - PAD - radius, PAD + radius);
    const labels = new Map(map.clusters.map((c) => [c.id, c.label]));
    const svg = svgElement("svg", {
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: "group",
      "aria-label": `Map of ${map.points.length} documents`,
    });
    const tip = document.createElement("div");
    tip.className = "tip";
    tip.hidden = true;
    tip.setAttribute("role", "tooltip");
    for (const point of map.points) {
      const link = svgElement("a", {
        href: `/documents/${point.id}`,
        "aria-label": point.title || `Document ${point.id}`,
        "data-cluster": point.cluster ?? "",
        class: "point",
      });
      link.append(svgElement("circle", { cx: x(point.x).toFixed(1), cy: y(point.y).toFixed(1), r: radius, class: colourClass(point.cluster) }));
      const show = () => showTip(tip, link, point, labels);
      const hide = () => {
        tip.hidden = true;
      };
      link.addEventListener("mouseenter", show);
      link.addEventListener("focus", show);
      link.addEventListener("mouseleave", hide);
      link.addEventListener("blur", hide);
      svg.append(link);
    }
    figure.append(svg, tip);
    if (map.clusters.length) figure.append(legend(map, svg));
  }

  async function load() {
    let response;
    try {
      response = await fetch(`/api/map?collection=${encodeURIComponent(figure.dataset.collection)}`, { headers: { Accept: "application/json" } });
    } catch (_) {
      status.textContent = "Could not reach the server to load the map. Reload the page to try again.";
      return;
    }
    if (!response.ok) {
      let message = `The server answered ${response.status}.`;
      try {
        message = (await response.json()).error.message;
      } catch (_) {
        // Keep the status line.
      }
      status.textContent = `The map could not be loaded: ${message}`;
      return;
    }
    const map = await response.json();
    draw(map);
    if (map.state === "pending") {
      // A large collection's t-SNE map is being computed: show PCA's, then the finished one.
      setTimeout(load, 2000);
      return;
    }
    let pending = null;
    window.addEventListener("resize", () => {
      clearTimeout(pending);
      pending = setTimeout(() => draw(map), 150);
    });
  }

  load();
})();
