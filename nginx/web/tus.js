// The page's resumable uploads: a small tus 1.0.0 client (contract v1.3) for one file.
//
// The upload is created once (POST /uploads) and its URL remembered in localStorage with the
// file's name, size and date, so that after a reload choosing the same file again continues it.
// The bytes go in one PATCH from the server's offset; when the network drops or the PATCH is cut,
// the upload waits for the network, asks the server where it stopped (HEAD) and sends the rest.
// pause() stops sending; resume() continues from the server's offset.
import { ApiError, describe } from "./api.js";

const TUS = { "Tus-Resumable": "1.0.0" };
const PENDING_KEY = "audio-uploads.pending";
const RETRY_MS = [1000, 2000, 4000, 8000, 15000];

// Unfinished uploads this browser started, newest last: {url, user, name, size, lastModified}.
export function pendingUploads(user) {
  return readPending().filter((entry) => entry.user === user);
}

function readPending() {
  try {
    const stored = JSON.parse(localStorage.getItem(PENDING_KEY));
    return Array.isArray(stored) ? stored : [];
  } catch {
    return [];
  }
}

function writePending(entries) {
  localStorage.setItem(PENDING_KEY, JSON.stringify(entries));
}

function forget(url) {
  writePending(readPending().filter((entry) => entry.url !== url));
}

export function matchesFile(entry, file) {
  return entry.name === file.name && entry.size === file.size && entry.lastModified === file.lastModified;
}

function b64(text) {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

class NetworkLost extends Error {}

// A request answered with a status the upload may wait out (409 another PATCH in flight, 423,
// 429, 5xx): retried after `delay` ms.
class TryAgain extends Error {
  constructor(message, delay) {
    super(message);
    this.delay = delay;
  }
}

// XMLHttpRequest rather than fetch: it reports the bytes sent. `owner.xhr` is the request in
// flight, for pause() to abort.
function request(owner, method, url, { headers = {}, body = null, onProgress, onSent } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.responseType = "json";
    if (onProgress) xhr.upload.onprogress = (event) => onProgress(event.loaded);
    if (onSent) xhr.upload.onload = onSent;
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new NetworkLost("Network error: the connection was lost."));
    xhr.onabort = () => reject(new NetworkLost("paused"));
    owner.xhr = xhr;
    xhr.send(body);
  });
}

function failure(xhr) {
  const message = describe(xhr.response, xhr.status);
  if ([409, 423, 429].includes(xhr.status) || xhr.status >= 500) {
    const after = Number(xhr.getResponseHeader("Retry-After"));
    return new TryAgain(message, after > 0 ? after * 1000 : 1000);
  }
  return new ApiError(message);
}

export class ResumableUpload {
  // events: onProgress(bytesKept), onSent(), onWaiting(message), onResumed()
  constructor(account, file, events, url = null) {
    this.account = account;
    this.file = file;
    this.events = events;
    this.url = url;
    this.paused = false;
    this.xhr = null;
    this.wake = null;
  }

  headers(extra = {}) {
    return { ...TUS, Authorization: `Bearer ${this.account.token}`, ...extra };
  }

  // Resolves with the record's URL once the server has stored it; rejects with an ApiError for
  // what waiting cannot fix (not a WAV, quota, ...).
  async run() {
    let attempt = 0;
    for (;;) {
      try {
        if (this.paused) await this.untilResumed();
        if (this.url === null) await this.create();
        const offset = await this.offset();
        if (offset.record) return this.finish(offset.record);
        this.events.onProgress(offset.kept);
        const record = await this.send(offset.kept);
        if (record) return this.finish(record);
      } catch (error) {
        if (error instanceof ApiError) {
          if (this.url) forget(this.url);
          throw error;
        }
        if (this.paused) continue;
        const delay = error instanceof TryAgain ? error.delay : RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)];
        attempt += 1;
        this.events.onWaiting(error instanceof NetworkLost ? "Network error: waiting for the connection to resume the upload." : error.message);
        await this.pauseFor(delay, error instanceof NetworkLost);
        this.events.onResumed();
      }
    }
  }

  finish(record) {
    forget(this.url);
    return record;
  }

  async create() {
    const metadata = `user ${b64(this.account.id)},filename ${b64(this.file.name)}`;
    const xhr = await request(this, "POST", "/uploads", {
      headers: this.headers({ "Upload-Length": String(this.file.size), "Upload-Metadata": metadata }),
    });
    if (xhr.status !== 201) throw failure(xhr);
    this.url = new URL(xhr.getResponseHeader("Location"), location.href).pathname;
    const { name, size, lastModified } = this.file;
    writePending([...readPending(), { url: this.url, user: this.account.id, name, size, lastModified }]);
  }

  async offset() {
    const xhr = await request(this, "HEAD", this.url, { headers: this.headers() });
    if (xhr.status === 404) throw new ApiError("The unfinished upload has expired on the server; choose the file again.");
    if (xhr.status !== 200) throw failure(xhr);
    return {
      kept: Number(xhr.getResponseHeader("Upload-Offset")),
      record: xhr.getResponseHeader("Record-Location"),
    };
  }

  async send(offset) {
    const xhr = await request(this, "PATCH", this.url, {
      headers: this.headers({
        "Upload-Offset": String(offset),
        "Content-Type": "application/offset+octet-stream",
      }),
      body: this.file.slice(offset),
      onProgress: (sent) => this.events.onProgress(offset + sent),
      onSent: () => this.events.onSent(),
    });
    if (xhr.status !== 204) throw failure(xhr);
    return xhr.getResponseHeader("Record-Location");
  }

  pause() {
    this.paused = true;
    if (this.xhr) this.xhr.abort();
  }

  resume() {
    this.paused = false;
    if (this.wake) this.wake();
  }

  untilResumed() {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  // Wait `delay` ms, or until the browser is back online (for a lost network), or a resume().
  pauseFor(delay, network) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        window.removeEventListener("online", done);
        resolve();
      };
      const timer = setTimeout(done, network && !navigator.onLine ? 60000 : delay);
      if (network) window.addEventListener("online", done);
      this.wake = done;
    });
  }
}
