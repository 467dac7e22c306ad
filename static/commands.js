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
