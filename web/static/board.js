// The board redraws itself when its deals change: it asks the server for the columns every few
// seconds and swaps them in only when their stamp differs, so focus and scroll stay put otherwise.
(function () {
  "use strict";
  var holder = document.getElementById("board");
  if (!holder) { return; }
  var url = holder.getAttribute("data-refresh");
  var every = 4000;
  function stamp(node) {
    var board = node.querySelector(".board");
    return board ? board.getAttribute("data-stamp") : null;
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html === null) { return; }
        var next = document.createElement("div");
        next.innerHTML = html;
        if (stamp(next) !== stamp(holder)) {
          holder.innerHTML = html;
        }
      })
      .catch(function () { /* the server is away: try again at the next tick */ })
      .then(function () { window.setTimeout(poll, every); });
  }
  window.setTimeout(poll, every);
})();
