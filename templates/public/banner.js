/* Notifier closure banner: paste <script src=".../public/SLUG/banner.js" async></script>.
   No dependencies, no cookies; shows the location's current or upcoming closures in the page's
   language (<html lang>, or data-lang on the script tag) and nothing otherwise. */
(function () {
  "use strict";
  var me = document.currentScript;
  if (!me || !window.fetch) return;
  var lang = (me.getAttribute("data-lang") || document.documentElement.lang || "en")
    .slice(0, 2).toLowerCase();
  var url = me.src.replace(/\/banner\.js([?#].*)?$/, ".json") + "?lang=" + encodeURIComponent(lang);

  function show(feed) {
    var live = feed.closures.filter(function (c) {
      return c.state === "current" || c.state === "upcoming";
    });
    if (!live.length) return;
    var box = document.createElement("div");
    box.setAttribute("role", "status");
    box.setAttribute("lang", feed.language);
    box.className = "notifier-banner";
    box.style.cssText = "position:relative;box-sizing:border-box;margin:0;padding:12px 48px 12px 16px;" +
      "background:#fff7ed;color:#1a1a1a;border-bottom:3px solid #b45309;font:16px/1.5 system-ui,sans-serif;z-index:2147483647";
    document.body.insertBefore(box, document.body.firstChild);
    var text = document.createElement("p");
    text.style.margin = "0";
    text.textContent = live.map(function (c) { return c.text; }).join(" ") + " ";
    var more = document.createElement("a");
    more.href = feed.location.page + "?lang=" + feed.language;
    more.textContent = feed.labels.more;
    more.style.color = "#1d4ed8";
    text.appendChild(more);
    var close = document.createElement("button");
    close.type = "button";
    close.setAttribute("aria-label", feed.labels.dismiss);
    close.textContent = "\u00d7";
    close.style.cssText = "position:absolute;top:6px;right:8px;min-width:36px;min-height:36px;" +
      "font:24px/1 system-ui,sans-serif;background:transparent;border:0;cursor:pointer;color:inherit";
    close.onclick = function () { box.parentNode.removeChild(box); };
    // Filled after insertion, so screen readers announce it as a status.
    setTimeout(function () { box.appendChild(text); box.appendChild(close); }, 0);
  }

  function load() {
    fetch(url, { credentials: "omit", mode: "cors" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (feed) { if (feed) show(feed); })
      .catch(function () {});
  }

  if (document.body) load(); else document.addEventListener("DOMContentLoaded", load);
})();
