// Boots the vendored Swagger UI on /docs (templates/api_docs.html). A file, not an inline
// script: the Content-Security-Policy allows scripts from this origin only.
(function () {
  "use strict";
  function boot() {
    var root = document.getElementById("swagger-ui");
    if (!root || typeof window.SwaggerUIBundle !== "function") return;
    window.ui = window.SwaggerUIBundle({
      url: root.getAttribute("data-url") || "/openapi.json",
      domNode: root,
      deepLinking: true,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
      // No badge from validator.swagger.io: nothing on this page leaves the origin.
      validatorUrl: null,
      // Never load another document from ?url= or ?configUrl= in the address.
      queryConfigEnabled: false,
      defaultModelsExpandDepth: 0
    });
  }
  // The site follows the reader's colour scheme (style.css); Swagger UI has its own dark
  // styles, switched on by this class on <html>.
  var dark = window.matchMedia ? window.matchMedia("(prefers-color-scheme: dark)") : null;
  function scheme() {
    document.documentElement.classList.toggle("dark-mode", !!(dark && dark.matches));
  }
  scheme();
  if (dark && dark.addEventListener) dark.addEventListener("change", scheme);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", boot);
  } else {
    boot();
  }
})();
