// The audit viewer: reads the query API with the viewer's cookie and shows the log.
// Every value is set as text (textContent), never as HTML: stored events may hold what a
// client sent.
(() => {
  "use strict";
  const body = document.body;
  const api = body.dataset.api;
  const prefix = body.dataset.prefix;
  const FILTERS = ["since", "until", "user_id", "event_type", "event_category", "outcome",
    "resource_type", "resource_id", "request_id", "tenant_id", "q"];
  const PAGE = 50;
  // the order the details list the fields in (the API's JSON has its keys sorted)
  const ORDER = ["created_at", "event_type", "event_category", "outcome", "user_id", "tenant_id",
    "resource_type", "resource_id", "description", "ip_address", "user_agent", "request_id",
    "event_id", "id"];
  const TAIL_MS = 3000;
  const RELATED_WINDOW_MS = 3600 * 1000;
  const params = new URLSearchParams(location.search);
  body.dataset.address = location.pathname + location.search;

  function make(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try {
        const problem = await response.json();
        message = problem.message || problem.error || message;
      } catch (_) { /* not JSON: keep the status */ }
      throw new Error(message);
    }
    return response.json();
  }

  function filterQuery() {
    const query = new URLSearchParams();
    for (const name of FILTERS) {
      const value = params.get(name);
      if (value) query.set(name, value);
    }
    return query;
  }

  function say(text, isError) {
    const status = document.getElementById("status");
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function shortTime(iso) {
    return iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "");
  }

  function row(item) {
    const tr = make("tr", null, { "data-id": String(item.id) });
    const when = make("td");
    when.appendChild(make("a", shortTime(item.created_at), { href: prefix + "/events/" + item.event_id }));
    tr.appendChild(when);
    tr.appendChild(make("td", item.event_type, { class: "category-" + item.event_category }));
    tr.appendChild(make("td", item.outcome, { class: "outcome-" + item.outcome }));
    tr.appendChild(make("td", item.user_id || ""));
    const resource = [item.resource_type, item.resource_id].filter(Boolean).join("/");
    tr.appendChild(make("td", resource));
    const text = item.description || "";
    tr.appendChild(make("td", text.length > 120 ? text.slice(0, 119) + "…" : text));
    return tr;
  }

  async function showList() {
    document.getElementById("list-view").hidden = false;
    const form = document.getElementById("filters");
    for (const name of FILTERS) {
      const field = form.elements.namedItem(name);
      const value = params.get(name);
      if (!field || !value) continue;
      if (field.tagName === "SELECT") {
        for (const option of field.options) option.toggleAttribute("selected", option.value === value);
      } else {
        field.setAttribute("value", value);  // the attribute: what the form shows and resets to
      }
    }
    const base = filterQuery();
    if (window.matchMedia("(max-width: 640px)").matches && ![...base.keys()].length) {
      document.getElementById("filter-panel").removeAttribute("open");  // a phone shows the rows first
    }
    document.getElementById("download-csv").href = api + "/export?" + new URLSearchParams([...base, ["format", "csv"]]);
    document.getElementById("download-jsonl").href = api + "/export?" + new URLSearchParams([...base, ["format", "jsonl"]]);
    const newest = document.getElementById("newest");
    newest.href = "?" + base;
    newest.hidden = !params.get("cursor");
    getJSON(api + "/event-types").then((types) => {
      const list = document.getElementById("event-types");
      for (const type of types.items) list.appendChild(make("option", null, { value: type.name }));
    }).catch(() => { /* the filter still takes any name */ });
    const query = new URLSearchParams(base);
    query.set("limit", String(PAGE));
    if (params.get("cursor")) query.set("cursor", params.get("cursor"));
    const tbody = document.querySelector("#events tbody");
    const next = document.getElementById("next-page");
    try {
      const page = await getJSON(api + "?" + query);
      tbody.replaceChildren(...page.items.map(row));
      say(page.items.length ? page.items.length + (page.items.length === 1 ? " event" : " events") +
        (page.next_cursor ? ", more on the next page" : "") : "No events match these filters.");
      if (page.next_cursor) {
        next.href = "?" + new URLSearchParams([...base, ["cursor", page.next_cursor]]);
        next.hidden = false;
      } else {
        next.hidden = true;
      }
    } catch (error) {
      say("Could not load events: " + error.message, true);
      next.hidden = true;
    }
    setUpTail(base, tbody);
    body.dataset.rows = String(tbody.children.length);
    body.dataset.state = "ready";
  }

  function setUpTail(base, tbody) {
    const box = document.getElementById("live-tail");
    box.disabled = Boolean(params.get("cursor"));  // only the newest page grows
    let timer = null;
    async function poll() {
      const query = new URLSearchParams(base);
      query.set("limit", String(PAGE));
      try {
        const page = await getJSON(api + "?" + query);
        const top = Number((tbody.firstElementChild || { dataset: { id: "0" } }).dataset.id);
        const fresh = page.items.filter((item) => item.id > top);
        for (const item of fresh.reverse()) tbody.insertBefore(row(item), tbody.firstElementChild);
        while (tbody.children.length > PAGE * 4) tbody.removeChild(tbody.lastElementChild);
        if (fresh.length) say(fresh.length + " new at " + new Date().toISOString().slice(11, 19) + " UTC");
      } catch (error) {
        say("Live tail paused: " + error.message, true);
      }
    }
    box.addEventListener("change", () => {
      if (box.checked) { poll(); timer = setInterval(poll, TAIL_MS); } else { clearInterval(timer); }
    });
  }

  async function showDetail(eventId) {
    document.getElementById("detail-view").hidden = false;
    const fields = document.getElementById("fields");
    try {
      const item = await getJSON(api + "/" + encodeURIComponent(eventId));
      document.title = item.event_type + " · Audit log";
      document.getElementById("detail-title").textContent = item.event_type;
      const names = [...ORDER, ...Object.keys(item).filter((n) => !ORDER.includes(n))];
      for (const name of names) {
        if (name === "metadata" || !(name in item)) continue;
        const value = item[name];
        fields.appendChild(make("dt", name));
        fields.appendChild(make("dd", value === null ? "—" : value));
      }
      document.getElementById("metadata").textContent =
        item.metadata === null ? "(none)" : JSON.stringify(item.metadata, null, 2);
      await Promise.all([showSeal(eventId), showRelated(item)]);
    } catch (error) {
      document.getElementById("detail-title").textContent = "Event not found";
      fields.appendChild(make("dd", error.message));
    }
    body.dataset.state = "ready";
  }

  async function showSeal(eventId) {
    const seal = document.getElementById("seal");
    try {
      const result = await getJSON(api + "/" + encodeURIComponent(eventId) + "/seal");
      seal.classList.add("seal-" + result.status);
      const words = {
        verified: "Sealed and verified (seal " + result.seal + ", " + result.signature + ")",
        unsealed: "Not sealed yet",
        broken: "BROKEN: " + (result.problems || []).join("; "),
      };
      seal.textContent = (words[result.status] || result.status) + " ";
      if (result.status !== "unsealed") {
        seal.appendChild(make("a", "proof", { href: api + "/" + encodeURIComponent(eventId) + "/proof" }));
      }
    } catch (error) {
      seal.textContent = "Seal status unavailable: " + error.message;
    }
  }

  async function showRelated(item) {
    const list = document.getElementById("related");
    if (!item.request_id) { list.appendChild(make("li", "(no request id)")); return; }
    // within an hour either side: request_id has no index of its own (it would slow the drain),
    // and the time range makes this an index range scan at any table size
    const at = Date.parse(item.created_at);
    const query = new URLSearchParams({
      request_id: item.request_id,
      since: new Date(at - RELATED_WINDOW_MS).toISOString(),
      until: new Date(at + RELATED_WINDOW_MS).toISOString(),
      limit: "50",
    });
    try {
      const page = await getJSON(api + "?" + query);
      const others = page.items.filter((other) => other.event_id !== item.event_id);
      if (!others.length) list.appendChild(make("li", "(none)"));
      for (const other of others) {
        const li = make("li");
        li.appendChild(make("a", shortTime(other.created_at) + " " + other.event_type,
          { href: prefix + "/events/" + other.event_id }));
        list.appendChild(li);
      }
    } catch (error) {
      list.appendChild(make("li", "Could not load: " + error.message));
    }
  }

  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
    if (event.key === "/" && !typing) {
      event.preventDefault();
      document.querySelector("#filters input")?.focus();
    }
  });

  if (body.dataset.eventId) showDetail(body.dataset.eventId); else showList();
})();
