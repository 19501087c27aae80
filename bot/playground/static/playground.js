/* forge playground: pick a user and a channel, type /forge …, and see forge answer in Block Kit.
   Every action goes to /playground/act, which signs it and posts it to forge's /slack/events. */
"use strict";

const $ = (id) => document.getElementById(id);
const state = { users: [], channels: [], csrf: "", me: null, channel: null, version: -1, items: [], view: null, poll: null,
  shortcuts: [], home: null, onHome: false };
const suggested = {}; // external_select options forge offered, by "block_id/action_id"
const drafts = {}; // modal input values typed so far, by "block_id/action_id"

// ---------- talking to the playground server ----------

async function getJson(path, signal) {
  const response = await fetch(path, { cache: "no-store", signal });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function act(kind, fields) {
  const response = await fetch("act", {
    method: "POST", headers: { "Content-Type": "application/json", "X-Forge-CSRF": state.csrf },
    body: JSON.stringify({ kind, user: state.me, ...fields }),
  });
  const answer = await response.json();
  showStatus(answer.ok ? "" : answer.error || `forge answered HTTP ${answer.status}`);
  return answer;
}

function showStatus(text) { $("status").textContent = text; }

async function pollForever() {
  for (;;) {
    const controller = new AbortController();
    state.poll = controller;
    const query = new URLSearchParams({ user: state.me, channel: state.channel, since: state.version });
    try {
      const data = await getJson(`state?${query}`, controller.signal);
      if (data.version !== state.version) applyState(data);
    } catch (error) {
      if (error.name !== "AbortError") { showStatus(`lost the playground server: ${error.message}`); await sleep(1000); }
    }
  }
}

function restartPoll() { state.version = -1; if (state.poll) state.poll.abort(); }
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function watchReadiness() {
  for (;;) {
    let up = false;
    try { up = (await fetch("/readyz", { cache: "no-store" })).ok; } catch (_) { up = false; }
    const badge = $("ready");
    badge.textContent = up ? "state store up" : "state store down: read-only";
    badge.className = `badge ${up ? "up" : "down"}`;
    await sleep(5000);
  }
}

// ---------- who and where ----------

function userById(id) { return state.users.find((u) => u.id === id); }
function userName(id) { const user = userById(id); return user ? user.name : id; }
function channelName(id) { const ch = state.channels.find((c) => c.id === id); return ch ? ch.name : id; }

function describeGrant(user) {
  const via = user.via ? ` (member of ${user.via})` : "";
  return `${user.role}${user.approver ? " · approver" : ""}${via}`;
}

function renderPeople() {
  const select = $("who");
  select.replaceChildren(...state.users.map((u) => new Option(`@${u.name} — ${describeGrant(u)}`, u.id)));
  select.value = state.me;
  const me = userById(state.me);
  $("grant").textContent = me ? `${me.id}: ${describeGrant(me)}` : "";
}

function renderChannels() {
  $("channels").replaceChildren(...state.channels.map((c) => {
    const link = el("button", { className: `channel-link${c.id === state.channel ? " active" : ""}`, type: "button" },
      `# ${c.name}`);
    link.dataset.channel = c.id;
    link.addEventListener("click", () => { state.channel = c.id; state.onHome = false; renderChannels(); restartPoll(); });
    return link;
  }));
  $("home-link").className = `channel-link${state.onHome ? " active" : ""}`;
  if (state.onHome) for (const link of $("channels").children) link.classList.remove("active");
  $("channel-name").textContent = state.onHome ? "🏠 Home" : `# ${channelName(state.channel)}`;
  $("hint").textContent = state.onHome ? "  what needs you, kept current by forge" : "type /forge help, or @forge health";
  $("composer").hidden = state.onHome;
}

async function openHome() {
  state.onHome = true;
  renderChannels();
  renderMain();
  await act("home", {});
}

function renderShortcuts() {
  const menu = $("shortcuts");
  const global = state.shortcuts.filter((s) => s.type === "global");
  menu.replaceChildren(new Option("⚡ Shortcuts", ""), ...global.map((s) => new Option(s.name, s.callback_id)));
  menu.onchange = () => {
    const callbackId = menu.value;
    menu.value = "";
    if (callbackId) act("shortcut", { callback_id: callbackId });
  };
}

function messageMenu(item) {
  const onMessage = state.shortcuts.filter((s) => s.type === "message");
  if (!onMessage.length || item.kind !== "message") return null;
  const menu = el("select", { className: "msg-more", title: "More actions" }, new Option("⋯", ""),
    ...onMessage.map((s) => new Option(s.name, s.callback_id)));
  menu.addEventListener("change", () => {
    const callbackId = menu.value;
    menu.value = "";
    if (callbackId) act("shortcut", { callback_id: callbackId, channel: state.channel, ts: item.ts });
  });
  return menu;
}

// ---------- small DOM helpers ----------

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

// ---------- Slack's mrkdwn, escaped first, then formatted ----------

function inline(text) {
  return text
    .replace(/`([^`\n]+)`/g, (_, code) => `<code>${code}</code>`)
    .replace(/(^|[\s(])\*([^*\n]+)\*/g, "$1<strong>$2</strong>")
    .replace(/(^|[\s(])_([^_\n]+)_/g, "$1<em>$2</em>")
    .replace(/(^|[\s(])~([^~\n]+)~/g, "$1<del>$2</del>");
}

function links(text) {
  return text.replace(/&lt;([^&]*?(?:&amp;[^&]*?)*)&gt;/g, (whole, inner) => {
    const [target, label] = inner.split("|");
    if (target.startsWith("@")) return `<span class="mention">@${escapeHtml(userName(target.slice(1)))}</span>`;
    if (target.startsWith("#")) return `<span class="mention">#${escapeHtml(label || channelName(target.slice(1)))}</span>`;
    if (target.startsWith("!date^")) return dateText(target, label);
    if (target.startsWith("!")) return `<span class="mention">@${escapeHtml(target.slice(1))}</span>`;
    if (/^(https?|mailto):/.test(target)) return `<a href="${target}" target="_blank" rel="noopener">${label || target}</a>`;
    return whole;
  });
}

