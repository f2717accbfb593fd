// wahook console: live views over server-sent events, and actions that
// send the operator's token in a header (never a cookie, never stored).
"use strict";

function live(el) {
  const src = new EventSource(el.dataset.live);
  src.addEventListener("overview", (e) => { el.innerHTML = e.data; });
  src.addEventListener("failed", (e) => { el.dataset.error = e.data; });
  document.body.dataset.live = "on";
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(live);
});
