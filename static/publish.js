// Publishing from the browser (templates/publish.html, skills_hub/web/publish_page.py).
// A dropped or chosen folder is read here (DataTransferItem.webkitGetAsEntry, or the folder
// input's webkitRelativePath) and sent as multipart `files` parts named by path; a dropped or
// chosen .zip/.tar.gz is sent as one `archive` part. "Check" posts to /publish/check, which
// stores nothing and answers with the report; its "Publish" form re-sends the very same files
// with the checked content_sha256, so other content is refused. What is refused here (no
// SKILL.md, too many or too large files) the server refuses too: it stays the judge.
// Without this script the page is a plain form posting an archive.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("publish-form");
  const result = document.getElementById("publish-result");
  if (!form || !result) return;
  const zone = document.getElementById("drop-zone");
  const folderInput = document.getElementById("folder-input");
  const archiveInput = document.getElementById("archive-input");
  const chosen = document.getElementById("chosen");
  const problem = document.getElementById("client-error");
  const checkButton = form.querySelector("button.check-button");
  const limits = {
    files: Number(form.dataset.maxFiles) || 100,
    total: Number(form.dataset.maxTotal) || 20 * 1024 * 1024,
    upload: Number(form.dataset.maxUpload) || 25 * 1024 * 1024,
  };
  // As the server reading a folder (skill/bundle.py): clutter and version control stay out.
  const SKIP_DIRS = new Set([".git", "__pycache__", "__MACOSX"]);
  const SKIP_FILES = new Set([".DS_Store"]);
  const ARCHIVE = /\.(zip|tar\.gz|tgz)$/i;

  // What is held: {kind: "files", files: [[path, File], ...], top} or {kind: "archive", file}.
  let held = null;

  zone.hidden = false;
  folderInput.closest("label").hidden = false;

  const size = (bytes) => bytes < 1024 ? `${bytes} B`
    : bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;

  const say = (text) => {
    problem.textContent = text;
    problem.hidden = !text;
  };

  const skipped = (path) => {
    const parts = path.split("/");
    return SKIP_FILES.has(parts[parts.length - 1]) || parts.slice(0, -1).some((p) => SKIP_DIRS.has(p));
  };

  // Where SKILL.md must be: at the top, or in the one folder everything sits in (the server
  // then drops that folder from the paths and checks its name against the skill's).
  const topFolder = (paths) => {
    if (paths.includes("SKILL.md")) return "";
    const tops = new Set(paths.map((p) => p.split("/")[0]));
    if (tops.size === 1 && paths.every((p) => p.includes("/"))) {
      const top = [...tops][0];
      if (paths.includes(`${top}/SKILL.md`)) return top;
    }
    return null;
  };

  const refusal = (h) => {
    if (h.kind === "archive") {
      if (!ARCHIVE.test(h.file.name)) return `${h.file.name} is not a .zip or a .tar.gz archive.`;
      if (h.file.size > limits.upload) return `${h.file.name} is ${size(h.file.size)}: the limit is ${size(limits.upload)}.`;
      if (h.file.size === 0) return `${h.file.name} is empty.`;
      return "";
    }
    if (!h.files.length) return "There are no files in what you chose.";
    if (h.files.length > limits.files) return `${h.files.length} files: the limit is ${limits.files}.`;
    const total = h.files.reduce((n, [, f]) => n + f.size, 0);
    if (total > limits.total) return `${size(total)} of files: the limit is ${size(limits.total)}.`;
    if (h.top === null) return "There is no SKILL.md at the top of what you chose: choose the skill's folder itself.";
    return "";
  };

  const show = (h) => {
    held = h;
    result.replaceChildren();  // a report of other files must not publish these
    chosen.replaceChildren();
    const wrong = refusal(h);
    say(wrong);
    checkButton.disabled = Boolean(wrong);
    const head = document.createElement("p");
    if (h.kind === "archive") {
      head.textContent = `Archive ${h.file.name}, ${size(h.file.size)}`;
      chosen.append(head);
    } else {
      const total = h.files.reduce((n, [, f]) => n + f.size, 0);
      head.textContent = `${h.top ? `Folder ${h.top}: ` : ""}${h.files.length} file${h.files.length === 1 ? "" : "s"}, ${size(total)}`;
      const list = document.createElement("ul");
      list.className = "chosen-files";
      const cut = h.top ? h.top.length + 1 : 0;
      for (const [path, file] of h.files.slice(0, 200)) {
        const item = document.createElement("li");
        const name = document.createElement("code");
        name.textContent = path.slice(cut);
        item.append(name, ` ${size(file.size)}`);
        list.append(item);
      }
      if (h.files.length > 200) {
        const more = document.createElement("li");
        more.textContent = `and ${h.files.length - 200} more`;
        list.append(more);
      }
      chosen.append(head, list);
    }
    chosen.hidden = false;
  };

  const holdFiles = (pairs) => {
    const kept = pairs.filter(([path]) => !skipped(path)).sort(([a], [b]) => (a < b ? -1 : 1));
    show({kind: "files", files: kept, top: topFolder(kept.map(([p]) => p))});
  };

  // -- reading a dropped folder ------------------------------------------------------------
  const fileOf = (entry) => new Promise((resolve, reject) => entry.file(resolve, reject));
  const batch = (reader) => new Promise((resolve, reject) => reader.readEntries(resolve, reject));
  const walk = async (entry, out) => {
    const path = entry.fullPath.replace(/^\/+/, "");
    if (entry.isFile) {
      out.push([path, await fileOf(entry)]);
    } else if (entry.isDirectory && !SKIP_DIRS.has(entry.name)) {
      const reader = entry.createReader();
      for (let entries = await batch(reader); entries.length; entries = await batch(reader)) {
        for (const child of entries) await walk(child, out);
        if (out.length > limits.files * 4) return;  // far past the limit: stop reading
      }
    }
  };

  const dropped = async (transfer) => {
    // The entries are only readable during the drop event: take them all first.
    const entries = [...transfer.items].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
    if (!entries.length) {  // no entry API (or a scripted drop): the plain files, no folders
      const plain = [...transfer.files];
      if (plain.length === 1 && ARCHIVE.test(plain[0].name)) show({kind: "archive", file: plain[0]});
      else holdFiles(plain.map((file) => [file.name, file]));
      return;
    }
    if (entries.length === 1 && entries[0].isFile && ARCHIVE.test(entries[0].name)) {
      archiveInput.value = "";
      folderInput.value = "";
      show({kind: "archive", file: await fileOf(entries[0])});
      return;
    }
    const out = [];
    for (const entry of entries) await walk(entry, out);
    archiveInput.value = "";
    folderInput.value = "";
    holdFiles(out);
  };

  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("drag-over");
    });
  }
  for (const name of ["dragleave", "dragend"]) {
    zone.addEventListener(name, () => zone.classList.remove("drag-over"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("drag-over");
    dropped(event.dataTransfer).catch((error) => say(`The dropped files could not be read: ${error.message || error}`));
  });
  // A file dropped beside the zone would otherwise open in the tab and leave the page.
  for (const name of ["dragover", "drop"]) {
    document.addEventListener(name, (event) => {
      if (!zone.contains(event.target)) event.preventDefault();
    });
  }
  zone.addEventListener("click", () => folderInput.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      folderInput.click();
    }
  });

  folderInput.addEventListener("change", () => {
    if (!folderInput.files.length) return;
    archiveInput.value = "";
    holdFiles([...folderInput.files].map((file) => [file.webkitRelativePath || file.name, file]));
  });
  archiveInput.addEventListener("change", () => {
    if (!archiveInput.files.length) return;
    folderInput.value = "";
    show({kind: "archive", file: archiveInput.files[0]});
  });

  // -- sending -------------------------------------------------------------------------------
  const payload = (fields) => {
    const data = new FormData();
    for (const [key, value] of fields) {
      if (typeof value === "string") data.append(key, value);
    }
    if (held.kind === "archive") data.append("archive", held.file, held.file.name);
    else for (const [path, file] of held.files) data.append("files", file, path);
    return data;
  };

  const send = async (url, fields, button, busy) => {
    const label = button.textContent;
    button.disabled = true;
    button.textContent = busy;
    result.setAttribute("aria-busy", "true");
    say("");
    try {
      const answer = await fetch(url, {
        method: "POST", body: payload(fields), credentials: "same-origin",
        headers: {"HX-Request": "true"},
      });
      const type = answer.headers.get("content-type") || "";
      if (!type.startsWith("text/html")) throw new Error(`the server answered ${answer.status}`);
      const html = await answer.text();
      const doc = new DOMParser().parseFromString(html, "text/html");
      if (!doc.querySelector(".publish-outcome")) {  // a whole error page (429, 503, ...)
        const why = doc.querySelector("main .error");
        throw new Error(`the server answered ${answer.status}${why ? `: ${why.textContent.trim()}` : ""}`);
      }
      result.replaceChildren(...doc.body.childNodes);
      const again = result.querySelector(".publish-again");
      if (again) {
        again.hidden = true;
        again.querySelector("input[type=file]").required = false;
      }
      const heading = result.querySelector(".result-heading");
      if (heading) heading.focus();
    } catch (error) {
      say(`Nothing was sent or stored: ${error.message || error}. Try again.`);
    } finally {
      result.removeAttribute("aria-busy");
      button.disabled = false;
      button.textContent = label;
    }
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!held && archiveInput.files.length) show({kind: "archive", file: archiveInput.files[0]});
    if (!held) {
      say("Choose a folder or an archive first, or drop one on the box.");
      return;
    }
    const wrong = refusal(held);
    if (wrong) {
      say(wrong);
      return;
    }
    const fields = [...new FormData(form)].filter(([key]) => key !== "archive");
    send("/publish/check", fields, checkButton, "Checking…");
  });

  // The report's form publishes what this page holds (the checked files).
  result.addEventListener("submit", (event) => {
    const confirm = event.target.closest("form.publish-confirm");
    if (!confirm || !held) return;
    event.preventDefault();
    const fields = [...new FormData(confirm)].filter(([key]) => key !== "archive");
    send("/publish", fields, confirm.querySelector("button[type=submit]"), "Publishing…");
  });
});
