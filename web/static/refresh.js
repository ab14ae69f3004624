// A read-only part of a page (data-refresh-every="SECONDS") is fetched again from the page's own
// address at that interval and swapped in when it changed, unless the reader is working in it
// (focus inside): the dashboard stays current without a reload.
(function () {
  "use strict";
  var parts = document.querySelectorAll("[data-refresh-every][id]");
  Array.prototype.forEach.call(parts, function (part) {
    var every = Math.max(5, parseInt(part.getAttribute("data-refresh-every"), 10) || 30) * 1000;
    function tick() {
      if (part.contains(document.activeElement)) {
        window.setTimeout(tick, every);
        return;
      }
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) { return; }
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(part.id);
          if (fresh && fresh.innerHTML !== part.innerHTML) {
            part.innerHTML = fresh.innerHTML;
          }
        })
        .catch(function () { /* the server is away: try again at the next tick */ })
        .then(function () { window.setTimeout(tick, every); });
    }
    window.setTimeout(tick, every);
  });
})();
