// The live quotes page: history from the REST API, then every tick from the WebSocket.
// Reconnects with exponential backoff and resumes with ?since=<last seq>, so no tick is missed.
"use strict";

(() => {
  const table = document.getElementById("quotes-table");
  const symbols = table.dataset.symbols.split(",");
  const POINTS = 120; // the last 120 moves per chart
  const rows = new Map();
  for (const row of table.querySelectorAll("tbody tr")) {
    rows.set(row.dataset.symbol, {
      price: row.querySelector(".price"),
      change: row.querySelector(".change"),
      canvas: row.querySelector("canvas"),
      points: [], // {seq, price}, oldest first
    });
  }
  const state = { socket: null, lastSeq: null, attempts: 0, delays: [] };
  window.quotesPage = state; // for the browser test and the curious

  const text = (id, value) => { document.getElementById(id).textContent = value; };

  function setConnection(label, name) {
    const element = document.getElementById("quotes-connection");
    element.textContent = label;
    element.dataset.state = name;
  }

  function draw(row) {
    const { canvas, points } = row;
    const context = canvas.getContext("2d");
    context.clearRect(0, 0, canvas.width, canvas.height);
    if (points.length < 2) return;
    const prices = points.map((point) => point.price);
    const low = Math.min(...prices);
    const span = Math.max(...prices) - low || 1;
    context.beginPath();
    points.forEach((point, index) => {
      const x = (index / (POINTS - 1)) * canvas.width;
      const y = canvas.height - 2 - ((point.price - low) / span) * (canvas.height - 4);
      if (index === 0) context.moveTo(x, y); else context.lineTo(x, y);
    });
    context.strokeStyle = prices[prices.length - 1] >= prices[0] ? "#12804a" : "#c0352b";
    context.stroke();
  }

  function show(quote) {
    const row = rows.get(quote.symbol);
    if (!row) return;
    row.price.textContent = quote.price.toFixed(2);
    row.change.textContent = (quote.change > 0 ? "+" : "") + quote.change.toFixed(2);
    row.change.className = "num change " + (quote.change > 0 ? "up" : quote.change < 0 ? "down" : "");
    const last = row.points[row.points.length - 1];
    if (!last || quote.seq > last.seq) row.points.push({ seq: quote.seq, price: quote.price });
    row.points.splice(0, row.points.length - POINTS);
    draw(row);
  }

  function recordDelay(ts) {
    const delays = state.delays;
    delays.push(Date.now() - ts);
    delays.splice(0, delays.length - 600);
    const sorted = [...delays].sort((a, b) => a - b);
    text("delay-last", delays[delays.length - 1]);
    text("delay-median", sorted[Math.floor(sorted.length / 2)]);
    text("delay-p99", sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))]);
    text("delay-count", delays.length);
  }

  function handle(message) {
    if (message.type === "snapshot") {
      if (message.reset) for (const row of rows.values()) row.points = []; // a gap we cannot fill
      message.quotes.forEach(show);
      state.lastSeq = message.seq;
    } else if (message.type === "tick") {
      message.quotes.forEach(show);
      state.lastSeq = message.seq;
      recordDelay(message.ts);
    } else if (message.type === "error") {
      console.warn("quotes:", message.code, message.detail);
    }
    text("quotes-seq", state.lastSeq);
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    let url = `${scheme}://${location.host}${table.dataset.socketPath}?symbols=${symbols.join(",")}`;
    if (state.lastSeq !== null) url += `&since=${state.lastSeq}`;
    const socket = new WebSocket(url);
    state.socket = socket;
    socket.onopen = () => { state.attempts = 0; setConnection("live", "live"); };
    socket.onmessage = (event) => handle(JSON.parse(event.data));
    socket.onclose = () => {
      // Exponential backoff with jitter, so a restarted server is not hit by every page at once.
      const wait = Math.min(10000, 500 * 2 ** state.attempts) * (0.5 + Math.random() / 2);
      state.attempts += 1;
      setConnection(`reconnecting in ${(wait / 1000).toFixed(1)} s`, "reconnecting");
      setTimeout(connect, wait);
    };
  }

  async function loadHistory() {
    await Promise.all(symbols.map(async (symbol) => {
      const response = await fetch(table.dataset.historyUrl.replace("SYMBOL", symbol));
      if (response.ok) (await response.json()).quotes.forEach(show);
    }));
  }

  loadHistory().catch((error) => console.warn("quotes history:", error)).finally(connect);
})();