function dateText(target, fallback) {
  const seconds = Number(target.split("^")[1]);
  return Number.isFinite(seconds) ? new Date(seconds * 1000).toLocaleString() : (fallback || "");
}

function mrkdwn(text) {
  const parts = escapeHtml(text || "").split("```");
  return parts.map((part, i) => {
    if (i % 2 === 1) return `<pre>${part.replace(/^\n/, "")}</pre>`;
    const lines = links(part).split("\n").map((line) =>
      line.startsWith("&gt; ") ? `<blockquote>${inline(line.slice(5))}</blockquote>` : inline(line));
    return lines.join("<br>").replace(/<\/blockquote><br>/g, "</blockquote>");
  }).join("").replace(/&amp;(lt|gt|amp);/g, "&$1;"); // Slack's own escapes show as the characters
}

function textObject(obj) {
  if (!obj) return el("span");
  const span = el("span");
  if (obj.type === "mrkdwn") span.innerHTML = mrkdwn(obj.text);
  else span.textContent = obj.text;
  return span;
}

// ---------- Block Kit ----------

function renderBlocks(blocks, ctx) {
  return el("div", { className: "blocks" }, ...(blocks || []).map((block) => renderBlock(block, ctx)));
}

function renderBlock(block, ctx) {
  const wrap = el("div", { className: `block ${block.type}` });
  switch (block.type) {
    case "section":
      if (block.text) wrap.append(textObject(block.text));
      if (block.fields) wrap.append(el("div", { className: "fields" }, ...block.fields.map(textObject)));
      if (block.accessory) wrap.append(el("div", {}, renderElement(block.accessory, block, ctx)));
      break;
    case "context":
      wrap.append(...(block.elements || []).map((e) => (e.type === "image"
        ? el("img", { src: e.image_url, alt: e.alt_text || "" }) : textObject(e))));
      break;
    case "divider": return el("hr", { className: "divider" });
    case "header": wrap.append(textObject(block.text)); break;
    case "image": {
      const file = block.slack_file && block.slack_file.id;
      const src = file ? `files/${encodeURIComponent(file)}` : block.image_url;
      wrap.append(el("img", { src, alt: block.alt_text || "", className: "picture" }));
      break;
    }
    case "actions":
      wrap.append(...(block.elements || []).map((e) => renderElement(e, block, ctx)));
      break;
    case "input": return renderInput(block, ctx);
    case "table": return renderTable(block);
    case "rich_text": wrap.textContent = richText(block); break;
    default: wrap.append(el("pre", {}, JSON.stringify(block, null, 2)));
  }
  return wrap;
}

