// deepfaked's page: live status, the review queue's keys, training progress.
// Plain JavaScript, no build step. Data from the server goes into the page
// as text only (textContent), never as HTML.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

// post sends a state-changing request with the session's CSRF token.
async function post(url, body, keepalive) {
  const headers = { "X-CSRF-Token": csrf() };
  if (body instanceof URLSearchParams) headers["Content-Type"] = "application/x-www-form-urlencoded";
  else if (body !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(body); }
  const r = await fetch(url, { method: "POST", headers, body, credentials: "same-origin", keepalive: !!keepalive });
  let data = {};
  try { data = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) throw new Error(data.error || r.status + " " + r.statusText);
  return data;
}

const $ = (id) => document.getElementById(id);
const setText = (id, v) => { const e = $(id); if (e) e.textContent = v; };

function badge(text) {
  const s = document.createElement("span");
  s.className = "badge " + text;
  s.textContent = text;
  return s;
}

function cell(row, content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content); else td.textContent = content;
  row.append(td);
  return td;
}

const fmtTime = (ts) => ts ? new Date(ts).toLocaleString() : "–";

function statusPage() {
  const es = new EventSource("/api/status/stream");
  es.addEventListener("status", (ev) => {
    const s = JSON.parse(ev.data);
    setText("updated", fmtTime(s.ts));
    $("updated").dataset.ts = s.ts;
    setText("device", s.device);
    setText("uptime", Math.round(s.uptime_s));
    setText("backbone", s.model.backbone);
    setText("head", s.model.head);
    setText("precision", s.model.precision);
    setText("threshold", s.threshold.toFixed(2));
    $("mqtt").replaceChildren(badge(s.mqtt.connected ? "connected" : "disconnected"));
    setText("reconnects", s.mqtt.reconnects);
    setText("outbox", s.outbox.messages);
    setText("outbox-bytes", s.outbox.bytes);
    $("outbox-failing").replaceChildren(...(s.outbox.failing ? [badge("failing")] : []));
    const body = document.querySelector("#cameras tbody");
    body.replaceChildren(...s.cameras.map((c) => {
      const tr = document.createElement("tr");
      tr.dataset.camera = c.name;
      cell(tr, c.name);
      const avail = cell(tr, badge(c.online ? "online" : "offline"));
      avail.append(" " + c.state);
      cell(tr, c.fps.toFixed(1)).className = "fps";
      cell(tr, c.frames_analysed).className = "analysed";
      cell(tr, c.decoder || "–").className = "decoder";
      const v = c.last_verdict;
      cell(tr, v ? badge(v.label) : "–");
      cell(tr, v ? v.p_fake.toFixed(2) : "–");
      cell(tr, v ? fmtTime(v.ts) : "–");
      return tr;
    }));
    const t = $("training");
    t.replaceChildren();
    if (s.training) {
      const a = document.createElement("a");
      a.href = "/train"; a.textContent = "follow it";
      t.append("A training is running: ", a, ".");
    }
  });
}

// The review queue: r, f, s label the first crop; a label waits
// undoDelay ms (or until the next one) before it is sent, so u can take it
// back without touching the data folder.
const undoDelay = 4000;

