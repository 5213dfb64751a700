// firesift's page: wires the chat, search, claim check, trends, ticker and time control to the
// API. Plain ES modules, no build step; DOM building lives in render.js, HTTP in api.js.

import { ApiError, getJSON, openLive, openWatch, postJSON, setApiKey, streamChat } from "./api.js";
import {
  claimsList,
  AnswerWriter,
  el,
  emptyBox,
  errorBox,
  evidenceHeader,
  feedRow,
  fmtNum,
  fmtTime,
  postCard,
  postRow,
  sourcesList,
  storyItem,
  threadView,
  verdictView,
  warningsList,
} from "./render.js";

const $ = (id) => document.getElementById(id);
const TICKER_MAX = 50;

const state = {
  messages: [], // the conversation sent with every question (follow-ups keep context)
  asOf: null, // ISO instant, or null for live
  closeLive: null,
  chatAbort: null,
  connected: false,
  stats: null,
};

function message(err) {
  if (err instanceof ApiError && err.status === 401) askForKey();
  return err instanceof ApiError ? err.message : `Something went wrong: ${err.message || err}`;
}

// ---- API key (needed only when the server is reached off loopback) -----------------------

function askForKey() {
  const form = $("key-form");
  if (form.hidden) {
    form.hidden = false;
    $("api-key").focus();
  }
}

function initKey() {
  try {
    setApiKey(localStorage.getItem("firesift-key"));
  } catch {
    // No storage: the key is asked for again next visit.
  }
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("api-key").value.trim();
    setApiKey(key);
    try {
      localStorage.setItem("firesift-key", key);
    } catch {
      // Kept for this visit only.
    }
    $("key-form").hidden = true;
    $("api-key").value = "";
    connectLive();
    loadTrends();
  });
}

// ---- status line -------------------------------------------------------------------------

function setStatus(kind, text) {
  $("status").dataset.state = kind;
  $("status-text").textContent = text;
}

function liveStatus() {
  if (state.asOf) return setStatus("paused", `viewing ${fmtTime(state.asOf)}`);
  if (!state.connected) return setStatus("down", "reconnecting…");
  const posts = state.stats?.posts;
  setStatus("live", typeof posts === "number" ? `live · ${fmtNum(posts)} posts` : "live");
}

// ---- theme -------------------------------------------------------------------------------

const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");

function isDark() {
  const chosen = document.documentElement.dataset.theme;
  return chosen ? chosen === "dark" : darkQuery.matches;
}

function applyTheme(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  $("theme").setAttribute("aria-pressed", String(isDark()));
}

function initTheme() {
  let saved = null;
  try {
    saved = localStorage.getItem("firesift-theme");
  } catch {
    // Storage may be disabled; the toggle still works for this visit.
  }
  applyTheme(saved === "dark" || saved === "light" ? saved : null);
  darkQuery.addEventListener("change", () => applyTheme(null));
  $("theme").addEventListener("click", () => {
    const theme = isDark() ? "light" : "dark";
    applyTheme(theme);
    try {
      localStorage.setItem("firesift-theme", theme);
    } catch {
      // Not persisted; fine.
    }
  });
}

// ---- the post card dialog ----------------------------------------------------------------

let cardToken = 0;

async function openCard(raw) {
  const dialog = $("card");
  const body = $("card-body");
  const token = ++cardToken;
  body.replaceChildren(postCard(raw));
  if (!dialog.open) dialog.showModal();
  $("card-close").focus();
  if (!raw.source || raw.id === undefined || raw.id === null) return;
  const path = `/api/posts/${encodeURIComponent(raw.source)}/${encodeURIComponent(raw.id)}`;
  try {
    const data = await getJSON(path, { as_of: state.asOf });
    if (token !== cardToken) return;
    const self = (data.thread || []).find((p) => String(p.id) === String(raw.id));
    const post = { ...data.post, stance: raw.stance ?? self?.stance ?? data.post?.stance };
    body.replaceChildren(postCard(post), threadView(data, raw.id, openCard));
  } catch (err) {
    if (token !== cardToken) return;
    body.append(el("p", { class: "hint" }, `Full post unavailable: ${message(err)}`));
  }
}

