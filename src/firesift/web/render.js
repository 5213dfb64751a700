// Building the page's DOM from API data.
//
// Post text, names and URLs come from strangers on the internet: they only ever enter the DOM as
// text nodes or attribute values (never innerHTML), and only http(s) URLs become links.

const SVG = "http://www.w3.org/2000/svg";

/** el("a", {class: "x", href}, "text", child, ...): an element; strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  node.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** The URL if it is an absolute http(s) URL, else null (no javascript:, data:, relative...). */
export function safeUrl(url) {
  if (typeof url !== "string" || !url) return null;
  try {
    const parsed = new URL(url);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });

export function fmtTime(iso, short = false) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const today = new Date().toDateString() === d.toDateString();
  return (short && today ? timeOnly : dateTime).format(d);
}

export function plural(n, word) {
  return `${fmtNum(n)} ${n === 1 ? word : word + "s"}`;
}

export function fmtNum(n) {
  return typeof n === "number" && Number.isFinite(n) ? compact.format(n) : "–";
}

function timeEl(iso, short) {
  return iso ? el("time", { datetime: iso }, fmtTime(iso, short)) : null;
}

/** One shape for posts from search, citations, claim evidence and the live stream. */
export function normPost(p) {
  const a = p.author;
  const author =
    a && typeof a === "object"
      ? { handle: a.handle || "", name: a.name || "", verified: !!a.verified, followers: a.followers }
      : { handle: a || "", name: p.author_name || "", verified: !!p.verified };
  return {
    source: p.source || "",
    id: p.id === undefined || p.id === null ? "" : String(p.id),
    url: p.url || "",
    author,
    created_at: p.created_at || p.date || "",
    text: p.text ?? p.snippet ?? p.title ?? "",
    metrics: p.metrics || {},
    stance: p.stance || null,
    confidence: p.confidence,
  };
}

function byline(post, short = false) {
  const { handle, name, verified } = post.author;
  return el(
    "p",
    { class: "byline" },
    name ? el("strong", { class: "name" }, name) : null,
    verified ? el("span", { class: "verified", title: "verified account" }, " ✓") : null,
    handle ? el("span", { class: "handle" }, ` @${handle}`) : null,
    post.created_at ? el("span", { class: "sep", "aria-hidden": "true" }, " · ") : null,
    timeEl(post.created_at, short),
  );
}

const METRICS = [
  ["replies", "reply", "replies"],
  ["reposts", "repost", "reposts"],
  ["quotes", "quote", "quotes"],
  ["likes", "like", "likes"],
  ["views", "view", "views"],
];

function metricsList(metrics) {
  const items = METRICS.filter(([key]) => typeof metrics[key] === "number").map(
    ([key, one, many]) =>
      el(
        "li",
        { title: `${metrics[key]} ${metrics[key] === 1 ? one : many}` },
        el("strong", {}, fmtNum(metrics[key])),
        ` ${metrics[key] === 1 ? one : many}`,
      ),
  );
  return items.length ? el("ul", { class: "metrics", "aria-label": "Engagement" }, items) : null;
}

export function stanceBadge(stance) {
  return stance ? el("span", { class: `badge stance-${stance}` }, stance) : null;
}

function originalLink(post) {
  const href = safeUrl(post.url);
  if (!href) return el("span", { class: "hint" }, "no web link for this post");
  return el(
    "a",
    { class: "original", href, target: "_blank", rel: "noopener noreferrer" },
    "Open original ↗",
  );
}

/** The full card of one post (the dialog and search results). */
export function postCard(raw, { compact = false } = {}) {
  const post = normPost(raw);
  return el(
    "article",
    { class: compact ? "post compact" : "post", "data-key": `${post.source}:${post.id}` },
    byline(post),
    el("p", { class: "text" }, post.text),
    el(
      "div",
      { class: "post-foot" },
      stanceBadge(post.stance),
      metricsList(post.metrics),
      originalLink(post),
    ),
  );
}

/** A one-line clickable post (ticker, claim evidence, thread). */
export function postRow(raw, onOpen, { short = true } = {}) {
  const post = normPost(raw);
  return el(
    "li",
    { class: "row" },
    el(
      "button",
      { type: "button", class: "row-button", onclick: () => onOpen(raw) },
      el(
        "span",
        { class: "row-head" },
        stanceBadge(post.stance),
        el("span", { class: "handle" }, post.author.handle ? `@${post.author.handle}` : post.source),
        " ",
        timeEl(post.created_at, short),
      ),
      el("span", { class: "row-text" }, post.text),
    ),
  );
}

