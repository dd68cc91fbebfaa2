// The saga-orchestrator web pages: the map's numbers refresh in place every 5 s, and a
// running saga's page appends its events as they arrive (Server-Sent Events), reloading
// once the saga has ended. Plain JavaScript, no library.
"use strict";

function refreshMap(map) {
  const url = map.dataset.countsUrl;
  const readAt = document.getElementById("read-at");
  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" },
                                           credentials: "same-origin" });
      if (response.redirected || !response.ok) {
        readAt.textContent = "not refreshed: " + (response.redirected
          ? "signed out, reload to sign in" : "the API answered " + response.status);
        return;
      }
      const body = await response.json();
      for (const [key, value] of Object.entries(body.counts)) {
        for (const cell of document.querySelectorAll(`[data-count="${CSS.escape(key)}"]`)) {
          const number = cell.querySelector(".n");
          if (number && number.textContent !== String(value)) number.textContent = String(value);
          if (cell.classList.contains("count")) {
            cell.classList.toggle("zero", value === 0);
            const stuck = cell.classList.contains("count-stuck") ||
                          cell.classList.contains("count-compensation_stuck");
            cell.classList.toggle("hot", stuck && value > 0);
          }
        }
      }
      const at = new Date(body.read_at);
      readAt.textContent = "read at " + at.toISOString().slice(11, 19) + " UTC";
    } catch (error) {
      readAt.textContent = "not refreshed: " + error;
    }
  }
  setInterval(poll, 5000);
}

function followSaga(saga) {
  if (saga.dataset.running !== "true") return;
  const list = document.getElementById("events");
  const live = document.getElementById("live");
  const after = saga.dataset.lastEvent || "0";
  const source = new EventSource(saga.dataset.eventsUrl + "?after=" + encodeURIComponent(after));
  live.textContent = "Following the saga's events live.";
  const append = (message) => {
    if (list.querySelector(`[data-position="${CSS.escape(message.lastEventId)}"]`)) return;
    const event = JSON.parse(message.data);
    const item = document.createElement("li");
    item.dataset.position = message.lastEventId;
    const time = document.createElement("time");
    time.dateTime = event.timestamp;
    time.textContent = new Date(event.timestamp).toISOString().slice(11, 19);
    const type = document.createElement("code");
    type.textContent = event.event_type;
    const from = document.createElement("span");
    from.className = "hint";
    from.textContent = "from " + event.source;
    item.append(time, " ", type, " ", from);
    list.append(item);
  };
  // Each event arrives under its own type (order.placed.v1...), which the page lists.
  for (const type of JSON.parse(saga.dataset.eventTypes || "[]")) {
    source.addEventListener(type, append);
  }
  source.addEventListener("end", (message) => {
    source.close();
    const end = JSON.parse(message.data); // a return's outcome is what its page shows
    const status = end.outcome || end.status;
    document.getElementById("saga-status").textContent = status;
    live.textContent = "The saga has ended: " + status + ". Reloading the page.";
    window.location.reload();
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) live.textContent = "Live updates stopped.";
  };
}

document.addEventListener("DOMContentLoaded", () => {
  const map = document.getElementById("map");
  if (map) refreshMap(map);
  const saga = document.getElementById("saga");
  if (saga) followSaga(saga);
});
