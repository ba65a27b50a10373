// Notifier console: the live preview (new notice and update forms) and the self-refreshing delivery summary. Plain JS; every
// page works without it (the form has a Preview button, the summary a page reload).
"use strict";

function csrfToken(form) {
  const field = form.querySelector('input[name="csrf"]');
  return field ? field.value : "";
}

function livePreview(form) {
  const target = document.getElementById("preview");
  let timer = null;
  let seq = 0;
  const clearErrors = () => {
    form.querySelectorAll("[data-error-for]").forEach((el) => { el.textContent = ""; el.removeAttribute("role"); });
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  };
  const showErrors = () => {
    target.querySelectorAll(".preview-error").forEach((el) => {
      const slot = form.querySelector(`[data-error-for="${el.dataset.field}"]`);
      if (slot) {
        slot.textContent = el.textContent;
        const input = form.querySelector(`[name="${el.dataset.field}"]`);
        if (input && input.type !== "checkbox" && input.type !== "radio") input.setAttribute("aria-invalid", "true");
      }
    });
  };
  const refresh = async () => {
    const mine = ++seq;
    const body = new FormData(form);
    try {
      const response = await fetch(form.dataset.previewUrl, {
        method: "POST", body, headers: { "X-CSRF-Token": csrfToken(form) }, credentials: "same-origin",
      });
      if (mine !== seq) return; // a newer request is on its way
      if (!response.ok) { target.innerHTML = "<h2>Preview</h2><p class=\"error\">The preview is unavailable (" + response.status + "): reload the page.</p>"; return; }
      target.innerHTML = await response.text();
      target.dataset.ready = String(mine);
      clearErrors();
      showErrors();
    } catch (err) {
      if (mine === seq) target.innerHTML = "<h2>Preview</h2><p class=\"error\">The preview is unavailable: check the connection.</p>";
    }
  };
  const schedule = () => { clearTimeout(timer); timer = setTimeout(refresh, 300); };
  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);
  const sendAt = form.querySelector("#send_at");
  const at = form.querySelector("#send-mode-at");
  if (sendAt && at) sendAt.addEventListener("input", () => { at.checked = true; });
  const location = form.querySelector("#location");
  const hint = document.getElementById("zone-hint");
  if (location && hint) {
    location.addEventListener("change", () => {
      const option = location.selectedOptions[0];
      if (option && option.dataset.timezone) {
        hint.textContent = `Times are in the location's own time zone (${option.dataset.timezone}; it is now ${option.dataset.now} there).`;
      }
    });
  }
  // The update form sits in a closed <details> on the notice page: preview once it is opened.
  const details = form.closest("details");
  if (details && !details.open) details.addEventListener("toggle", () => { if (details.open) refresh(); }, { once: true });
  else refresh();
}

// The delivery table and broadcast facts, re-read from this page's own URL (filters kept).
async function refreshLog() {
  const response = await fetch(window.location.href, { credentials: "same-origin" });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
  for (const id of ["log", "facts"]) {
    const old = document.getElementById(id);
    const replacement = fresh.getElementById(id);
    if (old && replacement) old.replaceWith(replacement);
  }
}

function pollSummary(box) {
  const started = Date.now();
  const tick = async () => {
    const current = document.getElementById("summary");
    if (!current || current.dataset.sending !== "true" || Date.now() - started > 30 * 60 * 1000) return;
    try {
      const response = await fetch(current.dataset.url, { credentials: "same-origin" });
      if (response.ok) {
        const before = current.querySelector(".bar").getAttribute("aria-label");
        current.outerHTML = await response.text();
        const after = document.querySelector("#summary .bar").getAttribute("aria-label");
        if (after !== before) await refreshLog();
      }
    } catch (err) { /* try again on the next tick */ }
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}

// The undo window: count the seconds down where the page shows them; at zero, reload to show
// the broadcast going out (the server, not this count, decides when it goes).
function countDown(element) {
  let left = Number(element.dataset.seconds);
  const tick = () => {
    left -= 1;
    if (left <= 0) { window.location.reload(); return; }
    element.querySelector(".seconds").textContent = String(left);
    setTimeout(tick, 1000);
  };
  setTimeout(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const hold = document.getElementById("hold-countdown");
  if (hold) countDown(hold);
  const form = document.getElementById("notice-form");
  if (form) livePreview(form);
  const summary = document.getElementById("summary");
  if (summary) pollSummary(summary);
  document.querySelectorAll("form[data-confirm]").forEach((f) => {
    f.addEventListener("submit", (event) => { if (!window.confirm(f.dataset.confirm)) event.preventDefault(); });
  });
});
