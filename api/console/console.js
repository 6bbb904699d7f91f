/* console.js - the Herald web console (docs/web.md).
 *
 * One page, four views chosen by the URL fragment: #/nodes, #/node/NAME,
 * #/sessions, #/metrics. Everything comes from Herald's public HTTP
 * surface, with the bearer token the user typed (kept in sessionStorage):
 * the REST API (/v1, docs/rest-api.md), a node's event stream read with
 * fetch() so that the Authorization header can be sent (EventSource
 * cannot), and /metrics in the Prometheus text format, charted with the
 * vendored uPlot (vendor/README.md). No framework, no build step; DOM text
 * is always set with textContent, never parsed as HTML. */
"use strict";

(function () {
  const TOKEN_KEY = "herald.console.token";
  const NODES_PAGE = 25;
  const ITEMS_PAGE = 10;
  const SESSIONS_PAGE = 50;
  const NODES_REFRESH_MS = 5000;
  const METRICS_POLL_MS = 3000;
  const METRICS_WINDOW_S = 300;
  const LIVE_MAX = 200;
  const PARALLEL = 4;

  const $ = (id) => document.getElementById(id);
  let token = null;
  let view = null;

  /* ---- small DOM helpers ---- */

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function setText(id, text) { $(id).textContent = text; }

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  function fmtRate(r) {
    if (r === null || r === undefined || !isFinite(r)) return "";
    return r < 10 ? r.toFixed(2) : r.toFixed(1);
  }

  function payloadText(item) {
    if ("json" in item) return JSON.stringify(item.json, null, 2);
    if ("xml" in item) return item.xml;
    return "(no payload)";
  }

  function nodeHref(name) { return "#/node/" + encodeURIComponent(name); }
  function nodePath(name, ...rest) {
    return "/v1/nodes/" + encodeURIComponent(name) + rest.map((r) => "/" + r).join("");
  }

  /* ---- messages ---- */

  /* Shown first, then filled: a screen reader announces the alert's new
   * text once the region is in the accessibility tree. */
  function showError(text) {
    $("error").hidden = false;
    setText("error-text", text);
  }

  function clearError() {
    $("error").hidden = true;
    setText("error-text", "");
  }

  function say(text) { setText("status", text); }

  /* ---- the API ---- */

  class ApiError extends Error {
    constructor(status, title, detail) {
      super(detail || title);
      this.status = status;
      this.title = title;
      this.detail = detail;
    }
  }

  /* An error answer in words: the problem's detail (RFC 9457), then the
   * status and its title. */
  async function apiError(res) {
    let title = res.statusText || "", detail = "";
    try {
      const text = await res.text();
      const ctype = (res.headers.get("Content-Type") || "").split(";")[0].trim();
      if (ctype.endsWith("json")) {
        const p = JSON.parse(text);
        title = p.title || title;
        detail = p.detail || "";
      } else {
        detail = text.trim().slice(0, 300);
      }
    } catch (e) {
      /* the status alone says enough */
    }
    return new ApiError(res.status, title, detail);
  }

  function describe(err) {
    if (err instanceof ApiError) {
      if (err.status === 0) return err.detail;
      const head = "HTTP " + err.status + (err.title ? " " + err.title : "");
      return err.detail && err.detail !== err.title ? err.detail + " (" + head + ")" : head;
    }
    return err && err.message ? err.message : String(err);
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = body;
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "", "Herald did not answer (" + (e.message || "network error") + ")");
    }
    if (!res.ok) throw await apiError(res);
    if (res.status === 204) return null;
    try {
      return await res.json();
    } catch (e) {
      throw new ApiError(res.status, "", "the answer is not JSON");
    }
  }

  /* Reports a failed request; a refused token ends the login. */
  function failed(what, err) {
    if (err instanceof ApiError && err.status === 401 && token) {
      logout("The token was refused: " + describe(err));
      return;
    }
    showError(what + ": " + describe(err));
  }

  /* fn over items, at most PARALLEL at once; results in order. */
  async function mapLimit(items, fn) {
    const out = new Array(items.length);
    let next = 0;
    async function worker() {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]);
      }
    }
    await Promise.all(Array.from({ length: Math.min(PARALLEL, items.length) }, worker));
    return out;
  }

  /* ---- login ---- */

  async function login(ev) {
    ev.preventDefault();
    const value = $("token").value.trim();
    if (!value) {
      showError("Give a token to log in.");
      $("token").focus();
      return;
    }
    token = value;
    $("login").disabled = true;
    try {
      await api("GET", "/v1/nodes?max=1");
      clearError();
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 0)) {
        token = null;
        showError("Login failed: " + describe(err));
        $("token").focus();
        return;
      }
      /* A valid token without 'read' still logs in; the views say what
       * it may not do. */
      showError("Logged in, but listing nodes failed: " + describe(err));
    } finally {
      $("login").disabled = false;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token").value = "";
    say("Logged in.");
    startMetrics();
    if (!location.hash || location.hash === "#/login") location.hash = "#/nodes";
    else route(true);
  }

  function logout(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    leaveView();
    stopMetrics();
    $("nodes-body").replaceChildren();
    $("items-body").replaceChildren();
    $("live-items").replaceChildren();
    $("sessions-body").replaceChildren();
    if (message) showError(message);
    else clearError();
    say(message ? "" : "Logged out.");
    /* The next login starts at the nodes (no hashchange: nothing reloads). */
    if (location.hash) history.replaceState(null, "", "#/login");
    show("login");
    $("token").focus();
  }

  /* ---- views ---- */

  function show(name) {
    view = name;
    document.body.dataset.view = name;
    for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== "view-" + name;
    $("nav").hidden = name === "login";
    for (const [link, v] of [["nav-nodes", "nodes"], ["nav-sessions", "sessions"],
                             ["nav-metrics", "metrics"]]) {
      if (v === name || (v === "nodes" && name === "node")) $(link).setAttribute("aria-current", "page");
      else $(link).removeAttribute("aria-current");
    }
  }

  /* Stops whatever the current view keeps running. */
  function leaveView() {
    stopNodesRefresh();
    stopLive();
  }

  function focusHeading(name) {
    const h = $(name + "-title");
    if (h) h.focus();
  }

  function route(moveFocus) {
    if (!token) {
      leaveView();
      show("login");
      return;
    }
    const h = location.hash;
    leaveView();
    say("");
    if (h.startsWith("#/node/")) {
      let name;
      try {
        name = decodeURIComponent(h.slice(7));
      } catch (e) {
        showError("The address names no valid node.");
        location.hash = "#/nodes";
        return;
      }
      show("node");
      openNode(name);
    } else if (h === "#/sessions") {
      show("sessions");
      loadSessions(null);
    } else if (h === "#/metrics") {
      show("metrics");
      renderMetrics();
    } else {
      show("nodes");
      loadNodes();
      startNodesRefresh();
    }
    if (moveFocus) focusHeading(view);
  }

  /* ---- nodes ---- */

  const nodes = {
    cursor: null,       /* "after" of the page shown (null: the first) */
    next: null,
    pageNo: 1,
    seen: new Map(),    /* name -> {seq, t}: the last read, for the rate */
    loading: false,
    timer: null,
  };

  /* Subscriber count (owners only) and newest seq of one node. */
  async function nodeStats(n) {
    const [subs, newest] = await Promise.allSettled([
      api("GET", nodePath(n.node, "subscriptions")),
      api("GET", nodePath(n.node, "items") + "?max=1"),
    ]);
    const now = performance.now();
    const out = { subscribers: null, subsWhy: "", rate: null, rateWhy: "measuring" };
    if (subs.status === "fulfilled") {
      out.subscribers = subs.value.subscriptions.filter((s) => s.state === "subscribed").length;
    } else {
      out.subsWhy = subs.reason.status === 403 ? "owners only" : "unknown";
    }
    if (newest.status === "fulfilled") {
      const seq = newest.value.items.length ? newest.value.items[0].seq : 0;
      const prev = nodes.seen.get(n.node);
      if (prev && now > prev.t && seq >= prev.seq) out.rate = (seq - prev.seq) / ((now - prev.t) / 1000);
      nodes.seen.set(n.node, { seq, t: now });
    } else {
      out.rateWhy = newest.reason.status === 403 ? "not readable" : "unknown";
    }
    return out;
  }

  function nodeRow(n) {
    const link = el("a", { href: nodeHref(n.node), "data-node-link": n.node }, n.node);
    return el("tr", { "data-node": n.node },
      el("th", { scope: "row" }, link),
      el("td", { "data-col": "type" }),
      el("td", { class: "num", "data-col": "items" }),
      el("td", { class: "num", "data-col": "subscribers" }),
      el("td", { class: "num", "data-col": "rate" }));
  }

  /* Rows are updated in place (keyed by data-node), so a refresh never
   * takes the keyboard focus away from a link in the table. */
  function renderNodes(list, stats) {
    const body = $("nodes-body");
    const rows = new Map();
    for (const tr of body.rows) rows.set(tr.dataset.node, tr);
    const wanted = [];
    list.forEach((n, i) => {
      const tr = rows.get(n.node) || nodeRow(n);
      rows.delete(n.node);
      const s = stats[i];
      const cell = (c) => tr.querySelector('[data-col="' + c + '"]');
      cell("type").textContent = n.type;
      cell("items").textContent = String(n.items);
      cell("subscribers").textContent = s.subscribers === null ? s.subsWhy : String(s.subscribers);
      cell("rate").textContent = s.rate === null ? s.rateWhy : fmtRate(s.rate) + "/s";
      wanted.push(tr);
    });
    for (const tr of rows.values()) tr.remove();
    wanted.forEach((tr, i) => {
      if (body.rows[i] !== tr) body.insertBefore(tr, body.rows[i] || null);
    });
    $("nodes-empty").hidden = list.length > 0;
    $("nodes-next").disabled = nodes.next === null;
    $("nodes-first").disabled = nodes.cursor === null;
    setText("nodes-page", "Page " + nodes.pageNo + (list.length ? ", " + list.length + " nodes" : ""));
  }

  async function loadNodes() {
    if (nodes.loading) return;
    nodes.loading = true;
    try {
      const q = "?max=" + NODES_PAGE + (nodes.cursor !== null ? "&after=" + encodeURIComponent(nodes.cursor) : "");
      const page = await api("GET", "/v1/nodes" + q);
      const stats = await mapLimit(page.nodes, nodeStats);
      if (view !== "nodes") return;
      nodes.next = page.next;
      renderNodes(page.nodes, stats);
      $("nodes").dataset.loaded = String(Date.now());
    } catch (err) {
      failed("Listing nodes", err);
    } finally {
      nodes.loading = false;
    }
  }

  function startNodesRefresh() {
    stopNodesRefresh();
    nodes.timer = setInterval(loadNodes, NODES_REFRESH_MS);
  }

  function stopNodesRefresh() {
    if (nodes.timer) clearInterval(nodes.timer);
    nodes.timer = null;
  }

  /* ---- one node: information, history, live items, publishing ---- */

  const node = {
    name: null,
    cursor: null,       /* "before" of the history page shown (null: newest) */
    newer: [],          /* cursors of the pages before it */
    next: null,
    reloadTimer: null,
    live: null,         /* the event stream: {ctrl, lastId, retryMs, paused, timer} */
  };

  function openNode(name) {
    node.name = name;
    node.cursor = null;
    node.newer = [];
    node.next = null;
    node.live = { ctrl: null, lastId: null, retryMs: 2000, paused: false, timer: null };
    setText("node-title", "Node " + name);
    $("view-node").dataset.node = name;
    $("node-info").replaceChildren();
    $("items-body").replaceChildren();
    $("live-items").replaceChildren();
    $("live-toggle").textContent = "Pause";
    loadNodeInfo();
    loadItems();
    startLive();
  }

  async function loadNodeInfo() {
    const name = node.name;
    try {
      const n = await api("GET", nodePath(name));
      if (node.name !== name) return;
      const dl = $("node-info");
      const add = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, v));
      dl.replaceChildren();
      add("Type", n.type);
      add("Items stored", String(n.items));
      add("Created", fmtTime(n.created));
      add("Your affiliation", n.affiliation);
      const c = n.config || {};
      if ("access_model" in c) add("Access model", String(c.access_model));
      if ("publish_model" in c) add("Publish model", String(c.publish_model));
      if ("max_items" in c) add("Max items", String(c.max_items));
    } catch (err) {
      failed("Reading node " + name, err);
    }
  }

  function itemRow(it) {
    return el("tr", { "data-item-id": it.id, "data-seq": String(it.seq) },
      el("td", { class: "num" }, String(it.seq)),
      el("td", { class: "mono" }, it.id),
      el("td", {}, fmtTime(it.published)),
      el("td", {}, it.publisher),
      el("td", {}, el("pre", {}, payloadText(it))));
  }

  async function loadItems() {
    const name = node.name;
    try {
      const q = "?max=" + ITEMS_PAGE + (node.cursor !== null ? "&before=" + encodeURIComponent(node.cursor) : "");
      const page = await api("GET", nodePath(name, "items") + q);
      if (node.name !== name) return;
      node.next = page.next;
      $("items-body").replaceChildren(...page.items.map(itemRow));
      $("items-empty").hidden = page.items.length > 0;
      $("items-older").disabled = node.next === null;
      $("items-newer").disabled = node.newer.length === 0;
      $("items-newest").disabled = node.newer.length === 0;
      setText("items-page", "Page " + (node.newer.length + 1) + (page.items.length
        ? ", seq " + page.items[0].seq + " to " + page.items[page.items.length - 1].seq : ""));
      $("items").dataset.loaded = String(Date.now());
    } catch (err) {
      failed("Reading the items of " + name, err);
    }
  }

  function itemsOlder() {
    if (node.next === null) return;
    node.newer.push(node.cursor);
    node.cursor = node.next;
    loadItems();
  }

  function itemsNewer() {
    if (!node.newer.length) return;
    node.cursor = node.newer.pop();
    loadItems();
  }

  function itemsNewest() {
    node.newer = [];
    node.cursor = null;
    loadItems();
  }

  /* The newest page follows the live stream (at most once a second). */
  function historyFollows() {
    if (node.cursor !== null || node.reloadTimer) return;
    node.reloadTimer = setTimeout(() => {
      node.reloadTimer = null;
      if (view === "node" && node.cursor === null) loadItems();
    }, 1000);
  }

  async function publish(ev) {
    ev.preventDefault();
    const name = node.name;
    const area = $("publish-payload");
    const text = area.value;
    try {
      JSON.parse(text);
      area.removeAttribute("aria-invalid");
    } catch (e) {
      area.setAttribute("aria-invalid", "true");
      showError("The payload is not valid JSON: " + e.message);
      area.focus();
      return;
    }
    const id = $("publish-id").value.trim();
    $("publish").disabled = true;
    try {
      const res = id
        ? await api("PUT", nodePath(name, "items", encodeURIComponent(id)), text)
        : await api("POST", nodePath(name, "items"), text);
      clearError();
      say("Published item " + res.id + " to " + res.node + ".");
      $("publish-form").dataset.lastId = res.id;
      historyFollows();
    } catch (err) {
      failed("Publishing to " + name, err);
    } finally {
      $("publish").disabled = false;
    }
  }

  /* -- the event stream, read with fetch() -- */

  function setLiveState(state, text) {
    const s = $("live-state");
    s.dataset.state = state;
    s.textContent = text;
  }

  function stopLive() {
    const live = node.live;
    if (!live) return;
    if (live.timer) clearTimeout(live.timer);
    live.timer = null;
    if (live.ctrl) live.ctrl.abort();
    live.ctrl = null;
  }

  function liveEntry(attrs, meta, body) {
    const list = $("live-items");
    const li = el("li", attrs, el("div", { class: "meta" }, meta), body ? el("pre", {}, body) : null);
    list.prepend(li);
    while (list.children.length > LIVE_MAX) list.lastElementChild.remove();
  }

  /* The node's summary (items stored) follows the stream, read again at
   * most once a second however fast items arrive. */
  let infoTimer = null;
  function nodeInfoFollows() {
    if (infoTimer) return;
    infoTimer = setTimeout(() => {
      infoTimer = null;
      loadNodeInfo();
    }, 1000);
  }

  function onLiveEvent(type, data, live) {
    let d = null;
    try {
      d = data ? JSON.parse(data) : null;
    } catch (e) {
      d = null;
    }
    const now = new Date().toLocaleTimeString();
    if (type === "item" && d) {
      liveEntry({ "data-event": "item", "data-item-id": d.id, "data-seq": String(d.seq) },
        "seq " + d.seq + " · " + d.id + " · " + d.publisher + " · " + fmtTime(d.published),
        payloadText(d));
      historyFollows();
      nodeInfoFollows();
    } else if (type === "retract") {
      liveEntry({ "data-event": "retract", "data-item-id": d && d.id }, now + " · item " +
        (d && d.id) + " retracted");
      historyFollows();
      nodeInfoFollows();
    } else if (type === "purge") {
      liveEntry({ "data-event": "purge" }, now + " · every item was purged");
      historyFollows();
      nodeInfoFollows();
    } else if (type === "delete") {
      liveEntry({ "data-event": "delete" }, now + " · the node was deleted");
      live.ended = true;
    }
  }

  /* Parses the text/event-stream format (WHATWG HTML, "Server-sent
   * events"): lines end in CRLF, LF or CR; fields data, event, id, retry;
   * an empty line dispatches. */
  function sseParser(live, onEvent) {
    let pending = "";
    let data = [], type = "", id = null;
    function line(l) {
      if (l === "") {
        if (id !== null) live.lastId = id;
        if (data.length) onEvent(type || "message", data.join("\n"));
        data = [];
        type = "";
        id = null;
        return;
      }
      if (l[0] === ":") return;
      const c = l.indexOf(":");
      const field = c < 0 ? l : l.slice(0, c);
      let value = c < 0 ? "" : l.slice(c + 1);
      if (value[0] === " ") value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "event") type = value;
      else if (field === "id" && !value.includes("\0")) id = value;
      else if (field === "retry" && /^\d+$/.test(value)) live.retryMs = Number(value);
    }
    return function feed(chunk) {
      pending += chunk;
      for (;;) {
        const m = /\r\n|\n|\r/.exec(pending);
        if (!m || (m[0] === "\r" && m.index === pending.length - 1)) break;
        line(pending.slice(0, m.index));
        pending = pending.slice(m.index + m[0].length);
      }
    };
  }

  async function startLive() {
    const live = node.live;
    const name = node.name;
    if (!live || live.paused) return;
    stopLive();
    const ctrl = new AbortController();
    live.ctrl = ctrl;
    live.ended = false;
    setLiveState("connecting", "connecting…");
    const headers = { Authorization: "Bearer " + token, Accept: "text/event-stream" };
    /* After the first connection, resume where the stream left off: the
     * server sends the stored items missed meanwhile first. */
    if (live.lastId !== null) headers["Last-Event-ID"] = live.lastId;
    let res;
    try {
      res = await fetch(nodePath(name, "events"), { headers, signal: ctrl.signal, cache: "no-store" });
    } catch (e) {
      if (ctrl.signal.aborted) return;
      retryLive(live, "Herald did not answer");
      return;
    }
    if (!res.ok) {
      const err = await apiError(res);
      setLiveState("stopped", "stopped");
      failed("The live stream of " + name, err);
      if (err.status >= 500) retryLive(live, describe(err));
      return;
    }
    setLiveState("live", "live: new items appear below");
    const feed = sseParser(live, (type, data) => onLiveEvent(type, data, live));
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        feed(decoder.decode(value, { stream: true }));
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    if (ctrl.signal.aborted) return;
    if (live.ended) {
      setLiveState("stopped", "stopped: the node was deleted");
      return;
    }
    retryLive(live, "the stream ended");
  }

  function retryLive(live, why) {
    if (live !== node.live || live.paused) return;
    setLiveState("reconnecting", why + "; reconnecting in " + Math.round(live.retryMs / 1000) + " s");
    live.timer = setTimeout(() => {
      live.timer = null;
      if (live === node.live && view === "node") startLive();
    }, live.retryMs);
  }

  function toggleLive() {
    const live = node.live;
    if (!live) return;
    live.paused = !live.paused;
    $("live-toggle").textContent = live.paused ? "Resume" : "Pause";
    if (live.paused) {
      stopLive();
      setLiveState("paused", "paused (resuming catches up on what was missed)");
    } else {
      startLive();
    }
  }

  /* ---- sessions ---- */

  const sessions = { cursor: null, next: null };

  async function loadSessions(cursor) {
    try {
      const q = "?max=" + SESSIONS_PAGE + (cursor !== null ? "&after=" + encodeURIComponent(cursor) : "");
      const page = await api("GET", "/v1/sessions" + q);
      if (view !== "sessions") return;
      sessions.cursor = cursor;
      sessions.next = page.next;
      $("sessions-body").replaceChildren(...page.sessions.map((s) =>
        el("tr", { "data-jid": s.jid },
          el("td", { class: "mono" }, s.jid),
          el("td", {}, s.transport),
          el("td", { class: "mono" }, s.peer === null ? "(detached, awaiting resumption)" : s.peer),
          el("td", {}, fmtTime(s.since)))));
      $("sessions-empty").hidden = page.sessions.length > 0;
      $("sessions-next").disabled = page.next === null;
      $("sessions-first").disabled = cursor === null;
      setText("sessions-total", page.total + (page.total === 1 ? " session" : " sessions"));
      $("sessions").dataset.loaded = String(Date.now());
    } catch (err) {
      failed("Listing sessions", err);
    }
  }

  /* ---- metrics ---- */

  const SERIES_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
  const CHARTS = [
    { id: "chart-pubsub", title: "Pubsub, per second", rate: true, series: [
      ["herald_pubsub_publishes_total", "publishes"],
      ["herald_pubsub_notifications_total", "notifications"]] },
    { id: "chart-stanzas", title: "XMPP stanzas, per second", rate: true, series: [
      ["herald_stanzas_in_total", "in"], ["herald_stanzas_out_total", "out"]] },
    { id: "chart-http", title: "HTTP responses, per second", rate: true, series: [
      ['herald_http_requests_total{code="2xx"}', "2xx"],
      ['herald_http_requests_total{code="3xx"}', "3xx"],
      ['herald_http_requests_total{code="4xx"}', "4xx"],
      ['herald_http_requests_total{code="5xx"}', "5xx"]] },
    { id: "chart-logins", title: "Logins, per second", rate: true, series: [
      ["herald_logins_total", "logins"], ["herald_login_failures_total", "failures"]] },
    { id: "chart-conns", title: "Connections and sessions", rate: false, series: [
      ["herald_connections", "connections"], ["herald_sessions", "sessions"],
      ['herald_sessions{transport="websocket"}', "websocket"],
      ['herald_sessions{transport="bosh"}', "bosh"]] },
  ];

  const metrics = {
    samples: [],        /* {t: unix seconds, values: Map key -> number} */
    types: new Map(),   /* metric name -> counter, gauge, histogram ... */
    timer: null,
    charts: new Map(),  /* chart id -> uPlot */
    failing: false,
  };

  function promNumber(s) {
    if (s === "+Inf") return Infinity;
    if (s === "-Inf") return -Infinity;
    if (s === "NaN") return NaN;
    return Number(s);
  }

  /* The Prometheus text format (0.0.4): "# TYPE name kind" lines and
   * samples "name{labels} value [timestamp]"; the key of a sample is its
   * name and labels as written. */
  function parseProm(text) {
    const values = new Map();
    for (const raw of text.split("\n")) {
      const l = raw.trim();
      if (!l) continue;
      if (l.startsWith("#")) {
        const m = /^#\s+TYPE\s+(\S+)\s+(\S+)/.exec(l);
        if (m) metrics.types.set(m[1], m[2]);
        continue;
      }
      const m = /^([A-Za-z_:][A-Za-z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)/.exec(l);
      if (m) values.set(m[1], promNumber(m[2]));
    }
    return values;
  }

  function typeOf(key) {
    const name = key.replace(/\{.*$/, "");
    if (metrics.types.has(name)) return metrics.types.get(name);
    const base = name.replace(/_(bucket|sum|count)$/, "");
    return metrics.types.get(base) || "untyped";
  }

  /* A sample's value: key as written, or a bare metric name standing for
   * the sum of its labelled samples (herald_sessions is per transport). */
  function valueOf(values, key) {
    if (values.has(key)) return values.get(key);
    if (key.includes("{")) return undefined;
    const prefix = key + "{";
    let sum;
    for (const [k, v] of values) if (k.startsWith(prefix)) sum = (sum || 0) + v;
    return sum;
  }

  /* Per-second rate between samples i-1 and i; null across a reset. */
  function rateAt(key, i) {
    const a = metrics.samples[i - 1], b = metrics.samples[i];
    if (!a || !b) return null;
    const va = valueOf(a.values, key), vb = valueOf(b.values, key);
    if (va === undefined || vb === undefined) return null;
    const dv = vb - va, dt = b.t - a.t;
    return dt > 0 && dv >= 0 ? dv / dt : null;
  }

  async function pollMetrics() {
    try {
      const res = await fetch("/metrics", { cache: "no-store" });
      if (!res.ok) throw await apiError(res);
      const values = parseProm(await res.text());
      const t = Date.now() / 1000;
      metrics.samples.push({ t, values });
      while (metrics.samples.length && metrics.samples[0].t < t - METRICS_WINDOW_S) metrics.samples.shift();
      if (metrics.failing) say("Metrics are read again.");
      metrics.failing = false;
      if (view === "metrics") renderMetrics();
    } catch (err) {
      if (!metrics.failing && view === "metrics") {
        showError("Reading /metrics: " + describe(err instanceof ApiError ? err
          : new ApiError(0, "", "Herald did not answer (" + err.message + ")")));
      }
      metrics.failing = true;
    }
  }

  function startMetrics() {
    if (metrics.timer) return;
    pollMetrics();
    metrics.timer = setInterval(pollMetrics, METRICS_POLL_MS);
  }

  function stopMetrics() {
    if (metrics.timer) clearInterval(metrics.timer);
    metrics.timer = null;
    metrics.samples = [];
    for (const u of metrics.charts.values()) u.destroy();
    metrics.charts.clear();
    $("charts").replaceChildren();
  }

  function chartData(spec) {
    const s = metrics.samples;
    const first = spec.rate ? 1 : 0;
    const xs = [];
    const ys = spec.series.map(() => []);
    for (let i = first; i < s.length; i++) {
      xs.push(s[i].t);
      spec.series.forEach(([key], j) => {
        const v = spec.rate ? rateAt(key, i) : valueOf(s[i].values, key);
        ys[j].push(v === undefined || !isFinite(v) ? null : v);
      });
    }
    return [xs, ...ys];
  }

  function chartWidth(box) {
    return Math.max(240, box.clientWidth - 16);
  }

  function makeChart(spec) {
    const css = getComputedStyle(document.documentElement);
    const fg = css.getPropertyValue("--fg").trim() || "#000";
    const line = css.getPropertyValue("--line").trim() || "#ccc";
    const box = el("figure", { class: "chart", id: spec.id },
      el("h3", {}, spec.title));
    $("charts").append(box);
    const axis = { stroke: fg, grid: { stroke: line, width: 1 }, ticks: { stroke: line, width: 1 } };
    const opts = {
      width: chartWidth(box),
      height: 200,
      series: [{}].concat(spec.series.map(([, label], j) => ({
        label, stroke: SERIES_COLORS[j % SERIES_COLORS.length], width: 2, spanGaps: false,
        value: (u, v) => (v === null || v === undefined ? "–" : spec.rate ? fmtRate(v) + "/s" : String(v)),
      }))),
      axes: [axis, Object.assign({}, axis, { size: 60 })],
      scales: { y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
      legend: { live: false },
      cursor: { show: false },
    };
    const u = new window.uPlot(opts, chartData(spec), box);
    box.dataset.chart = spec.rate ? "rate" : "gauge";
    metrics.charts.set(spec.id, u);
  }

  function renderCharts() {
    if (typeof window.uPlot !== "function") {
      if (!$("charts").childElementCount)
        $("charts").append(el("p", { class: "muted" }, "The charting library did not load; the table has the numbers."));
      return;
    }
    for (const spec of CHARTS) {
      const u = metrics.charts.get(spec.id);
      if (u) u.setData(chartData(spec));
      else makeChart(spec);
    }
  }

  function renderMetricsTable() {
    const s = metrics.samples;
    const body = $("metrics-body");
    if (!s.length) return;
    const last = s[s.length - 1];
    const rows = new Map();
    for (const tr of body.rows) rows.set(tr.dataset.metric, tr);
    for (const [key, v] of last.values) {
      if (/_bucket\{/.test(key)) continue;
      let tr = rows.get(key);
      if (!tr) {
        tr = el("tr", { "data-metric": key },
          el("th", { scope: "row", class: "mono" }, key),
          el("td", {}, typeOf(key)),
          el("td", { class: "num" }),
          el("td", { class: "num" }));
        body.append(tr);
      }
      rows.delete(key);
      tr.cells[2].textContent = Number.isInteger(v) ? String(v) : v.toPrecision(6);
      const kind = typeOf(key);
      const r = kind === "counter" || /_(sum|count)$/.test(key.replace(/\{.*$/, "")) ? rateAt(key, s.length - 1) : null;
      tr.cells[3].textContent = r === null ? "" : fmtRate(r);
    }
    for (const tr of rows.values()) tr.remove();
    $("metrics").dataset.loaded = String(Date.now());
  }

  function renderMetrics() {
    renderCharts();
    renderMetricsTable();
  }

  function resizeCharts() {
    for (const [id, u] of metrics.charts) {
      const box = $(id);
      if (box && box.clientWidth) u.setSize({ width: chartWidth(box), height: 200 });
    }
  }

  /* ---- wiring ---- */

  function init() {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", () => logout(null));
    $("error-dismiss").addEventListener("click", () => {
      clearError();
      focusHeading(view);
    });
    $("nodes-refresh").addEventListener("click", loadNodes);
    $("nodes-first").addEventListener("click", () => {
      nodes.cursor = null;
      nodes.pageNo = 1;
      loadNodes();
    });
    $("nodes-next").addEventListener("click", () => {
      if (nodes.next === null) return;
      nodes.cursor = nodes.next;
      nodes.pageNo++;
      loadNodes();
    });
    $("publish-form").addEventListener("submit", publish);
    $("items-older").addEventListener("click", itemsOlder);
    $("items-newer").addEventListener("click", itemsNewer);
    $("items-newest").addEventListener("click", itemsNewest);
    $("live-toggle").addEventListener("click", toggleLive);
    $("live-clear").addEventListener("click", () => $("live-items").replaceChildren());
    $("sessions-refresh").addEventListener("click", () => loadSessions(sessions.cursor));
    $("sessions-first").addEventListener("click", () => loadSessions(null));
    $("sessions-next").addEventListener("click", () => {
      if (sessions.next !== null) loadSessions(sessions.next);
    });
    /* The skip link moves the focus without changing the address, whose
     * fragment names the view. */
    document.querySelector(".skip").addEventListener("click", (ev) => {
      ev.preventDefault();
      $("main").focus();
    });
    window.addEventListener("hashchange", () => {
      if (location.hash === "" || location.hash.startsWith("#/")) route(true);
    });
    window.addEventListener("resize", resizeCharts);

    token = sessionStorage.getItem(TOKEN_KEY);
    if (token) {
      startMetrics();
      route(false);
    } else {
      show("login");
    }
    document.body.dataset.ready = "true";
  }

  init();
})();
