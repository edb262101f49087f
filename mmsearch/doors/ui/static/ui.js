// mmsearch ui: keyboard navigation, drop or paste a picture to search by it, and a video
// that starts at its moment. Plain JavaScript, no build step, nothing from elsewhere.
"use strict";

function cards() {
  return Array.from(document.querySelectorAll("#results a.hit"));
}

// Arrow keys move across the grid; Enter opens a result; "m" asks for more like it;
// "/" goes back to the search box; Escape leaves a result for the search.
function columns(list) {
  if (list.length < 2) return 1;
  const top = list[0].getBoundingClientRect().top;
  const n = list.findIndex((a) => a.getBoundingClientRect().top !== top);
  return n === -1 ? list.length : n;
}

document.addEventListener("keydown", (event) => {
  const typing = event.target.matches("input, select, textarea");
  if (event.key === "/" && !typing) {
    event.preventDefault();
    document.getElementById("q")?.focus();
    return;
  }
  if (event.key === "Escape" && document.querySelector("main.item")) {
    history.back();
    return;
  }
  const list = cards();
  if (!list.length) return;
  const at = list.indexOf(document.activeElement);
  if (event.key === "ArrowDown" && typing && event.target.id === "q") {
    event.preventDefault();
    list[0].focus();
    return;
  }
  if (typing || at === -1) return;
  if (event.key === "m") {
    const similar = list[at].parentElement.querySelector("a.similar");
    if (similar) location.href = similar.href;
    return;
  }
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(list), ArrowUp: -columns(list) }[event.key];
  if (step === undefined) return;
  event.preventDefault();
  const next = at + step;
  if (next < 0) document.getElementById("q")?.focus();
  else list[Math.min(next, list.length - 1)].focus();
});

// A picture dropped or pasted anywhere is uploaded and searched by, with the words typed so far.
async function searchBy(file) {
  if (!file) return;
  const body = new FormData();
  body.append("image", file, file.name || "pasted.png");
  body.append("q", document.getElementById("q")?.value || "");
  const response = await fetch("/upload", {  // the session cookie goes along (same origin)
    method: "POST",
    body,
    headers: { Accept: "application/json" },
  });
  if (response.ok) {
    location.href = (await response.json()).location;
    return;
  }
  let message = "upload failed (" + response.status + ")";
  try {
    message = (await response.json()).error || message;
  } catch (_) {}
  show(message);
}

function show(message) {
  let box = document.getElementById("upload-message");
  if (!box) {
    box = document.createElement("p");
    box.id = "upload-message";
    box.className = "message";
    box.setAttribute("role", "alert");
    document.querySelector("main")?.prepend(box);
  }
  box.textContent = message;
}

document.addEventListener("dragover", (event) => {
  event.preventDefault();
  document.body.classList.add("dropping");
});
document.addEventListener("dragleave", () => document.body.classList.remove("dropping"));
document.addEventListener("drop", (event) => {
  event.preventDefault();
  document.body.classList.remove("dropping");
  searchBy(event.dataTransfer?.files?.[0]);
});
document.addEventListener("paste", (event) => {
  const item = Array.from(event.clipboardData?.items || []).find((i) => i.type.startsWith("image/"));
  if (item) {
    event.preventDefault();
    searchBy(item.getAsFile());
  }
});

// The upload form searches as soon as a file is chosen.
document.getElementById("picture")?.addEventListener("change", (event) => {
  searchBy(event.target.files[0]);
});

// A video result starts at its moment (the #t= fragment says so too; this covers players
// that ignore it).
const player = document.getElementById("player");
if (player) {
  const t = parseFloat(player.dataset.t || "0");
  player.addEventListener("loadedmetadata", () => {
    if (t > 0 && Math.abs(player.currentTime - t) > 0.5) player.currentTime = t;
  }, { once: true });
}
