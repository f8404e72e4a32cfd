/* Draws the reports dashboard's charts (Chart.js, vendored) from the json_script'ed data.
 * The page works without it: every chart's numbers are in the table under it. With charts
 * drawn, those tables fold into their <details> (open without JavaScript). */
(function () {
  "use strict";

  var STATUS_COLORS = {
    succeeded: "#2f855a",
    failed: "#c53030",
    rejected: "#718096",
    canceled: "#a0aec0",
    needs_attention: "#dd6b20",
    processing: "#3182ce",
    approved: "#90cdf4",
    pending_approval: "#d69e2e"
  };
  var INK = "#1a202c", MUTED = "#5a6577", GRID = "#edf2f7", BRAND = "#2b6cb0";

  function shortDay(iso) {
    // "2026-11-03" -> "3 Nov" without time-zone arithmetic: the server already chose the days.
    var parts = iso.split("-");
    var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    return Number(parts[2]) + " " + months[Number(parts[1]) - 1];
  }

  function baseOptions(extra) {
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 12, color: INK } },
        tooltip: { mode: "index", intersect: false }
      },
      scales: {
        x: { grid: { display: false }, ticks: { color: MUTED } },
        y: { beginAtZero: true, grid: { color: GRID }, ticks: { color: MUTED } }
      }
    };
    return Object.assign(options, extra || {});
  }

  var builders = {
    volume: function (data) {
      var measure = data.volume;
      return {
        type: "bar",
        data: {
          labels: measure.labels.map(shortDay),
          datasets: measure.datasets.map(function (set) {
            return { label: set.label, data: set.data, backgroundColor: STATUS_COLORS[set.status] || BRAND, stack: "all" };
          })
        },
        options: baseOptions({
          scales: {
            x: { stacked: true, grid: { display: false }, ticks: { color: MUTED, maxRotation: 0, autoSkipPadding: 8 } },
            y: { stacked: true, beginAtZero: true, grid: { color: GRID }, ticks: { color: MUTED, precision: 0 },
                 title: { display: true, text: measure.unit, color: MUTED } }
          }
        })
      };
    },
    resolution: function (data) {
      var ttr = data.resolution;
      return {
        type: "line",
        data: {
          labels: ttr.labels.map(shortDay),
          datasets: [
            { label: "Average", data: ttr.average, borderColor: BRAND, backgroundColor: BRAND, tension: 0.25, spanGaps: true, pointRadius: 2 },
            { label: "90th percentile", data: ttr.p90, borderColor: "#dd6b20", backgroundColor: "#dd6b20", borderDash: [6, 4], tension: 0.25, spanGaps: true, pointRadius: 2 }
          ]
        },
        options: baseOptions({
          scales: {
            x: { grid: { display: false }, ticks: { color: MUTED, maxRotation: 0, autoSkipPadding: 8 } },
            y: { beginAtZero: true, grid: { color: GRID }, ticks: { color: MUTED }, title: { display: true, text: "hours", color: MUTED } }
          }
        })
      };
    },
    products: function (data) {
      var products = data.products;
      return {
        type: "bar",
        data: {
          labels: products.labels,
          datasets: [{ label: "Refund rate by amount (%)", data: products.data, backgroundColor: "#e53e3e" }]
        },
        options: baseOptions({
          indexAxis: "y",
          plugins: { legend: { display: false }, tooltip: { callbacks: { label: function (c) { return c.parsed.x + " %"; } } } },
          scales: {
            x: { beginAtZero: true, grid: { color: GRID }, ticks: { color: MUTED, callback: function (v) { return v + " %"; } } },
            y: { grid: { display: false }, ticks: { color: INK } }
          }
        })
      };
    },
    queue: function (data) {
      var queue = data.queue;
      return {
        type: "bar",
        data: {
          labels: queue.labels,
          datasets: [{ label: "Refunds pending approval", data: queue.data,
                       backgroundColor: ["#f6e05e", "#ecc94b", "#d69e2e", "#dd6b20", "#c53030"] }]
        },
        options: baseOptions({
          plugins: { legend: { display: false } },
          scales: {
            x: { grid: { display: false }, ticks: { color: MUTED } },
            y: { beginAtZero: true, grid: { color: GRID }, ticks: { color: MUTED, precision: 0 } }
          }
        })
      };
    }
  };

  function draw() {
    var source = document.getElementById("dashboard-data");
    if (!source || typeof window.Chart === "undefined") {
      return; // no data (form error) or no Chart.js: the tables stay open
    }
    var data = JSON.parse(source.textContent);
    window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
    var charts = {};
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var kind = canvas.getAttribute("data-chart");
      if (!builders[kind] || !data[kind]) {
        return;
      }
      var box = canvas.parentElement;
      if (box && box.hasAttribute("hidden")) {
        box.removeAttribute("hidden"); // hidden in the HTML: without JavaScript it would be an empty space
      }
      var config = builders[kind](data);
      if (canvas.hasAttribute("data-compact")) {
        config.options.plugins = Object.assign({}, config.options.plugins, { legend: { display: false } });
      }
      charts[kind] = new window.Chart(canvas, config);
      var card = canvas.closest(".chart-card");
      var details = card && card.querySelector("details.chart-data");
      if (details) {
        details.open = false;
      }
    });
    window.refundDashboardCharts = charts;
    var measure = document.querySelector(".range-form select[name=measure]");
    if (measure) {
      measure.addEventListener("change", function () { measure.form.submit(); });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
