// Keyboard shortcuts of the quarantine list, as in mail clients: j/k move, x selects,
// Enter (or o) opens. The page works without this file.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("table.items tbody tr[data-href]"));
  if (!rows.length) { return; }
  var current = -1;
  function move(to) {
    if (current >= 0) { rows[current].classList.remove("current"); }
    current = Math.max(0, Math.min(rows.length - 1, to));
    rows[current].classList.add("current");
    rows[current].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea" || event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "j") { move(current + 1); }
    else if (event.key === "k") { move(current - 1); }
    else if (event.key === "x" && current >= 0) {
      var box = rows[current].querySelector("input[type=checkbox]");
      if (box) { box.checked = !box.checked; }
    } else if ((event.key === "Enter" || event.key === "o") && current >= 0) {
      window.location.href = rows[current].getAttribute("data-href");
    } else { return; }
    event.preventDefault();
  });
})();