function renderTable(block) {
  const cellText = (cell) => (cell.type === "raw_text" ? cell.text : richText(cell));
  const rows = (block.rows || []).map((row, i) =>
    el("tr", {}, ...row.map((cell) => el(i === 0 ? "th" : "td", {}, cellText(cell)))));
  return el("table", { className: "block table" }, el("tbody", {}, ...rows));
}

function richText(node) {
  if (!node || typeof node !== "object") return "";
  if (node.type === "user") return `@${userName(node.user_id)}`;
  if (node.type === "channel") return `#${channelName(node.channel_id)}`;
  if (node.type === "date") return node.fallback || "";
  if (node.type === "link") return node.text || node.url || "";
  if (typeof node.text === "string") return node.text;
  return (node.elements || []).map(richText).join(node.type === "rich_text" ? "\n" : "");
}

function options(element) {
  return (element.options || []).map((o) => new Option(o.text.text, o.value));
}

function renderElement(element, block, ctx) {
  const action = { action_id: element.action_id, block_id: block.block_id, type: element.type };
  if (element.type === "button") {
    const button = el("button", { type: "button", className: `btn ${element.style || ""}` }, element.text.text);
    button.addEventListener("click", () => { button.disabled = true; ctx.onAction({ ...action, value: element.value, text: element.text }); });
    return button;
  }
  if (element.type === "users_select" || element.type === "static_select") {
    const select = el("select", { className: "btn" });
    const placeholder = element.placeholder ? element.placeholder.text : "Choose…";
    select.append(new Option(placeholder, ""));
    if (element.type === "users_select") select.append(...state.users.map((u) => new Option(`@${u.name}`, u.id)));
    else select.append(...options(element));
    select.addEventListener("change", () => {
      if (!select.value) return;
      const picked = element.type === "users_select" ? { selected_user: select.value }
        : { selected_option: (element.options || []).find((o) => o.value === select.value) };
      ctx.onAction({ ...action, ...picked });
    });
    return select;
  }
  return el("code", {}, `[${element.type}]`);
}

// ---------- modals ----------

function renderInput(block, ctx) {
  const element = block.element || {};
  const key = `${block.block_id}/${element.action_id}`;
  const id = `in-${block.block_id}-${element.action_id}`;
  let field;
  if (element.type === "plain_text_input") {
    field = el(element.multiline ? "textarea" : "input", { id, name: key });
    if (element.placeholder) field.placeholder = element.placeholder.text;
    field.value = drafts[key] ?? element.initial_value ?? "";
  } else if (element.type === "static_select" || element.type === "users_select") {
    field = el("select", { id, name: key }, new Option(element.placeholder ? element.placeholder.text : "Choose…", ""));
    if (element.type === "users_select") field.append(...state.users.map((u) => new Option(`@${u.name}`, u.id)));
    else field.append(...options(element));
    field.value = drafts[key] ?? (element.initial_option ? element.initial_option.value : element.initial_user || "");
  } else if (element.type === "external_select") {
    field = externalSelect(element, key, id);
  } else if (element.type === "conversations_select") {
    field = el("select", { id, name: key }, new Option("Choose a channel…", ""),
      ...state.channels.map((c) => new Option(`# ${c.name}`, c.id)));
    field.value = drafts[key] ?? "";
  } else {
    field = el("code", {}, `[${element.type}]`);
  }
  field.addEventListener("input", () => { drafts[key] = field.value; });
  const error = ctx.errors && ctx.errors[block.block_id];
  return el("div", { className: "block input-block" },
    el("label", { htmlFor: id }, block.label ? block.label.text : ""), field,
    block.hint ? el("div", { className: "hint" }, block.hint.text) : null,
    error ? el("div", { className: "error" }, error) : null);
}

