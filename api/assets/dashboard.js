// lbaasd's dashboard: refreshes the live part of a page every few seconds, from the same
// address, unless the operator is using a form. The page is this host's own escaped HTML.
(function () {
  "use strict";
  function schedule() {
    var live = document.getElementById("live");
    if (!live || !live.dataset.refresh) return;
    var seconds = Number(live.dataset.refresh) || 5;
    setTimeout(refresh, seconds * 1000);
  }
  function refresh() {
    var active = document.activeElement;
    if (active && active.closest && active.closest("form")) return schedule();
    fetch(location.href, { credentials: "same-origin", redirect: "error" })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
        var live = document.getElementById("live");
        if (fresh && live) live.replaceWith(fresh);
      })
      .catch(function () { /* the next round tries again */ })
      .then(schedule);
  }
  schedule();
})();
