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
  busy("uploading…");
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
  document.body.classList.remove("loading");
  document.getElementById("busy").textContent = "";
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

// Loading states: a search or an upload says it is under way until the next page comes.
function busy(what) {
  document.body.classList.add("loading");
  const box = document.getElementById("busy");
  if (box) box.textContent = what;
}
document.getElementById("search")?.addEventListener("submit", () => busy("searching…"));

// A changed filter applies at once when there is a query to apply it to.
document.querySelector("#search fieldset")?.addEventListener("change", () => {
  const form = document.getElementById("search");
  const asked = document.getElementById("q")?.value.trim() || form.querySelector("input[type=hidden]");
  if (asked) form.requestSubmit();
});

// "more results" grows the grid in place, and comes by itself when it scrolls into view.
async function more(link) {
  if (link.dataset.loading) return;
  link.dataset.loading = "1";
  link.textContent = "loading…";
  const response = await fetch(link.href, { headers: { Accept: "text/html" } });
  const next = new DOMParser().parseFromString(await response.text(), "text/html");
  if (!response.ok || !next.getElementById("results")) {
    show(next.querySelector(".message")?.textContent || "more failed (" + response.status + ")");
    return;
  }
  // The next page holds every result so far: it replaces the grid, which only grows, so
  // the scroll stays where it is (the thumbnails shown come from the browser's cache).
  document.getElementById("results").replaceWith(next.getElementById("results"));
  document.getElementById("count").replaceWith(next.getElementById("count"));
  const again = next.getElementById("more");
  if (again) link.replaceWith(again);
  else link.remove();
  history.replaceState(null, "", link.href);
  if (again) watchMore(again);
}

function watchMore(link) {
  link.addEventListener("click", (event) => {
    event.preventDefault();
    more(link);
  });
  new IntersectionObserver((entries, observer) => {
    if (entries.some((e) => e.isIntersecting)) {
      observer.disconnect();
      more(link);
    }
  }, { rootMargin: "400px" }).observe(link);
}
const moreLink = document.getElementById("more");
if (moreLink) watchMore(moreLink);

// The folder field offers the indexed folders, asked for when it is first used.
document.querySelector("input[name=in]")?.addEventListener("focus", async () => {
  const list = document.getElementById("roots");
  if (!list || list.dataset.filled) return;
  list.dataset.filled = "1";
  const response = await fetch("/roots", { headers: { Accept: "application/json" } });
  if (!response.ok) return;
  for (const root of (await response.json()).roots) {
    const option = document.createElement("option");
    option.value = root;
    list.append(option);
  }
}, { once: true });

// The viewer: previous/next walk the results the page came from (remembered by this tab),
// full screen, and a click on a picture zooms it to its own size.
const results = cards();
if (results.length) {
  sessionStorage.setItem("mmsearch-results", JSON.stringify(results.map((a) => a.getAttribute("href"))));
}
const viewer = document.querySelector("main.item");
if (viewer) {
  const list = JSON.parse(sessionStorage.getItem("mmsearch-results") || "[]");
  const here = list.indexOf(location.pathname + location.search);
  for (const [id, step] of [["prev", -1], ["next", 1]]) {
    const target = list[here + step];
    const link = document.getElementById(id);
    if (here !== -1 && target && link) {
      link.href = target;
      link.hidden = false;
    }
  }
  document.addEventListener("keydown", (event) => {
    if (event.target.matches("input, select, textarea")) return;
    const link = { ArrowLeft: "prev", ArrowRight: "next" }[event.key];
    const target = link && document.getElementById(link);
    if (target && !target.hidden) location.href = target.href;
  });
  document.getElementById("fullscreen")?.addEventListener("click", () => {
    (document.getElementById("player") || document.getElementById("picture-large") || viewer).requestFullscreen();
  });
  document.getElementById("picture-large")?.addEventListener("click", (event) => {
    event.target.classList.toggle("zoomed");
  });
}

// A video moment's span on the video's timeline, once the video's length is known; a click
// on the timeline plays from the moment.
const timeline = document.getElementById("timeline");
if (player && timeline) {
  const start = parseFloat(timeline.dataset.t);
  const end = parseFloat(timeline.dataset.end);
  const draw = () => {
    const span = document.getElementById("span");
    timeline.style.width = player.clientWidth + "px";
    span.style.left = (100 * start / player.duration) + "%";
    span.style.width = (100 * Math.max(end - start, 0.1) / player.duration) + "%";
  };
  if (player.readyState >= 1) draw();
  else player.addEventListener("loadedmetadata", draw, { once: true });
  timeline.addEventListener("click", () => {
    player.currentTime = start;
    player.play();
  });
}