const STANCE_ORDER = ["support", "deny", "query", "comment"];

/**
 * A post's conversation (GET /api/posts/{source}/{id}): the stance tally of the replies, then
 * every other post of it in time order, indented by depth, each reply with its stance badge
 * (towards the conversation's first post).
 */
export function threadView(data, currentId, onOpen) {
  const posts = data.thread || [];
  const others = posts.filter((p) => String(p.id) !== String(currentId));
  if (!others.length) return null;
  const tally = data.tally || {};
  const replies = data.replies ?? posts.length - 1;
  const by =
    data.stance_by === "model"
      ? "the stance model"
      : data.stance_by === "cues"
        ? "keyword cues (no stance model)"
        : String(data.stance_by || "");
  const accounts = (s) => tally[s]?.accounts ?? 0;
  const summary = STANCE_ORDER.map((s) => `${s} ${tally[s]?.posts ?? 0}`).join(", ");
  return el(
    "section",
    { class: "thread", "aria-label": "Conversation" },
    el("h3", {}, `In this conversation (${others.length})`),
    replies
      ? el(
          "div",
          { class: "thread-tally", role: "group", "aria-label": `Replies by stance: ${summary}` },
          STANCE_ORDER.map((s) =>
            el(
              "span",
              { class: "tally", "data-stance": s },
              stanceBadge(s),
              " ",
              el("strong", {}, String(tally[s]?.posts ?? 0)),
              el("span", { class: "hint" }, ` · ${plural(accounts(s), "account")}`),
            ),
          ),
        )
      : null,
    replies ? el("p", { class: "hint" }, `Each reply's stance towards the first post, by ${by}.`) : null,
    warningsList(data.warnings),
    el(
      "ol",
      { class: "rows thread-rows" },
      others.map((p) => {
        const depth = Math.max(0, Math.min(Number(p.depth) || 0, 6));
        const row = postRow(p, onOpen, { short: false });
        row.dataset.depth = String(depth);
        row.style.setProperty("--depth", String(depth));
        return row;
      }),
    ),
  );
}

/** An inline SVG sparkline of per-minute counts (oldest first). */
export function sparkline(values, { width = 120, height = 28 } = {}) {
  const svg = document.createElementNS(SVG, "svg");
  const series = (values || []).map((v) => (Number.isFinite(v) ? v : 0));
  const top = Math.max(1, ...series);
  const peak = series.length ? Math.max(...series) : 0;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `posts per minute over ${series.length} min, peak ${peak}`);
  if (series.length < 2) return svg;
  const step = width / (series.length - 1);
  const points = series.map((v, i) => [i * step, height - 1 - (v / top) * (height - 3)]);
  const line = points.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" ");
  const area = document.createElementNS(SVG, "polygon");
  area.setAttribute("points", `0,${height} ${line} ${width},${height}`);
  area.setAttribute("class", "spark-area");
  const stroke = document.createElementNS(SVG, "polyline");
  stroke.setAttribute("points", line);
  stroke.setAttribute("class", "spark-line");
  svg.append(area, stroke);
  return svg;
}

/** One developing story in the trends panel. */
export function storyItem(story, onAsk) {
  const total = (story.volume || []).reduce((a, b) => a + b, 0);
  return el(
    "li",
    { class: "story", "data-id": story.id },
    el(
      "div",
      { class: "story-head" },
      el("span", { class: `badge status-${story.status}` }, story.status),
      sparkline(story.volume),
    ),
    el("p", { class: "story-title" }, story.title || "(no text)"),
    el(
      "p",
      { class: "story-meta" },
      `${plural(total, "post")} · ${plural(story.authors, "account")}`,
      story.first_seen ? " · since " : "",
      timeEl(story.first_seen, true),
    ),
    el(
      "div",
      { class: "story-foot" },
      el("ul", { class: "term-list", "aria-label": "Key terms" }, (story.terms || []).slice(0, 6).map((t) => el("li", {}, t))),
      el("button", { type: "button", class: "secondary small", onclick: () => onAsk(story) }, "Ask"),
    ),
  );
}

const VERDICTS = {
  supported: "Supported",
  disputed: "Disputed",
  unverified: "Unverified",
  insufficient: "Insufficient",
};
/** Claim roles: evidence first, then repetitions of the claim, then the rest. */
const ROLES = [
  ["confirms", "confirm", "support"],
  ["supports", "back it in replies", "support"],
  ["denies", "deny or correct", "deny"],
  ["questions", "question", "query"],
  ["reports", "only repeat it", "comment"],
  ["comments", "comment", "comment"],
];

