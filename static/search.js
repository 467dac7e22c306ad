// The search page's keyboard and its htmx swaps (templates/search.html, _results.html).
//
// "/" anywhere (but in another field) focuses the search box; from the box ArrowDown moves
// focus onto the first result's link, ArrowDown/ArrowUp go through the results' links (up
// from the first returns to the box), Home/End jump to the first/last, Enter opens the link
// (a real link: the browser does it), Escape returns to the box. Focus moves on real links
// rather than an aria-activedescendant listbox: each result holds links and a score
// breakdown (<details>), which an option may not contain.
//
// After htmx swaps #results: the new count is copied into the #search-status live region; a
// facet, chip or pager link that was used is focused again in the new results (else the
// count), so keyboard users keep their place; the filters stay folded on a phone and open
// on a wide screen unless the person toggled them.
(function () {
  "use strict";

  const WIDE = window.matchMedia("(min-width: 48rem)");
  let facetsChoice = null; // null until the person opens or closes the filters themselves
  let pendingFocus = null; // data-focus of the link whose request is swapping #results

  const box = () => document.getElementById("search-box");
  const links = () => Array.from(document.querySelectorAll("#result-list a.name"));

  function typingElsewhere(target) {
    if (!(target instanceof Element) || target === box()) return false;
    return target.isContentEditable || target.matches("input, textarea, select");
  }

  function moveFrom(current, key) {
    const all = links();
    if (!all.length) return false;
    const at = all.indexOf(current);
    let next = null;
    if (key === "ArrowDown") next = at < 0 ? all[0] : all[Math.min(at + 1, all.length - 1)];
    else if (key === "ArrowUp") next = at <= 0 ? box() : all[at - 1];
    else if (key === "Home" && at >= 0) next = all[0];
    else if (key === "End" && at >= 0) next = all[all.length - 1];
    if (!next) return false;
    next.focus();
    if (next !== box()) next.scrollIntoView({ block: "nearest" });
    return true;
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.ctrlKey || event.metaKey || event.isComposing) return;
    const search = box();
    if (!search) return;
    const target = event.target;
    if (event.key === "/" && target !== search && !typingElsewhere(target)) {
      event.preventDefault();
      search.focus();
      search.select();
      return;
    }
    const onResult = target instanceof Element && target.matches("#result-list a.name");
    if (target === search && event.key === "ArrowDown") {
      if (moveFrom(null, "ArrowDown")) event.preventDefault();
    } else if (onResult && ["ArrowDown", "ArrowUp", "Home", "End"].includes(event.key)) {
      if (moveFrom(target, event.key)) event.preventDefault();
    } else if (onResult && event.key === "Escape") {
      event.preventDefault();
      search.focus();
    }
  });

  function fitFacets(root) {
    const details = root.querySelector("details.facets");
    if (!details) return;
    details.open = facetsChoice === null ? WIDE.matches : facetsChoice;
  }

  // `toggle` does not bubble: listen in the capture phase. A toggle made by fitFacets
  // leaves the choice as it was, since it sets the same state.
  document.addEventListener("toggle", (event) => {
    const details = event.target;
    if (!(details instanceof HTMLDetailsElement) || !details.matches("details.facets")) return;
    if (details.open !== (facetsChoice === null ? WIDE.matches : facetsChoice)) {
      facetsChoice = details.open;
    }
  }, true);

  document.addEventListener("htmx:beforeRequest", (event) => {
    const source = event.detail && event.detail.elt;
    pendingFocus = source instanceof Element && source.closest("#results")
      ? source.getAttribute("data-focus") || "" : null;
  });

  document.addEventListener("htmx:afterSettle", (event) => {
    const swapped = event.detail && event.detail.target;
    const results = document.getElementById("results");
    if (!results || !(swapped instanceof Element) || swapped.id !== "results") return;
    fitFacets(results);
    const status = document.getElementById("search-status");
    const count = results.querySelector("[data-announce]");
    if (status && count) status.textContent = count.textContent.replace(/\s+/g, " ").trim();
    if (pendingFocus !== null) {
      const again = pendingFocus && results.querySelector(
        `[data-focus="${CSS.escape(pendingFocus)}"]`);
      (again || results.querySelector("#result-count") || box()).focus();
      pendingFocus = null;
    }
  });

  // Back and forward re-load the whole page into <body> (no history snapshots).
  document.addEventListener("htmx:historyRestore", () => fitFacets(document));
  WIDE.addEventListener("change", () => { if (facetsChoice === null) fitFacets(document); });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => fitFacets(document));
  } else {
    fitFacets(document);
  }
})();
