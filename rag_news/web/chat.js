// rag-news chat page: plain JavaScript, no build step, talks only to the server that served it.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const log = $("log"), form = $("ask"), question = $("question"), send = $("send"), tokenInput = $("token");
  let conversation = null;  // the id of the conversation on screen (null: the next question starts one)
  const MAX_RETRIES = 5;

  tokenInput.value = localStorage.getItem("rag-news-token") || "";
  tokenInput.addEventListener("change", () => { localStorage.setItem("rag-news-token", tokenInput.value.trim()); refresh(); });

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    const t = tokenInput.value.trim();
    if (t) h["Authorization"] = "Bearer " + t;
    return h;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function message(role, text) {
    const box = el("article", "msg " + role);
    box.append(el("div", "who", role === "user" ? "You" : role === "search" ? "Search" : "rag-news"), el("div", "text", text || ""));
    log.append(box);
    box.scrollIntoView({block: "end"});
    return box;
  }

  async function errorText(r) {
    try { const j = await r.json(); return (j.error && j.error.message) || r.statusText; } catch (e) { return r.statusText; }
  }

  function sourceList(sources, cited) {
    const ol = el("ol", "sources");
    ol.setAttribute("aria-label", "Sources");
    for (const s of sources) {
      const li = el("li", (cited || []).includes(s.n) ? "cited" : "");
      li.value = s.n;
      const a = el("a", "", s.title || s.url);
      a.href = s.url; a.target = "_blank"; a.rel = "noopener noreferrer";
      const meta = [s.outlet, (s.published || "").slice(0, 10)].filter(Boolean).join(" · ");
      li.append(a);
      if (meta) li.append(el("span", "meta", " — " + meta));
      ol.append(li);
    }
    return ol;
  }

  function finish(box, a) {
    const text = box.querySelector(".text");
    if (a.raw_answer) {  // the checks withheld what was streamed
      box.classList.add("withdrawn");
      text.textContent = a.raw_answer;
      box.prepend(el("span", "badge", "Withdrawn"));
      box.append(el("div", "why", "Withdrawn: " + (a.note || "the checks withheld this answer") + ". " + a.answer));
    } else if (a.abstained) {
      box.classList.add("abstained");
      text.textContent = a.answer;
      box.prepend(el("span", "badge", "No answer in the sources"));
      if (a.note) box.append(el("div", "why", a.note));
    } else {
      text.textContent = a.answer;
    }
    if (a.standalone_question && a.standalone_question !== a.question) {
      box.append(el("div", "who", "Understood as: " + a.standalone_question));
    }
    if (a.sources && a.sources.length) box.append(sourceList(a.sources, a.cited));
  }

  function toolLine(box, call) {  // research mode: each search the reader runs, before the answer
    let list = box.querySelector("ul.tools");
    if (!list) { list = el("ul", "tools"); list.setAttribute("aria-label", "Searches made"); box.querySelector(".text").before(list); }
    const args = call.arguments || {};
    const what = call.name === "search_news" ? "Searching: “" + (args.query || "") + "”"
      : call.name === "ask_news" ? "Asking: “" + (args.question || "") + "”" : "Opening passage [" + args.n + "]";
    const found = call.error ? " — error: " + call.error : " — " + (call.passages || []).length + " new passage(s)";
    list.append(el("li", call.error ? "tool error" : "tool", what + found));
  }

  function filters() {
    const out = {};
    if ($("since").value) out.since = $("since").value;
    if ($("until").value) out.until = $("until").value;
    const outlets = $("outlets").value.split(",").map((s) => s.trim()).filter(Boolean);
    if (outlets.length) out.outlets = outlets;
    const k = parseInt($("k").value, 10);
    if (k >= 1 && k <= 20) out.k = k;
    return out;
  }

  async function withRetry(call, box) {  // 429: say busy, wait Retry-After, try again with the queue ticket
    let ticket = null;  // the server's Queue-Ticket: a retry that sends it back keeps its place in the line
    for (let attempt = 0; ; attempt++) {
      const r = await call(ticket ? {"Queue-Ticket": ticket} : {});
      if (r.status !== 429 || attempt >= MAX_RETRIES) return r;
      ticket = r.headers.get("Queue-Ticket") || ticket;
      const wait = Math.min(30, parseInt(r.headers.get("Retry-After") || "2", 10) || 2);
      let note = box.querySelector(".busy");
      if (!note) { note = el("div", "busy"); box.append(note); }
      note.setAttribute("role", "status");
      note.textContent = "Server busy — retrying in " + wait + " s…";
      await new Promise((res) => setTimeout(res, wait * 1000));
    }
  }

  async function readEvents(response, onEvent) {  // Server-Sent Events from a fetch body
    const reader = response.body.getReader(), decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true}).replace(/\r\n/g, "\n");
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        let event = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (data) onEvent(event, data);
      }
    }
  }

  async function ask(q) {
    message("user", q);
    const box = message("assistant", "");
    const text = box.querySelector(".text");
    if (tokenRequired && !tokenInput.value.trim()) {
      box.classList.add("error");
      text.textContent = "Error: this server needs a bearer token: enter it under “Access token”.";
      return;
    }
    box.setAttribute("aria-busy", "true");
    const body = Object.assign({question: q, stream: true, conversation_id: conversation || "new"}, filters());
    if ($("research").value) body.research = $("research").value;
    const r = await withRetry((t) => fetch("/ask", {method: "POST", body: JSON.stringify(body),
      headers: headers({"Content-Type": "application/json", "Accept": "text/event-stream", ...t})}), box);
    const busy = box.querySelector(".busy"); if (busy) busy.remove();
    if (!r.ok) { box.classList.add("error"); text.textContent = "Error: " + await errorText(r); box.removeAttribute("aria-busy"); return; }
    await readEvents(r, (event, data) => {
      const d = JSON.parse(data);
      if (event === "token") text.textContent += d.text;
      else if (event === "tool") toolLine(box, d);
      else if (event === "retraction") box.dataset.retracted = d.reason;
      else if (event === "answer") { if (d.conversation_id) conversation = d.conversation_id; finish(box, d); }
      else if (event === "error") { box.classList.add("error"); text.textContent = "Error: " + d.error.message; }
    });
    box.removeAttribute("aria-busy");
    loadRecent();
  }

  async function search(q) {
    message("user", q);
    const box = message("search", "");
    const f = filters(), params = new URLSearchParams({q: q, k: String(f.k || 8)});
    if (f.since) params.set("since", f.since);
    if (f.until) params.set("until", f.until);
    for (const o of f.outlets || []) params.append("outlet", o);
    const r = await withRetry((t) => fetch("/search?" + params, {headers: headers(t)}), box);
    const busy = box.querySelector(".busy"); if (busy) busy.remove();
    if (!r.ok) { box.classList.add("error"); box.querySelector(".text").textContent = "Error: " + await errorText(r); return; }
    const j = await r.json();
    box.querySelector(".text").textContent = j.passages.length ? j.passages.length + " passages found" : "No passage matched.";
    box.append(sourceList(j.passages, []));
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = question.value.trim();
    if (!q) return;
    question.value = "";
    send.disabled = true;
    try {
      if (form.elements.mode.value === "search") await search(q); else await ask(q);
    } catch (e) {
      message("assistant error", "Error: the server could not be reached (" + e.message + ")");
    } finally {
      send.disabled = false;
      question.focus();
    }
  });
  question.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); form.requestSubmit(); }
  });

  $("new").addEventListener("click", () => { conversation = null; log.replaceChildren(); markCurrent(); question.focus(); });

  function markCurrent() {
    for (const b of document.querySelectorAll("#recent button.open")) b.setAttribute("aria-current", String(b.dataset.id === conversation));
  }

  async function openConversation(id) {
    const r = await fetch("/conversations/" + encodeURIComponent(id), {headers: headers()});
    if (!r.ok) return;
    const j = await r.json();
    conversation = id; log.replaceChildren();
    for (const m of j.messages) {
      if (m.role === "user") { message("user", m.content); continue; }
      const box = message("assistant", m.content);
      finish(box, Object.assign({answer: m.content}, m.extra || {}));
    }
    markCurrent();
  }

  let tokenRequired = false;  // from /health: the API answers 401 until a token is given

  async function loadRecent() {
    const list = $("recent");
    if (tokenRequired && !tokenInput.value.trim()) {
      list.replaceChildren(el("li", "", "Enter the access token to see them."));
      return;
    }
    let r;
    try { r = await fetch("/conversations", {headers: headers()}); } catch (e) { return; }
    if (!r.ok) { list.replaceChildren(el("li", "", r.status === 401 ? "Enter the access token to see them." : "")); return; }
    const j = await r.json();
    list.replaceChildren();
    for (const c of j.conversations) {
      const li = el("li"), open = el("button", "open", c.title), del = el("button", "delete", "×");
      open.type = "button"; open.dataset.id = c.id; open.addEventListener("click", () => openConversation(c.id));
      del.type = "button"; del.setAttribute("aria-label", "Delete conversation: " + c.title);
      del.addEventListener("click", async () => {
        await fetch("/conversations/" + encodeURIComponent(c.id), {method: "DELETE", headers: headers()});
        if (conversation === c.id) { conversation = null; log.replaceChildren(); }
        loadRecent();
      });
      li.append(open, del); list.append(li);
    }
    markCurrent();
  }

  async function loadStatus() {
    try {
      const h = await (await fetch("/health")).json();
      const i = h.index || {};
      tokenRequired = !!h.token_required;
      if (tokenRequired && !tokenInput.value.trim()) $("token").closest("details").open = true;
      $("status").textContent = "Index: " + (i.articles ?? "?") + " articles · last pass " + (i.pass ?? "—")
        + " · model " + (h.model || "loads on first question");
    } catch (e) { $("status").textContent = "Index: server unreachable"; }
  }

  async function refresh() { await loadStatus(); loadRecent(); }
  refresh();
  question.focus();
})();
