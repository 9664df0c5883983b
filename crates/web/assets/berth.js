// berth's dashboard works without this script. With it: copy buttons (the clipboard API
// needs script) and the live preview of an access rule's pattern while it is typed.
"use strict";
document.documentElement.classList.add("js");

document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-copy]");
  if (!button || !navigator.clipboard) {
    return;
  }
  navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
    var label = button.textContent;
    button.textContent = "Copied";
    setTimeout(function () { button.textContent = label; }, 1500);
  });
});

// A pattern field with data-preview="URL" shows, in the element its aria-controls names,
// the repositories the pattern matches (the same HTML the page shows without script).
document.addEventListener("input", function (event) {
  var field = event.target.closest("input[data-preview]");
  if (!field) {
    return;
  }
  clearTimeout(field.previewTimer);
  field.previewTimer = setTimeout(function () {
    var url = field.getAttribute("data-preview") + encodeURIComponent(field.value);
    fetch(url, { credentials: "same-origin" }).then(function (response) {
      return response.ok ? response.text() : "";
    }).then(function (html) {
      var target = document.getElementById(field.getAttribute("aria-controls"));
      if (target) {
        target.innerHTML = html;
      }
    });
  }, 250);
});
