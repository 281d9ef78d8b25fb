// Copy buttons (internal/pages/static/copy.js). A page that shows a
// secret once puts, next to it,
//   <button type="button" class="secondary" data-copy="ID" hidden>Copy</button>
// and loads this file (<script src="{{static "copy.js"}}" defer></script>):
// the button copies the text (or an input's value) of the element with
// id ID. It stays hidden without JavaScript or a clipboard, so no page
// shows a button that does nothing.
"use strict";
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var target = document.getElementById(button.dataset.copy);
  if (!target || !navigator.clipboard) {
    return;
  }
  var status = document.createElement("span");
  status.setAttribute("role", "status");
  status.className = "muted small";
  button.after(status);
  button.hidden = false;
  button.addEventListener("click", function () {
    var text = target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement ? target.value : target.textContent;
    navigator.clipboard.writeText(text).then(function () {
      status.textContent = "Copied.";
    }, function () {
      status.textContent = "Not copied: select the text and copy it.";
    });
  });
});
