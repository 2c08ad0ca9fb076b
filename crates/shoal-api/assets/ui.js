// Shoal's web UI: the live parts of server-rendered pages, in plain JavaScript.
// - An element with data-refresh="ms" is fetched again from the same URL and replaced.
// - A <pre data-logs="path"> follows a job's logs over the API's WebSocket.
"use strict";

const banner = () => document.getElementById("conn");

function showLost(lost) {
  const b = banner();
  if (b) b.hidden = !lost;
}

async function refresh(el) {
  try {
    const res = await fetch(location.href, { credentials: "same-origin" });
    if (!res.ok) throw new Error(res.status);
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    const fresh = doc.getElementById(el.id);
    if (fresh) el.replaceChildren(...fresh.childNodes);
    showLost(false);
  } catch (e) {
    showLost(true);
  }
}

function followLogs(pre) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(scheme + "//" + location.host + pre.dataset.logs);
  ws.onmessage = (m) => {
    let frame;
    try { frame = JSON.parse(m.data); } catch (e) { return; }
    if (frame.error) {
      const span = document.createElement("span");
      span.className = "err";
      span.textContent = frame.error + "\n";
      pre.append(span);
      return;
    }
    if (!frame.value) return;
    const text = document.createTextNode(frame.value.Line);
    if (frame.value.Type === 2) {
      const span = document.createElement("span");
      span.className = "err";
      span.append(text);
      pre.append(span);
    } else {
      pre.append(text);
    }
    pre.scrollTop = pre.scrollHeight;
  };
  ws.onclose = () => { pre.dataset.done = "true"; };
}

document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-refresh]")) {
    const every = parseInt(el.dataset.refresh, 10) || 2000;
    setInterval(() => refresh(el), every);
  }
  for (const pre of document.querySelectorAll("pre[data-logs]")) followLogs(pre);
});