function externalSelect(element, key, id) {
  // Slack asks forge for the options (block_suggestion) as the person types
  const select = el("select", { id, name: key }, new Option(element.placeholder ? element.placeholder.text : "Choose…", ""));
  const filter = el("input", { className: "filter", placeholder: "type to filter", type: "search" });
  const load = async () => {
    const answer = await act("suggest", { action_id: element.action_id, value: filter.value });
    const offered = (answer.body && answer.body.options) || [];
    suggested[key] = offered;
    const keep = drafts[key];
    select.replaceChildren(select.options[0], ...offered.map((o) => new Option(o.text.text, o.value)));
    select.value = offered.some((o) => o.value === keep) ? keep : "";
  };
  let timer = null;
  filter.addEventListener("input", (event) => { event.stopPropagation(); clearTimeout(timer); timer = setTimeout(load, 200); });
  load();
  const wrap = el("span", { className: "external" }, filter, select);
  select.addEventListener("input", () => { drafts[key] = select.value; });
  return Object.defineProperty(wrap, "value", { get: () => select.value, set: (v) => { select.value = v; } });
}

function inputValues(view) {
  const values = {};
  for (const block of view.blocks || []) {
    if (block.type !== "input" || !block.element) continue;
    const element = block.element;
    const raw = drafts[`${block.block_id}/${element.action_id}`] ?? "";
    let value;
    if (element.type === "static_select") {
      const option = (element.options || []).find((o) => o.value === raw) || null;
      value = { type: element.type, selected_option: option };
    } else if (element.type === "external_select") {
      const option = (suggested[`${block.block_id}/${element.action_id}`] || []).find((o) => o.value === raw) || null;
      value = { type: element.type, selected_option: option };
    } else if (element.type === "conversations_select") {
      value = { type: element.type, selected_conversation: raw || null };
    } else if (element.type === "users_select") value = { type: element.type, selected_user: raw || null };
    else value = { type: element.type, value: raw || null };
    values[block.block_id] = { [element.action_id]: value };
  }
  return values;
}

function clearDrafts() { for (const key of Object.keys(drafts)) delete drafts[key]; }

function renderModal(view, errors = {}) {
  const overlay = $("modal");
  if (!view) { overlay.hidden = true; state.view = null; clearDrafts(); return; }
  const fresh = !state.view || state.view.id !== view.id;
  if (fresh) clearDrafts();
  if (!fresh && state.view.hash === view.hash && !Object.keys(errors).length) return;
  state.view = view;
  for (const block of view.blocks || []) {
    const initial = block.element && (block.element.initial_value || (block.element.initial_option || {}).value);
    if (fresh && block.type === "input" && initial) drafts[`${block.block_id}/${block.element.action_id}`] = initial;
  }
  $("modal-title").textContent = view.title ? view.title.text : "";
  $("modal-close").textContent = view.close ? view.close.text : "Cancel";
  $("modal-submit").textContent = view.submit ? view.submit.text : "Submit";
  $("modal-submit").hidden = !view.submit;
  $("modal-body").replaceChildren(renderBlocks(view.blocks, { errors, onAction: () => showStatus("buttons in dialogs are not simulated") }));
  overlay.hidden = false;
  if (fresh) { const first = $("modal-body").querySelector("input, textarea, select"); if (first) first.focus(); }
}

async function submitModal(event) {
  event.preventDefault();
  const view = state.view;
  if (!view) return;
  $("modal-submit").disabled = true;
  const answer = await act("submit", { view_id: view.id, values: inputValues(view) });
  $("modal-submit").disabled = false;
  if (answer.errors && Object.keys(answer.errors).length) { state.view = null; renderModal(view, answer.errors); }
}

async function closeModal() {
  if (state.view) await act("close", { view_id: state.view.id });
  renderModal(null);
}

// ---------- the channel ----------

