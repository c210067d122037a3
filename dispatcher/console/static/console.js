/* dispatcher console: a little progressive enhancement. Every page works without it. */
(function () {
  "use strict";

  /* The create form shows only the option groups of the chosen event and method. A hidden
     group is disabled too, so its inputs are neither sent nor reachable with Tab. */
  function syncCreateForm(form) {
    var event = form.elements.namedItem("event").value;
    var method = form.elements.namedItem("method").value;
    form.querySelectorAll("fieldset[data-events]").forEach(function (set) {
      toggle(set, set.getAttribute("data-events").split(" ").indexOf(event) >= 0);
    });
    form.querySelectorAll("fieldset[data-method]").forEach(function (set) {
      toggle(set, set.getAttribute("data-method") === method);
    });
  }

  function toggle(set, on) {
    set.hidden = !on;
    set.disabled = !on;
  }

  document.querySelectorAll("form[data-create]").forEach(function (form) {
    form.addEventListener("change", function (change) {
      var name = change.target && change.target.name;
      if (name === "event" || name === "method") {
        syncCreateForm(form);
      }
    });
    syncCreateForm(form);
  });

  /* A live region is fetched again while a delivery it shows is pending, so attempts and
     states appear without reloading the page. */
  document.querySelectorAll("[data-live-url]").forEach(function (region) {
    var delay = parseInt(region.getAttribute("data-poll"), 10) || 1000;

    function pending() {
      return region.querySelector("[data-pending='true']") !== null;
    }

    function poll() {
      fetch(region.getAttribute("data-live-url"), {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      })
        .then(function (response) {
          if (response.status === 401) {
            window.location.reload();
            return null;
          }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null) {
            region.innerHTML = html;
          }
          if (pending()) {
            window.setTimeout(poll, delay);
          }
        })
        .catch(function () {
          window.setTimeout(poll, delay * 4);
        });
    }

    if (pending()) {
      window.setTimeout(poll, delay);
    }
  });
})();
