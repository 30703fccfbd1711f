// Draws /federation.json into the <svg id="federation-map">: nodes as large circles,
// their agents as small circles around them, customers as grey dots on the rim,
// a line per customer -> agent pair with recent jobs. Plain DOM, no library.
// The tables on the page carry the same data for readers without the drawing.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("federation-map");
  if (!svg) return;
  const W = 800, H = 500, CX = W / 2, CY = H / 2;

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function label(text, x, y, parent, size) {
    const t = el("text", { x, y, "text-anchor": "middle", "font-size": size || 11 }, parent);
    t.textContent = text;
    return t;
  }

  function around(n, i, r, cx, cy, offset) {
    const a = (2 * Math.PI * i) / Math.max(n, 1) + (offset || 0);
    return [cx + r * Math.cos(a), cy + r * Math.sin(a)];
  }

  function clear() {
    for (const child of Array.from(svg.childNodes)) {
      if (child.nodeName !== "title" && child.nodeName !== "desc") svg.removeChild(child);
    }
  }

  function draw(data) {
    clear();
    const nodes = data.nodes || [];
    const where = new Map(); // agent pubkey -> [x, y]
    const edgesLayer = el("g", { class: "edges" }, svg);
    const nodesLayer = el("g", { class: "nodes" }, svg);
    const ring = nodes.length > 1 ? Math.min(W, H) / 2 - 110 : 0;
    nodes.forEach(function (node, i) {
      const [x, y] = around(nodes.length, i, ring, CX, CY, -Math.PI / 2);
      const g = el("g", { class: "node" }, nodesLayer);
      const mine = node.node && node.node === data.this_node;
      const c = el("circle", {
        cx: x, cy: y, r: 22, class: "node-circle",
        fill: node.node ? (mine ? "#1f6feb" : "#6e40c9") : "#888", stroke: "#000",
      }, g);
      const t = el("title", {}, c);
      t.textContent = node.label + (node.node ? " " + node.node : "");
      label(node.label, x, y + 36, g, 12).setAttribute("font-weight", "bold");
      const agents = node.agents || [];
      const r = 48 + Math.min(agents.length, 12) * 3;
      agents.forEach(function (agent, j) {
        const [ax, ay] = around(agents.length, j, r, x, y);
        where.set(agent.pubkey, [ax, ay]);
        el("line", { x1: x, y1: y, x2: ax, y2: ay, stroke: "#bbb" }, g);
        const ac = el("circle", { cx: ax, cy: ay, r: 9, class: "agent-circle", fill: "#fff", stroke: "#000" }, g);
        const at = el("title", {}, ac);
        at.textContent = (agent.name || "(no name)") + " — kinds " + (agent.kinds || []).join(", ");
        label(agent.name || agent.pubkey.slice(0, 8), ax, ay - 12, g, 10);
      });
    });
    // Customers on the rim, one dot each; a line per pair with recent jobs.
    const jobs = (data.jobs || []).filter(function (e) { return where.has(e.agent); });
    const customers = Array.from(new Set(jobs.map(function (e) { return e.customer; })));
    const spot = new Map();
    customers.forEach(function (pk, i) {
      const p = around(customers.length, i, Math.min(W, H) / 2 - 12, CX, CY, Math.PI / 4);
      spot.set(pk, p);
      const d = el("rect", { x: p[0] - 4, y: p[1] - 4, width: 8, height: 8, class: "customer", fill: "#999" }, edgesLayer);
      el("title", {}, d).textContent = "customer " + pk;
    });
    jobs.forEach(function (e) {
      const [x1, y1] = spot.get(e.customer);
      const [x2, y2] = where.get(e.agent);
      const line = el("line", {
        x1, y1, x2, y2, class: "job-edge", stroke: "#d73a49",
        "stroke-width": Math.min(1 + Math.log2(e.jobs), 6), "stroke-opacity": 0.7,
      }, edgesLayer);
      el("title", {}, line).textContent = e.jobs + " job(s) from " + e.customer.slice(0, 12);
    });
    if (!nodes.length) label("No announcements found.", CX, CY, svg, 16);
    svg.setAttribute("data-drawn", "true");
  }

  fetch("/federation.json", { headers: { Accept: "application/json" } })
    .then(function (r) { return r.json(); })
    .then(draw)
    .catch(function (err) {
      clear();
      label("Map unavailable: " + err, CX, CY, svg, 14);
    });
})();