function messageNode(item) {
  const bot = Boolean(item.bot_id) || item.kind === "ephemeral" || item.kind === "file";
  const who = bot ? "forge" : userName(item.user);
  const head = el("div", { className: "msg-head" }, who, bot ? el("span", { className: "app" }, "APP") : null, messageMenu(item),
    item.kind === "ephemeral" ? el("span", { className: "muted" }, "  Only visible to you") : null,
    item.edited ? el("span", { className: "edited" }, " (edited)") : null);
  const body = el("div", { className: "msg-body" }, head);
  if (item.kind === "file") {
    const href = `files/${encodeURIComponent(item.id)}`;
    body.append(el("div", { className: "file" }, `📄 ${item.title || item.name} · ${item.size} bytes `,
      el("a", { href, download: item.name }, "Download")));
    if (item.image) body.append(el("img", { src: href, alt: item.title || item.name, className: "picture" }));
  } else if (item.blocks && item.blocks.length) {
    body.append(renderBlocks(item.blocks, { onAction: (action) => clickIn(item, action) }));
  } else {
    body.append(el("div", { innerHTML: mrkdwn(item.text) }));
  }
  const node = el("div", { className: `msg ${item.kind}` },
    el("div", { className: `avatar ${bot ? "bot" : ""}` }, who.slice(0, 1).toUpperCase()), body);
  node.dataset.ts = item.ts;
  return node;
}

function clickIn(item, action) {
  act("click", { channel: state.channel, ts: item.ts, thread_ts: item.thread_ts || null,
    ephemeral: item.kind === "ephemeral", action });
}

function renderMessages(items) {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const roots = items.filter((i) => !i.thread_ts || i.thread_ts === i.ts);
  const nodes = roots.map((root) => {
    const replies = items.filter((i) => i.thread_ts === root.ts && i !== root);
    const node = messageNode(root);
    if (replies.length) node.querySelector(".msg-body").append(el("div", { className: "thread" }, ...replies.map(messageNode)));
    return node;
  });
  const orphans = items.filter((i) => i.thread_ts && i.thread_ts !== i.ts && !roots.some((r) => r.ts === i.thread_ts));
  box.replaceChildren(...nodes, ...orphans.map(messageNode));
  if (!items.length) box.append(el("p", { className: "muted" }, "Nothing here yet. Try /forge help."));
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function applyState(data) {
  state.version = data.version;
  state.items = data.items;
  if (data.channels.length !== state.channels.length) { state.channels = data.channels; renderChannels(); }
  state.home = data.home;
  renderMain();
  renderModal(data.view);
}

function renderMain() {
  if (!state.onHome) { renderMessages(state.items); return; }
  const home = state.home;
  $("messages").replaceChildren(home
    ? el("div", { className: "home" }, renderBlocks(home.blocks, { onAction: (action) => act("home_click", { action }) }))
    : el("p", { className: "muted" }, "Opening your Home tab…"));
}

async function send(event) {
  event.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  const answer = await act("slash", { channel: state.channel, text });
  if (!answer.ok && answer.body) showStatus(`forge answered HTTP ${answer.status}: ${JSON.stringify(answer.body)}`);
}

// ---------- start ----------

async function start() {
  const session = await getJson("session");
  Object.assign(state, { users: session.users, channels: session.channels, csrf: session.csrf, shortcuts: session.shortcuts || [] });
  const params = new URLSearchParams(location.search);
  const operator = session.users.find((u) => ["operator", "admin"].includes(u.role)) || session.users[0];
  state.me = params.get("user") || (operator && operator.id);
  state.channel = params.get("channel") || session.channels[0].id;
  $("env").textContent = session.environment;
  $("note").textContent = session.note;
  if (session.demo) startDemo(session.demo); else $("tour").hidden = true;
  $("who").addEventListener("change", (e) => {
    state.me = e.target.value; renderPeople(); renderModal(null); restartPoll();
    if (state.onHome) openHome();
  });
  $("home-link").addEventListener("click", openHome);
  renderShortcuts();
  $("composer").addEventListener("submit", send);
  $("dialog").addEventListener("submit", submitModal);
  $("modal-close").addEventListener("click", closeModal);
  renderPeople();
  renderChannels();
  if (params.get("home")) openHome();
  watchReadiness();
  pollForever();
}

start().catch((error) => showStatus(`could not start: ${error.message}`));
