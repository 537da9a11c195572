// Shows upload progress; without this script the form still works.
"use strict";
(function () {
  const form = document.getElementById("upload");
  const bar = document.getElementById("upload-progress");
  if (!form || !bar || !window.XMLHttpRequest) return;
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    const xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    bar.hidden = false;
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
    });
    xhr.addEventListener("load", function () {
      if (xhr.responseURL && xhr.status < 400) {
        window.location.assign(xhr.responseURL);
      } else {
        // Show the server's page (the form with the error); it then works without this script.
        const page = new DOMParser().parseFromString(xhr.responseText, "text/html");
        document.body.replaceWith(page.body);
      }
    });
    xhr.addEventListener("error", function () {
      bar.hidden = true;
      window.alert("The upload failed: the connection was lost.");
    });
    xhr.send(new FormData(form));
  });
})();