function initCard() {
  const dialog = $("card");
  $("card-close").addEventListener("click", () => dialog.close());
  // A click on the backdrop (outside the card's box) closes it; Escape is native to <dialog>.
  dialog.addEventListener("click", (e) => {
    if (e.target !== dialog) return;
    const r = dialog.getBoundingClientRect();
    const inside = e.clientX >= r.left && e.clientX <= r.right && e.clientY >= r.top && e.clientY <= r.bottom;
    if (!inside) dialog.close();
  });
}

// ---- chat --------------------------------------------------------------------------------

function addTurn(node) {
  const conv = $("conversation");
  conv.querySelector(":scope > .empty")?.remove();
  conv.append(node);
  node.scrollIntoView({ block: "nearest", behavior: "smooth" });
  return node;
}

async function ask(question) {
  const sendButton = $("send");
  addTurn(el("div", { class: "turn user" }, el("p", {}, question)));

  const answer = el("p", { class: "answer", "aria-live": "polite", "aria-busy": "true" });
  const head = el("div", { class: "answer-head" }, el("p", { class: "evidence pending" }, "Searching the stream…"));
  const after = el("div", { class: "answer-after" });
  const turn = addTurn(el("article", { class: "turn assistant streaming", "aria-label": "Answer" }, head, answer, after));

  let results = [];
  const writer = new AnswerWriter(answer, (n) => results[n - 1] && openCard(results[n - 1]));
  const messages = [...state.messages, { role: "user", content: question }];
  const abort = new AbortController();
  state.chatAbort = abort;
  sendButton.textContent = "Stop";

  let text = "";
  let final = null;
  try {
    const body = { messages, ...(state.asOf ? { as_of: state.asOf } : {}) };
    for await (const chunk of streamChat(body, abort.signal)) {
      const piece = chunk.choices?.[0]?.delta?.content;
      if (piece) {
        text += piece;
        writer.write(piece);
      }
      if ("search_results" in chunk || "citations" in chunk || "evidence" in chunk) {
        final = { ...final, ...chunk };
      }
    }
    writer.end();
    if (!text) writer.write("(The server sent an empty answer.)");
    final = final || {};
    results = final.search_results || (final.citations || []).map((url) => ({ url }));
    writer.resolve(results);
    head.replaceChildren(evidenceHeader(final));
    if (final.grounded === false) {
      turn.classList.add("ungrounded");
      head.append(el("p", { class: "badge ungrounded-badge" }, "Nothing in the stream answers this"));
    }
    after.replaceChildren(
      warningsList(final.warnings) || "",
      claimsList(final.claims, (n) => results[n - 1] && openCard(results[n - 1])) || "",
      results.length ? sourcesList(results, (n) => openCard(results[n - 1])) : "",
    );
    state.messages = [...messages, { role: "assistant", content: text }];
  } catch (err) {
    writer.end();
    head.replaceChildren();
    if (err.name === "AbortError") after.replaceChildren(el("p", { class: "hint" }, "Stopped."));
    else after.replaceChildren(errorBox(message(err)));
  } finally {
    answer.setAttribute("aria-busy", "false");
    turn.classList.remove("streaming");
    state.chatAbort = null;
    sendButton.textContent = "Ask";
  }
}

function initChat() {
  const form = $("ask");
  const box = $("question");
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (state.chatAbort) {
      // While an answer streams the button reads "Stop"; Enter or a story's Ask wait.
      if (e.submitter === $("send")) state.chatAbort.abort();
      return;
    }
    const question = box.value.trim();
    if (!question) return;
    box.value = "";
    ask(question);
  });
  $("new-chat").addEventListener("click", () => {
    state.chatAbort?.abort();
    state.messages = [];
    $("conversation").replaceChildren(emptyBox("New conversation. Ask away."));
    box.focus();
  });
}

// ---- search and claim check --------------------------------------------------------------

