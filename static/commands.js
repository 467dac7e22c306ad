// Install commands wrap only at spaces: every space-separated word of a `pre.command` goes in
// a span that does not wrap (style.css), so a hyphen or a slash in a name or a URL is never a
// line break; a word wider than the block scrolls inside it. The text, and so what a person
// copies, is unchanged. Without this script the block still wraps, also after hyphens.
document.addEventListener("DOMContentLoaded", () => {
  for (const code of document.querySelectorAll("pre.command > code")) {
    const parts = code.textContent.split(" ").flatMap((word, i) => {
      const span = document.createElement("span");
      span.className = "word";
      span.textContent = word;
      return i ? [" ", span] : [span];
    });
    code.replaceChildren(...parts);
  }
});

// Copy buttons (templates/skill.html): each `button.copy[data-copy]` names the id of the code
// whose text it copies. The buttons stay hidden without this script. The Clipboard API needs
// a secure context (https, or localhost); elsewhere the command is selected and copied with
// the older execCommand, or left selected for Ctrl+C.
document.addEventListener("DOMContentLoaded", () => {
  const status = document.querySelector(".copy-status");
  const say = (text) => { if (status) status.textContent = text; };
  const fallback = (code) => {
    const range = document.createRange();
    range.selectNodeContents(code);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    try { return document.execCommand("copy"); } catch { return false; }
  };
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const code = document.getElementById(button.dataset.copy);
    if (!code) continue;
    const label = button.textContent;
    let timer = 0;
    const show = (text, state) => {
      button.textContent = text;
      button.dataset.state = state;
      clearTimeout(timer);
      timer = setTimeout(() => { button.textContent = label; delete button.dataset.state; }, 2000);
    };
    button.hidden = false;
    button.addEventListener("click", async () => {
      const text = code.textContent;
      const name = (button.getAttribute("aria-label") || "").replace(/^Copy the /, "");
      let copied = false;
      try {
        if (navigator.clipboard && window.isSecureContext) {
          await navigator.clipboard.writeText(text);
          copied = true;
        }
      } catch { copied = false; }
      if (!copied) copied = fallback(code);
      if (copied) { show("Copied", "copied"); say(`Copied ${name}`); }
      else { show("Press Ctrl+C", "select"); say("The command is selected: press Ctrl+C to copy it"); }
    });
  }
});
