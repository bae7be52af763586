// Fill the caching panel with the headers this URL is served with right now.
(function () {
  const panel = document.querySelector("[data-cache-panel]");
  if (!panel) return;
  // The default cache mode: "no-store" would send Cache-Control: no-cache and force a revalidation.
  fetch(window.location.href, { method: "HEAD" }).then(function (response) {
    panel.querySelectorAll("[data-header]").forEach(function (cell) {
      cell.textContent = response.headers.get(cell.dataset.header) || "(none)";
    });
  });
})();