function initSearch() {
  $("search-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = $("search-q").value.trim();
    const out = $("search-results");
    if (!q) return;
    out.replaceChildren(el("p", { class: "hint" }, "Searching…"));
    try {
      const data = await getJSON("/api/search", { q, as_of: state.asOf, limit: 20 });
      const results = data.results || [];
      out.replaceChildren(
        results.length
          ? el("ol", { class: "results", "aria-label": `${results.length} posts` }, results.map((p) => el("li", {}, postCard(p))))
          : emptyBox(`No posts match “${q}”${state.asOf ? ` as of ${fmtTime(state.asOf)}` : ""}.`),
      );
    } catch (err) {
      out.replaceChildren(errorBox(message(err)));
    }
  });
}

function initCheck() {
  $("check-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const claim = $("claim").value.trim();
    const out = $("check-result");
    if (!claim) return;
    out.replaceChildren(el("p", { class: "hint" }, "Checking the stream…"));
    try {
      const result = await postJSON("/api/check", { claim, ...(state.asOf ? { as_of: state.asOf } : {}) });
      out.replaceChildren(verdictView(result, openCard));
    } catch (err) {
      out.replaceChildren(errorBox(message(err)));
    }
  });
}

// ---- watches: standing questions and their alerts ----------------------------------------

const NOTIFICATIONS_MAX = 50;
const watching = new Map(); // watch id -> function closing its event stream

function addNotification(event) {
  const first = (event.posts || [])[0];
  const what =
    event.kind === "verdict"
      ? `verdict ${event.previous || "none"} → ${event.verdict}`
      : event.kind === "story"
        ? `story: ${event.story?.title || ""}`
        : `${event.matches} new post${event.matches === 1 ? "" : "s"}`;
  const item = el(
    "li",
    { class: "notification", "data-event": event.id },
    el("span", { class: "notification-what" }, `${event.query} · ${what}`),
    " ",
    el("time", { datetime: event.at }, fmtTime(event.at, true)),
    first ? el("p", { class: "notification-post" }, `@${first.author?.handle || ""}: ${first.text}`) : null,
  );
  if (first) item.addEventListener("click", () => openCard(first));
  const list = $("notifications");
  list.prepend(item);
  while (list.children.length > NOTIFICATIONS_MAX) list.lastElementChild.remove();
}

function showWatch(watch) {
  if (watching.has(watch.id)) return;
  $("watch-list").append(
    el("li", { class: "watch", "data-watch": watch.id }, `${watch.kind}: ${watch.query || watch.claim}`),
  );
  watching.set(watch.id, openWatch(watch.id, addNotification));
}

async function loadWatches() {
  try {
    const { watches } = await getJSON("/api/watches");
    watches.forEach(showWatch);
  } catch (err) {
    $("notifications").replaceChildren(errorBox(message(err)));
  }
}

function initWatches() {
  $("watch-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const query = $("watch-q").value.trim();
    if (!query) return;
    try {
      showWatch(await postJSON("/api/watches", { query }));
      $("watch-q").value = "";
    } catch (err) {
      $("notifications").prepend(el("li", {}, errorBox(message(err))));
    }
  });
  loadWatches();
}

// ---- trends, ticker and the live stream --------------------------------------------------

function askAbout(story) {
  const terms = (story.terms || []).slice(0, 3).join(", ");
  $("question").value = terms ? `What is happening with ${terms}? Is it true?` : story.title;
  $("ask").requestSubmit();
}

