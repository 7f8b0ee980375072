// Draws every <canvas data-chart="{...}"> with Chart.js, again after htmx swaps in a
// refreshed page. The spec comes from the server (api/dashboard/routes.py:_chart).
(function () {
  "use strict";
  var PALETTE = ["#1f5fbf", "#157347", "#b3261e", "#8a5a00", "#6f42c1", "#0b7285", "#c2255c"];

  function draw(canvas) {
    var spec = JSON.parse(canvas.dataset.chart);
    var old = window.Chart.getChart(canvas);
    if (old) { old.destroy(); }
    new window.Chart(canvas, {
      type: spec.type,
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (d, i) {
          var color = d.dashed ? "#8a94a6" : PALETTE[i % PALETTE.length];
          return {
            label: d.label, data: d.data, backgroundColor: color, borderColor: color,
            borderDash: d.dashed ? [6, 4] : [], pointRadius: d.dashed ? 0 : (spec.points ? 4 : 2),
            spanGaps: true, showLine: !spec.points || d.dashed
          };
        })
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: { y: { beginAtZero: true, title: { display: !!spec.y, text: spec.y } } },
        plugins: { legend: { position: "bottom" } }
      }
    });
    canvas.dataset.drawn = "true";
  }

  function drawAll(root) {
    if (!window.Chart) { return; }
    root.querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawAll(event.target); });
  // A session that ended while the page polled: go to the sign-in page, not a blank swap.
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.responseURL && event.detail.xhr.responseURL.indexOf("/dashboard/login") !== -1) {
      window.location.href = event.detail.xhr.responseURL;
      event.detail.shouldSwap = false;
    }
  });
}());
