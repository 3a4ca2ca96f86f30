// The flask-audit dashboard: polls the data route and draws small canvas charts. No libraries.
"use strict";

const body = document.body;
const POLL_MS = 5000;
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706"];

window.addEventListener("error", () => { body.dataset.errors = String(Number(body.dataset.errors) + 1); });

function text(id, value) { document.getElementById(id).textContent = value; }

// Draws one or more series as lines on a shared y scale, with a few axis labels.
function lineChart(canvas, labels, series) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, left = 48, bottom = 20, top = 8;
  ctx.clearRect(0, 0, w, h);
  const values = series.flatMap((s) => s.values.filter((v) => v !== null));
  const max = Math.max(1, ...values);
  const x = (i) => left + (i * (w - left - 8)) / Math.max(1, labels.length - 1);
  const y = (v) => h - bottom - ((h - bottom - top) * v) / max;
  ctx.strokeStyle = "#e5e7eb"; ctx.fillStyle = "#6b7280"; ctx.font = "11px sans-serif";
  for (const frac of [0, 0.5, 1]) {
    ctx.beginPath(); ctx.moveTo(left, y(max * frac)); ctx.lineTo(w - 8, y(max * frac)); ctx.stroke();
    ctx.fillText((max * frac).toLocaleString(undefined, { maximumFractionDigits: 1 }), 2, y(max * frac) + 4);
  }
  [0, Math.floor(labels.length / 2), labels.length - 1].forEach((i, n) => {
    if (labels[i] === undefined) return;
    ctx.textAlign = ["left", "center", "right"][n];
    ctx.fillText(labels[i], x(i), h - 4);
  });
  ctx.textAlign = "left";
  series.forEach((s, n) => {
    ctx.strokeStyle = COLORS[n % COLORS.length]; ctx.lineWidth = 2; ctx.beginPath();
    let drawing = false;
    s.values.forEach((v, i) => {
      if (v === null) { drawing = false; return; }
      if (drawing) ctx.lineTo(x(i), y(v)); else { ctx.moveTo(x(i), y(v)); drawing = true; }
    });
    ctx.stroke();
    ctx.fillStyle = COLORS[n % COLORS.length]; ctx.fillText(s.name, w - 8 - 90 * (series.length - n), top + 10);
  });
}

function render(data) {
  const snap = data.snapshot;
  const status = document.getElementById("status");
  status.textContent = data.health.status; status.className = "badge " + data.health.status;
  text("t-queue", snap.queue_length.toLocaleString());
  text("t-batch", snap.current_batch_size);
  text("t-batch-ms", snap.avg_batch_time_ms + " ms");
  text("t-workers", snap.workers_alive);
  text("t-failed", snap.failed_length.toLocaleString());
  text("t-dropped", snap.totals.dropped.toLocaleString());
  text("t-overflow", snap.totals.overflow.toLocaleString());
  text("t-seal", snap.integrity.last_verified_seal ? "#" + snap.integrity.last_verified_seal : "none yet");
  text("t-integrity", snap.integrity.problems.toLocaleString());
  text("t-unsealed", snap.integrity.unsealed_rows.toLocaleString());
  const issues = document.getElementById("issues");
  issues.replaceChildren(...data.health.issues.map((issue) => Object.assign(document.createElement("li"), { textContent: issue })));

  const labels = data.series.map((p) => new Date(p.minute * 1000).toISOString().slice(11, 16));
  const col = (k) => data.series.map((p) => p[k]);
  lineChart(document.getElementById("c-depth"), labels, [{ name: "depth", values: col("depth") }]);
  lineChart(document.getElementById("c-throughput"), labels,
    [{ name: "inserted", values: col("inserted") }, { name: "failed", values: col("failed") }]);
  lineChart(document.getElementById("c-batch"), labels,
    [{ name: "batch size", values: col("batch_size") }, { name: "avg ms", values: col("avg_batch_ms") }]);
  lineChart(document.getElementById("c-loss"), labels,
    [{ name: "dropped", values: col("dropped") }, { name: "overflow", values: col("overflow") }]);
  body.dataset.charts = "4";

  if (data.critical_events === null) {
    // without AUDIT_MONITORING_TOKEN the dashboard shows counters only, never event content
    const td = Object.assign(document.createElement("td"), {
      colSpan: 5, className: "muted", textContent: "Set AUDIT_MONITORING_TOKEN to list events here.",
    });
    const tr = document.createElement("tr");
    tr.appendChild(td);
    document.getElementById("critical").replaceChildren(tr);
  } else {
    const rows = data.critical_events.map((e) => {
      const tr = document.createElement("tr");
      for (const v of [e.created_at.slice(0, 19).replace("T", " "), e.event_type, e.user_id, [e.resource_type, e.resource_id].filter(Boolean).join(" "), e.description]) {
        tr.appendChild(Object.assign(document.createElement("td"), { textContent: v ?? "" }));
      }
      return tr;
    });
    if (rows.length) document.getElementById("critical").replaceChildren(...rows);
  }
  text("updated", "updated " + new Date().toISOString().slice(11, 19) + " UTC");
  body.dataset.loaded = String(Number(body.dataset.loaded) + 1);
}

async function poll() {
  try {
    // the HttpOnly cookie set when the page was opened with ?token= goes along by itself
    const response = await fetch(body.dataset.source, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) throw new Error("data route answered " + response.status);
    render(await response.json());
  } catch (err) {
    text("updated", String(err));
    console.error(err);
    body.dataset.errors = String(Number(body.dataset.errors) + 1);
  }
  setTimeout(poll, POLL_MS);
}

poll();