/** A claim check: verdict, reason, accounts per role as a bar, and the evidence posts. */
export function verdictView(result, onOpen) {
  const roles = result.roles || {};
  const accounts = (r) => roles[r]?.accounts ?? 0;
  const posts = (r) => roles[r]?.posts ?? 0;
  const total = ROLES.reduce((sum, [r]) => sum + accounts(r), 0);
  const summaryLabel = ROLES.map(([r, title]) => `${title} ${accounts(r)}`).join(", ");
  const bar = el(
    "div",
    { class: "stance-bar", role: "img", "aria-label": `Accounts per role: ${summaryLabel}` },
    ROLES.filter(([r]) => accounts(r) > 0).map(([r, , tone]) =>
      el("span", { class: `seg stance-${tone} role-${r}`, style: `flex-grow: ${accounts(r)}` }),
    ),
  );
  const confidence = typeof result.confidence === "number" ? ` · confidence ${result.confidence.toFixed(2)}` : "";
  return el(
    "div",
    { class: "verdict", "data-verdict": result.verdict },
    el(
      "p",
      { class: "verdict-head" },
      el("span", { class: `badge verdict-badge verdict-${result.verdict}` }, VERDICTS[result.verdict] || result.verdict),
      result.as_of ? el("span", { class: "hint" }, " as of ", timeEl(result.as_of), confidence) : null,
    ),
    result.reason || result.summary ? el("p", { class: "summary" }, result.reason || result.summary) : null,
    total ? bar : null,
    el(
      "dl",
      { class: "stance-counts" },
      ROLES.map(([r, title, tone]) =>
        el(
          "div",
          { class: `count role-${r} stance-${tone}` },
          el("dt", {}, title),
          el("dd", {}, plural(accounts(r), "account"), el("span", { class: "hint" }, ` · ${plural(posts(r), "post")}`)),
        ),
      ),
    ),
    warningsList(result.warnings),
    result.evidence?.length
      ? el("ol", { class: "rows evidence-list", "aria-label": "Evidence" }, result.evidence.map((p) => postRow(p, onOpen, { short: false })))
      : null,
  );
}

export function warningsList(warnings) {
  if (!warnings || !warnings.length) return null;
  return el("ul", { class: "warnings", "aria-label": "Warnings" }, warnings.map((w) => el("li", {}, String(w))));
}

export function errorBox(message) {
  return el("p", { class: "error", role: "alert" }, message);
}

export function emptyBox(message) {
  return el("p", { class: "empty" }, message);
}

/** "12 posts from 9 accounts · 10:02–10:41 · as of 11:00" over an answer. */
export function evidenceHeader(final) {
  const ev = final.evidence || {};
  return el(
    "p",
    { class: "evidence" },
    el("strong", {}, plural(ev.posts ?? 0, "post")),
    " from ",
    el("strong", {}, plural(ev.accounts ?? 0, "account")),
    ev.first_seen ? [" · first seen ", timeEl(ev.first_seen)] : null,
    ev.last_seen ? [" · last ", timeEl(ev.last_seen)] : null,
    final.as_of ? [" · as of ", timeEl(final.as_of)] : null,
  );
}

/** The numbered sources under an answer. */
export function sourcesList(results, onOpen) {
  return el(
    "ol",
    { class: "sources", "aria-label": "Sources" },
    results.map((r, i) => {
      const post = normPost(r);
      return el(
        "li",
        {},
        el(
          "button",
          { type: "button", class: "source", onclick: () => onOpen(i + 1) },
          el("span", { class: "chip", "aria-hidden": "true" }, String(i + 1)),
          el("span", { class: "handle" }, post.author.handle ? `@${post.author.handle}` : post.source),
          " ",
          el("span", { class: "source-text" }, post.text),
        ),
      );
    }),
  );
}

const KIND_WORDS = { news: "news", official: "official", verified: "verified", anonymous: "anonymous" };

/**
 * The answer's claims: each with its account count (and how many are independent), the
 * kinds of accounts, chips for its cited posts, and a conflict badge naming what a rival
 * claim disagrees on. Claim text is post text: it goes in as text, never as HTML.
 */
