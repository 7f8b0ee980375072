// Draws every <canvas data-chart="{...}"> with Chart.js, again after htmx swaps in a
// refreshed page. The spec comes from the server (api/dashboard/routes.py:_chart); a
// dataset may also say `type` (a bar among lines), `color`, `dashed`, `marker` (points
// only: one mark on a date), `edge` (the upper side of an interval: no legend entry) and
// `band` (the lower side, shaded up to the edge before it), and `tip` (its tooltip name).
(function () {
  "use strict";
  var PALETTE = ["#1f5fbf", "#157347", "#b3261e", "#8a5a00", "#6f42c1", "#0b7285", "#c2255c"];
  var MARKER = "#b3261e";

  function dataset(spec, d, i) {
    var color = d.color || (d.marker ? MARKER : d.dashed ? "#8a94a6" : PALETTE[i % PALETTE.length]);
    var set = {
      label: d.label, data: d.data, backgroundColor: color, borderColor: color,
      borderDash: d.dashed ? [6, 4] : [], pointRadius: d.dashed ? 0 : (spec.points ? 4 : 2),
      spanGaps: true, showLine: !spec.points || d.dashed, edge: !!d.edge, tip: d.tip
    };
    if (d.type) { set.type = d.type; }
    if (d.edge || d.band) {
      set.pointRadius = 0;
      set.borderWidth = 1;
      set.borderColor = color + "66";
      set.backgroundColor = color + "33";
      set.fill = d.band ? "-1" : false;
    }
    if (d.marker) {
      set.showLine = false;
      set.pointRadius = 8;
      set.pointHoverRadius = 10;
      set.pointStyle = "triangle";
    }
    return set;
  }

  function draw(canvas) {
    var spec = JSON.parse(canvas.dataset.chart);
    var old = window.Chart.getChart(canvas);
    if (old) { old.destroy(); }
    var bars = spec.type === "bar" || spec.datasets.some(function (d) { return d.type === "bar"; });
    new window.Chart(canvas, {
      type: spec.type,
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (d, i) { return dataset(spec, d, i); })
      },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        scales: {
          x: { offset: bars },
          y: { beginAtZero: true, title: { display: !!spec.y, text: spec.y } }
        },
        plugins: {
          legend: {
            position: "bottom",
            labels: { filter: function (item, data) { return !data.datasets[item.datasetIndex].edge; } }
          },
          tooltip: {
            callbacks: {
              label: function (ctx) { return (ctx.dataset.tip || ctx.dataset.label) + ": " + ctx.formattedValue; }
            }
          }
        }
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