function reviewPage() {
  const queue = $("queue");
  if (!queue) return;
  let pending = null; // {el, id, label, timer}
  const done = []; // crops handled, last last: {el, label, sent}

  const current = () => queue.querySelector("li.crop:not([hidden])");

  async function send(p) {
    clearTimeout(p.timer);
    if (pending === p) pending = null;
    p.sent = true;
    try {
      const r = await post("/api/label", { id: p.id, label: p.label }, true);
      setText("count-real", r.real);
      setText("count-fake", r.fake);
      setText("waiting", Math.max(0, Number($("waiting").textContent) - 1));
      setText("pending", "Labelled " + p.label + ".");
    } catch (e) {
      p.el.hidden = false;
      setText("pending", "Not labelled: " + e.message);
    }
    update();
  }

  function update() {
    const cur = current();
    for (const li of queue.querySelectorAll("li.current")) if (li !== cur) li.classList.remove("current");
    if (cur) cur.classList.add("current");
    $("undo").disabled = !(pending || (done.length && done[done.length - 1].label === "skip"));
    if (!cur && done.length && !pending) location.reload(); // the next page of the queue
  }

  function act(label) {
    const el = current();
    if (!el) return;
    if (pending) send(pending);
    el.hidden = true;
    const p = { el, id: el.dataset.id, label, sent: false };
    done.push(p);
    if (label === "skip") {
      setText("pending", "Skipped. u brings it back.");
    } else {
      pending = p;
      p.timer = setTimeout(() => send(p), undoDelay);
      setText("pending", "Labelling " + label + "… u to undo.");
    }
    update();
  }

  function undo() {
    const p = done[done.length - 1];
    if (!p || p.sent) return;
    done.pop();
    if (pending === p) { clearTimeout(p.timer); pending = null; }
    p.el.hidden = false;
    queue.prepend(p.el);
    setText("pending", "Undone.");
    update();
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.target.matches("input, textarea, select")) return;
    const k = ev.key.toLowerCase();
    if (k === "r") act("real");
    else if (k === "f") act("fake");
    else if (k === "s") act("skip");
    else if (k === "u") undo();
    else return;
    ev.preventDefault();
  });
  queue.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-label]");
    if (!b) return;
    if (b.closest("li") !== current()) queue.prepend(b.closest("li"));
    act(b.dataset.label);
  });
  $("undo").addEventListener("click", undo);
  update();
  window.addEventListener("pagehide", () => { if (pending) send(pending); });
}

function trainPage() {
  const start = $("start");
  if (!start) return;
  let running = !$("progress").hidden;
  const es = new EventSource("/api/train/stream");
  es.addEventListener("train", (ev) => {
    const s = JSON.parse(ev.data);
    if (running && !s.running) { es.close(); location.reload(); return; }
    running = s.running;
    $("progress").hidden = !s.running;
    start.disabled = s.running;
    $("rollback").disabled = s.running;
    if ($("teach-start")) $("teach-start").disabled = s.running;
    const bar = $("bar");
    bar.max = Math.max(1, s.progress.total);
    bar.value = s.progress.done;
    setText("phase", s.progress.phase + (s.progress.total ? " " + s.progress.done + "/" + s.progress.total : ""));
    setText("line", s.progress.line || "");
  });
  const fail = (e) => setText("note", e.message);
  start.addEventListener("click", () => {
    start.disabled = true;
    post("/api/train").then(() => setText("note", "Training started.")).catch((e) => { start.disabled = false; fail(e); });
  });
  $("rollback").addEventListener("click", () => {
    if (!confirm("Put back the head the last install replaced?")) return;
    post("/api/rollback").then(() => location.reload()).catch(fail);
  });
  const teach = $("teach-start");
  if (teach) teach.addEventListener("click", () => {
    teach.disabled = start.disabled = true;
    const camera = $("teach-camera").value;
    post("/api/train/teach", new URLSearchParams({ camera })).then(() => setText("note", "Collecting faces of camera " + camera + "."))
      .catch((e) => { teach.disabled = start.disabled = false; fail(e); });
  });
  $("cancel").addEventListener("click", () => { post("/api/train/cancel").catch(fail); });
  const inst = $("install");
  const taught = !!$("teach-table");
  if (inst) inst.addEventListener("click", () => {
    const ask = taught ? "Install the head taught on this camera? The installed one is kept for a rollback."
      : "The gate refused this head: it did worse than the installed one on held-out images. Install it anyway?";
    if (!confirm(ask)) return;
    post("/api/train/install", new URLSearchParams({ confirm: "yes" })).then(() => location.reload()).catch(fail);
  });
  const discard = $("discard");
  if (discard) discard.addEventListener("click", () => {
    post("/api/train/discard").then(() => location.reload()).catch(fail);
  });
}

// The live view plays each camera as a stream of its analysed frames
// (MJPEG), while the page is visible: the daemon copies frames only while a
// stream or a request asks, so a hidden page stops its streams.
function livePage() {
  const imgs = document.querySelectorAll("img.live");
  const play = () => {
    for (const img of imgs) {
      if (document.hidden) {
        img.removeAttribute("src"); // ends the stream
        continue;
      }
      if (img.getAttribute("src")) continue;
      img.onload = () => { img.closest("figure").querySelector(".wait").hidden = true; };
      img.src = "/live/" + encodeURIComponent(img.dataset.camera) + ".mjpg";
    }
  };
  play();
  document.addEventListener("visibilitychange", play);
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "status") statusPage();
  else if (page === "live") livePage();
  else if (page === "review") reviewPage();
  else if (page === "train") trainPage();
});
