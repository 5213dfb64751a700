// Talking to the firesift server: JSON calls, the streaming chat and the live event stream.
// Every failure becomes an ApiError with a message fit to show a reader.

export class ApiError extends Error {
  constructor(message, { status = 0, type = "network_error", code = null } = {}) {
    super(message);
    this.status = status;
    this.type = type;
    this.code = code;
  }
}

let apiKey = null;

/** The key sent with every request (a server off loopback requires one); null for none. */
export function setApiKey(key) {
  apiKey = key || null;
}

function withKey(headers) {
  return apiKey ? { ...headers, Authorization: `Bearer ${apiKey}` } : headers;
}

const UNREACHABLE = "Can't reach the firesift server. Is `firesift serve` running?";

async function request(path, init = {}) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(UNREACHABLE);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

async function errorFrom(response) {
  let message = `The server answered ${response.status} ${response.statusText}`.trim();
  let type = "http_error";
  let code = null;
  try {
    const body = await response.json();
    if (body && body.error) {
      message = body.error.message || message;
      type = body.error.type || type;
      code = body.error.code ?? null;
    }
  } catch {
    // Not JSON (a proxy's error page): keep the status line.
  }
  return new ApiError(message, { status: response.status, type, code });
}

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(key, String(value));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export async function getJSON(path, params = {}, signal) {
  const response = await request(path + query(params), {
    headers: withKey({ Accept: "application/json" }),
    signal,
  });
  return response.json();
}

export async function postJSON(path, body, signal) {
  const response = await request(path, {
    method: "POST",
    headers: withKey({ "Content-Type": "application/json", Accept: "application/json" }),
    body: JSON.stringify(body),
    signal,
  });
  return response.json();
}

/** Parses a text/event-stream body into {event, data} records. */
async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = "message";
  let data = [];
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith("\r\n", nl) ? 2 : 1));
        if (line === "") {
          if (data.length) yield { event, data: data.join("\n") };
          event = "message";
          data = [];
        } else if (line.startsWith("data:")) {
          data.push(line.slice(5).replace(/^ /, ""));
        } else if (line.startsWith("event:")) {
          event = line.slice(6).trim();
        }
        // Comments (":") are heartbeats; id/retry are not used here.
      }
    }
    if (data.length) yield { event, data: data.join("\n") };
  } finally {
    reader.releaseLock();
  }
}

/**
 * Streams an OpenAI-style chat completion: yields each chat.completion.chunk object.
 * The final chunk (finish_reason "stop") carries firesift's citations and evidence.
 */
export async function* streamChat(body, signal) {
  const response = await request("/v1/chat/completions", {
    method: "POST",
    headers: withKey({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ model: "firesift-extractive", stream: true, ...body }),
    signal,
  });
  let midStream = false;
  try {
    for await (const { data } of readEvents(response.body)) {
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(chunk.error.message || "The answer failed", chunk.error);
      midStream = true;
      yield chunk;
    }
  } catch (err) {
    if (err.name === "AbortError" || err instanceof ApiError) throw err;
    throw new ApiError(
      midStream ? "The connection dropped while the answer was streaming." : UNREACHABLE,
    );
  }
}

/**
 * Subscribes to /api/live (EventSource reconnects by itself).
 * handlers: {post, trends, stats, open, error(err)}; err is null while it reconnects by itself,
 * an ApiError once it has given up. Returns a function that closes the stream.
 */
export function openLive(q, handlers) {
  // EventSource cannot send headers; the server accepts the key as ?api_key= on GET.
  const url = "/api/live" + query({ q, api_key: apiKey });
  const source = new EventSource(url);
  for (const name of ["post", "trends", "stats"]) {
    source.addEventListener(name, (e) => {
      let data;
      try {
        data = JSON.parse(e.data);
      } catch {
        return; // A malformed event is dropped, the stream goes on.
      }
      handlers[name]?.(data);
    });
  }
  source.addEventListener("open", () => handlers.open?.());
  source.addEventListener("error", async () => {
    if (source.readyState !== EventSource.CLOSED) return handlers.error?.(null);
    // EventSource gave up (an error status, e.g. a bad filter): ask again to learn why.
    const probe = new AbortController();
    try {
      await request(url, { headers: withKey({}), signal: probe.signal });
      handlers.error?.(new ApiError("The live stream closed."));
    } catch (err) {
      handlers.error?.(err);
    } finally {
      probe.abort();
    }
  });
  return () => source.close();
}

/**
 * Subscribes to a watch's events (/api/watches/{id}/events): every event kept, then new ones;
 * EventSource resumes after the last one it saw (Last-Event-ID) when it reconnects.
 * Returns a function that closes the stream.
 */
export function openWatch(id, onEvent) {
  const url = `/api/watches/${encodeURIComponent(id)}/events` + query({ api_key: apiKey });
  const source = new EventSource(url);
  source.addEventListener("watch", (e) => {
    try {
      onEvent(JSON.parse(e.data));
    } catch {
      // A malformed event is dropped, the stream goes on.
    }
  });
  return () => source.close();
}
