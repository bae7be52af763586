// Poll the gateway's stats once a second and draw them: small line charts on <canvas>, no library.
(function () {
  const section = document.querySelector("[data-stats-url]");
  if (!section) return;
  const url = section.dataset.statsUrl;
  const colors = ["#0b6bcb", "#d9822b", "#c23030"];

  function draw(canvas, seriesList, maxHint) {
    const ctx = canvas.getContext("2d");
    const { width, height } = canvas;
    ctx.clearRect(0, 0, width, height);
    const values = seriesList.flat().filter((v) => v !== null);
    const max = Math.max(maxHint || 0, ...values, 1e-9);
    ctx.strokeStyle = "#dde2ea";
    ctx.beginPath(); ctx.moveTo(0, height - 0.5); ctx.lineTo(width, height - 0.5); ctx.stroke();
    ctx.fillStyle = "#5b6475"; ctx.font = "11px system-ui";
    ctx.fillText(max.toFixed(max < 10 ? 2 : 0), 4, 12);
    seriesList.forEach((series, index) => {
      ctx.strokeStyle = colors[index % colors.length];
      ctx.lineWidth = 2;
      ctx.beginPath();
      let started = false;
      const points = [];
      series.forEach((value, i) => {
        if (value === null) { started = false; return; }
        const x = (i / Math.max(series.length - 1, 1)) * width;
        const y = height - (value / max) * (height - 16);
        points.push([x, y]);
        if (started) ctx.lineTo(x, y); else { ctx.moveTo(x, y); started = true; }
      });
      ctx.stroke();
      // A dot per second with data, so that a lone second (no neighbours to join) still shows.
      ctx.fillStyle = colors[index % colors.length];
      points.forEach(([x, y]) => { ctx.beginPath(); ctx.arc(x, y, 2, 0, 2 * Math.PI); ctx.fill(); });
    });
  }

  function renderRoutes(routes) {
    const body = document.querySelector("[data-routes] tbody");
    body.replaceChildren(...Object.entries(routes).sort().map(([route, r]) => {
      const row = document.createElement("tr");
      const total = Object.values(r.requests).reduce((a, b) => a + b, 0);
      const throttled = Object.values(r.throttled).reduce((a, b) => a + b, 0);
      const cells = [route, total, r.cache.HIT || 0, r.cache.STALE || 0, r.cache.REVALIDATED || 0, r.cache.MISS || 0, r.cache.BYPASS || 0, throttled];
      cells.forEach((value, i) => {
        const cell = document.createElement("td");
        cell.textContent = value;
        if (i > 0) cell.className = "num";
        row.appendChild(cell);
      });
      return row;
    }));
  }

  async function refresh() {
    try {
      const response = await fetch(url, { cache: "no-store" });
      const stats = await response.json();
      const points = stats.series;
      draw(section.querySelector('[data-chart="requests"]'), [points.map((p) => p.requests)]);
      draw(section.querySelector('[data-chart="latency"]'), [
        points.map((p) => p.p50_ms), points.map((p) => p.p95_ms), points.map((p) => p.p99_ms),
      ]);
      draw(section.querySelector('[data-chart="hit_ratio"]'), [points.map((p) => p.hit_ratio)], 1);
      draw(section.querySelector('[data-chart="throttled"]'), [points.map((p) => p.throttled)]);
      renderRoutes(stats.totals.routes);
      document.querySelector("[data-status]").textContent = "Updated " + new Date().toLocaleTimeString();
    } catch (error) {
      document.querySelector("[data-status]").textContent = "Stats unavailable: " + error;
    }
  }

  refresh();
  setInterval(refresh, 1000);
})();