function renderTrends(report) {
  const list = $("stories");
  const focusedId = list.contains(document.activeElement)
    ? document.activeElement.closest(".story")?.dataset.id
    : null;
  const stories = report.stories || [];
  $("trends-when").replaceChildren(report.as_of ? `as of ${fmtTime(report.as_of, true)}` : "");
  list.replaceChildren(...stories.map((s) => storyItem(s, askAbout)));
  if (!stories.length) {
    const newest = state.stats?.newest_post;
    const stale = !state.asOf && newest && Date.now() - new Date(newest).getTime() > 3_600_000;
    list.append(
      el(
        "li",
        { class: "empty" },
        state.asOf
          ? "Nothing was bursting at that moment."
          : "Nothing is bursting right now. Pick a past moment above to replay one.",
      ),
      ...(stale
        ? [
            el(
              "li",
              {},
              el(
                "button",
                { type: "button", class: "secondary small", onclick: () => setAsOf(newest) },
                `Go to the newest posts (${fmtTime(newest)})`,
              ),
            ),
          ]
        : []),
    );
  }
  const terms = (report.terms || []).slice(0, 12);
  $("terms").replaceChildren(
    ...(terms.length ? [el("span", { class: "hint" }, "Terms: ")] : []),
    ...terms.map((t) => el("span", { class: "term", title: `score ${t.score}, ${t.volume} posts, ${t.authors} accounts` }, t.term)),
  );
  if (focusedId) list.querySelector(`.story[data-id="${CSS.escape(focusedId)}"] button`)?.focus();
}

async function loadTrends() {
  try {
    renderTrends(await getJSON("/api/trends", { as_of: state.asOf, window: "1h", limit: 8 }));
  } catch (err) {
    $("stories").replaceChildren(el("li", {}, errorBox(message(err))));
    if (err.status === 0) setStatus("down", "server unreachable");
  }
}

function addTickerPost(post) {
  const list = $("ticker-list");
  list.querySelector(":scope > .empty")?.remove();
  list.prepend(postRow(post, openCard));
  while (list.children.length > TICKER_MAX) list.lastElementChild.remove();
}

function tickerNote(text) {
  $("ticker-list").replaceChildren(el("li", { class: "empty" }, text));
}

function connectLive() {
  state.closeLive?.();
  state.closeLive = null;
  if (state.asOf) {
    tickerNote(`Paused while viewing ${fmtTime(state.asOf)}. Press Live to resume.`);
    return liveStatus();
  }
  if (!$("ticker-list").querySelector(".row")) tickerNote("Waiting for posts…");
  state.closeLive = openLive($("ticker-q").value.trim(), {
    open() {
      state.connected = true;
      liveStatus();
    },
    error(err) {
      state.connected = false;
      liveStatus();
      if (err) {
        setStatus("down", "live stream unavailable");
        tickerNote(message(err));
      }
    },
    post: addTickerPost,
    trends: renderTrends,
    stats(stats) {
      state.stats = stats;
      liveStatus();
      renderFeeds(stats.sources || []);
    },
  });
}

// ---- live sources ------------------------------------------------------------------------

function renderFeeds(statuses) {
  $("feeds-list").replaceChildren(...statuses.map(feedRow));
}

async function loadFeeds() {
  try {
    renderFeeds((await getJSON("/api/sources")).sources);
  } catch (err) {
    $("feeds-list").replaceChildren(errorBox(message(err)));
  }
}

// ---- time control ------------------------------------------------------------------------

function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function setAsOf(iso) {
  state.asOf = iso;
  $("live").setAttribute("aria-pressed", String(!iso));
  document.body.classList.toggle("past", !!iso);
  $("as-of").value = iso ? toLocalInput(new Date(iso)) : "";
  connectLive();
  loadTrends();
}

function initTime() {
  const input = $("as-of");
  input.addEventListener("change", () => {
    const when = input.value ? new Date(input.value) : null;
    setAsOf(when && !Number.isNaN(when.getTime()) ? when.toISOString() : null);
  });
  $("live").addEventListener("click", () => {
    if (state.asOf) return setAsOf(null);
    input.value = toLocalInput(new Date());
    input.focus();
    setAsOf(new Date(input.value).toISOString());
  });
  $("time").addEventListener("submit", (e) => e.preventDefault());
  $("ticker-form").addEventListener("submit", (e) => {
    e.preventDefault();
    $("ticker-list").replaceChildren();
    connectLive();
  });
}

// ---- start -------------------------------------------------------------------------------

initTheme();
initKey();
initCard();
initChat();
initSearch();
initCheck();
initWatches();
initTime();
connectLive();
loadTrends();
loadFeeds();
document.body.dataset.ready = "true";
