// wahook console: live views over server-sent events, and actions that
// send the operator's token in a header (never a cookie, never stored).
"use strict";

// follow keeps a live view of url open. The browser opens a view again by
// itself when it ends (the server ends each after a while), but gives up
// when the server refuses it (every live view taken: 503): then it is
// tried again a little later, at a random time so that refused pages do
// not all come back at once.
function follow(url, listen, onRefused) {
  const src = new EventSource(url);
  listen(src);
  src.addEventListener("error", () => {
    if (src.readyState !== EventSource.CLOSED) return;
    if (onRefused) onRefused();
    setTimeout(() => follow(url, listen, onRefused), 5000 + Math.random() * 10000);
  });
}

function live(el) {
  follow(el.dataset.live, (src) => {
    src.addEventListener("overview", (e) => { el.innerHTML = e.data; });
    src.addEventListener("open", () => { document.body.dataset.live = "on"; });
  }, () => { document.body.dataset.live = "off"; });
}

// tail puts new events at the top of the list, keeping the newest 500.
function tail(tbody) {
  const state = document.getElementById("tail-state");
  follow(tbody.dataset.tail, (src) => {
    src.addEventListener("open", () => {
      document.body.dataset.live = "on";
      if (state) state.textContent = "Live.";
    });
    src.addEventListener("error", () => { if (state) state.textContent = "Reconnecting…"; });
    src.addEventListener("failed", (e) => { if (state) state.textContent = "Stopped: " + e.data; });
    src.addEventListener("event", (e) => add(tbody, e));
    // A view opened again after a burst goes on live past the older events
    // it would not read; the server says how many.
    src.addEventListener("notice", (e) => { if (state) state.textContent = "Live; " + e.data + "."; });
  }, () => {
    document.body.dataset.live = "off";
    if (state) state.textContent = "Refused (every live view taken, or the service restarting): trying again shortly.";
  });
}

// add puts a live event's row at the top, unless it is there already: a
// view opened again resumes from the millisecond of the last row it got.
function add(tbody, e) {
  const t = document.createElement("template");
  t.innerHTML = e.data;
  const row = t.content.firstElementChild;
  if (!row) return;
  const same = 'tr[data-id="' + CSS.escape(row.dataset.id || "") + '"][data-stream="' + CSS.escape(row.dataset.stream || "") + '"]';
  if (tbody.querySelector(same)) return;
  tbody.prepend(row);
  while (tbody.rows.length > 500) tbody.deleteRow(-1);
  const empty = document.getElementById("tail-empty");
  if (empty) empty.remove();
}

async function redrive(button) {
  const out = button.parentElement.querySelector("output");
  const token = document.getElementById("token").value;
  if (!token) {
    out.textContent = "Type the console token first.";
    return;
  }
  button.disabled = true;
  try {
    const res = await fetch("/console/deadletters/redrive", {
      method: "POST",
      credentials: "omit",
      cache: "no-store",
      headers: { "X-Wahook-Console-Token": token, "Content-Type": "application/x-www-form-urlencoded" },
      body: "id=" + encodeURIComponent(button.dataset.redrive),
    });
    const answer = await res.json().catch(() => ({ message: res.statusText }));
    out.textContent = answer.message || res.statusText;
    out.className = "result " + (res.ok ? "ok" : "bad");
    if (!res.ok) button.disabled = false;
  } catch (err) {
    out.textContent = String(err);
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(live);
  document.querySelectorAll("[data-tail]").forEach(tail);
  document.querySelectorAll("button[data-redrive]").forEach((b) => b.addEventListener("click", () => redrive(b)));
});
