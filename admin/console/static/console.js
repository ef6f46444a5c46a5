// The console works without this file: it only adds "select all" to the rejected webhooks' list.
document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("select-all");
  if (!all) return;
  all.hidden = false;
  all.addEventListener("change", function () {
    document.querySelectorAll("input[name=id]").forEach(function (box) { box.checked = all.checked; });
  });
});