export function claimsList(claims, onOpen) {
  if (!claims?.length) return null;
  return el(
    "ol",
    { class: "claims", "aria-label": "Claims" },
    claims.map((c, k) => {
      const kinds = Object.entries(c.kinds || {})
        .filter(([, n]) => n > 0)
        .map(([kind, n]) => `${n} ${KIND_WORDS[kind] || kind}`)
        .join(", ");
      const independent =
        c.independent_accounts < c.accounts ? `, ${c.independent_accounts} independent` : "";
      return el(
        "li",
        { class: `claim${c.accounts > 1 ? " corroborated" : " single"}`, "data-claim": String(k) },
        el("span", { class: "claim-text" }, c.claim),
        " ",
        el(
          "span",
          { class: "badge claim-count" },
          c.accounts === 1 ? "one account" : `${plural(c.accounts, "account")}${independent}`,
        ),
        kinds ? el("span", { class: "hint" }, ` ${kinds}`) : null,
        " ",
        (c.citations || []).map((n) =>
          el("button", { type: "button", class: "chip", onclick: () => onOpen(n), "aria-label": `Source ${n}` }, String(n)),
        ),
        (c.conflicts || []).map((x) =>
          el(
            "span",
            { class: "badge conflict-badge", title: claims[x.claim]?.claim || "" },
            `conflicts with claim ${x.claim + 1}: ${x.about}`,
          ),
        ),
      );
    }),
  );
}

/**
 * Writes streamed answer text into `target`, turning "[n]" markers into chip buttons. A marker
 * split across chunks ("[1" then "2]") is held back until it is complete.
 */
export class AnswerWriter {
  constructor(target, onChip) {
    this.target = target;
    this.onChip = onChip;
    this.pending = "";
    this.chips = [];
  }

  write(piece) {
    let s = this.pending + piece;
    this.pending = "";
    const partial = s.match(/\[\d*$/);
    if (partial) {
      this.pending = partial[0];
      s = s.slice(0, partial.index);
    }
    let last = 0;
    for (const m of s.matchAll(/\[(\d+)\]/g)) {
      this.#text(s.slice(last, m.index));
      this.#chip(Number(m[1]));
      last = m.index + m[0].length;
    }
    this.#text(s.slice(last));
  }

  end() {
    this.#text(this.pending);
    this.pending = "";
  }

  /** Labels each chip with its cited post once the final chunk has arrived. */
  resolve(results) {
    for (const chip of this.chips) {
      const n = Number(chip.dataset.n);
      const r = results[n - 1];
      if (r) {
        const post = normPost(r);
        chip.setAttribute("aria-label", `Source ${n}: @${post.author.handle || post.source}`);
        chip.title = post.author.handle ? `@${post.author.handle}` : post.url;
      } else {
        chip.disabled = true;
        chip.title = "source not returned";
      }
    }
  }

  #text(t) {
    if (!t) return;
    const last = this.target.lastChild;
    if (last && last.nodeType === Node.TEXT_NODE) last.appendData(t);
    else this.target.append(document.createTextNode(t));
  }

  #chip(n) {
    const chip = el("button", { type: "button", class: "chip", "data-n": n, "aria-label": `Source ${n}` }, String(n));
    chip.addEventListener("click", () => this.onChip(n, chip));
    this.chips.push(chip);
    this.target.append(chip);
  }
}

function ago(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "–";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${(seconds / 3600).toFixed(1)} h`;
  return `${Math.round(seconds / 86400)} days`;
}

/** One live source's status (GET /api/sources, event: stats): state, posts, rate, lag, faults. */
export function feedRow(s) {
  const ended = s.state === "stopped" || s.state === "finished";
  const name = s.source === "http" && s.key === "http" ? "http (POST /api/ingest)" : s.key;
  const faults = [
    s.reconnects ? plural(s.reconnects, "reconnect") : null,
    s.errors ? plural(s.errors, "error") : null,
    s.skipped ? `${fmtNum(s.skipped)} skipped` : null,
  ].filter(Boolean);
  const why = ended ? s.reason : s.last_error;
  return el(
    "li",
    { class: `feed feed-${s.state}`, "data-key": s.key },
    el("span", { class: "feed-name", title: s.key }, name),
    el("span", { class: `badge feed-state state-${s.state}` }, s.state),
    el(
      "span",
      { class: "feed-figures" },
      `${plural(s.posts, "post")}`,
      ended ? "" : ` · ${fmtNum(s.posts_per_s)}/s`,
      s.lag_s === null || s.lag_s === undefined ? "" : ` · lag ${ago(s.lag_s)}`,
      faults.length ? ` · ${faults.join(", ")}` : "",
    ),
    why ? el("span", { class: "feed-why hint" }, why) : null,
  );
}
