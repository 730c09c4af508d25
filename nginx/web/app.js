// The web page: an account kept in localStorage, resumable uploads with progress, pause and
// resume, the list of records.
import { ApiError, createUser, deleteRecord, listRecords } from "./api.js";
import { matchesFile, pendingUploads, ResumableUpload } from "./tus.js";

const STORAGE_KEY = "audio-uploads.account";
const $ = (id) => document.getElementById(id);

let account = loadAccount();
let uploads = Promise.resolve(); // files are uploaded one after the other

// --- Messages -------------------------------------------------------------------------------

function say(message, kind = "info") {
  $("status").textContent = message;
  $("status-bar").dataset.kind = kind;
  $("status-dismiss").hidden = message === "";
}

function report(error) {
  const message = error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`;
  say(message, "error");
}

async function whileBusy(button, work) {
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}

// --- Account --------------------------------------------------------------------------------

function loadAccount() {
  try {
    const stored = JSON.parse(localStorage.getItem(STORAGE_KEY));
    return stored && stored.id && stored.token ? stored : null;
  } catch {
    return null;
  }
}

function saveAccount(value) {
  account = value;
  localStorage.setItem(STORAGE_KEY, JSON.stringify(value));
}

function showAccount() {
  const signedIn = account !== null;
  for (const id of ["signed-in", "who", "upload-section", "records-section"]) $(id).hidden = !signedIn;
  $("signed-out").hidden = signedIn;
  if (!signedIn) return;
  const label = account.name || "an existing account";
  $("who-name").textContent = label;
  $("account-name").textContent = label;
  $("account-id").textContent = account.id;
}

function showCredentials(created) {
  $("credentials-id").textContent = created.id;
  $("credentials-token").textContent = created.token;
  $("credentials").hidden = false;
}

function hideCredentials() {
  $("credentials").hidden = true;
  $("credentials-id").textContent = "";
  $("credentials-token").textContent = "";
}

function signIn(value) {
  saveAccount(value);
  showAccount();
  refreshRecords();
  showPendingUploads();
}

async function onCreate(event) {
  event.preventDefault();
  const name = $("create-name").value.trim();
  try {
    const created = await whileBusy(event.submitter, () => createUser(name));
    event.target.reset();
    showCredentials(created);
    signIn({ id: created.id, token: created.token, name });
    say(`Account created. Welcome, ${name}.`);
  } catch (error) {
    report(error);
  }
}

async function onUseExisting(event) {
  event.preventDefault();
  const candidate = {
    id: $("existing-id").value.trim(),
    token: $("existing-token").value.trim(),
    name: $("existing-name").value.trim() || null,
  };
  try {
    await whileBusy(event.submitter, () => listRecords(candidate)); // checks the id and token
    event.target.reset();
    signIn(candidate);
    say("Signed in.");
  } catch (error) {
    report(error);
  }
}

function onForget() {
  const sure = window.confirm(
    "Forget this account on this browser? Without its id and token you cannot reach its records again.",
  );
  if (!sure) return;
  localStorage.removeItem(STORAGE_KEY);
  account = null;
  hideCredentials();
  $("uploads").replaceChildren();
  waitingForFile.clear();
  $("records").replaceChildren();
  showAccount();
  say("This browser no longer remembers the account.");
}

// --- Uploads ---------------------------------------------------------------------------------

// Unfinished uploads shown after a reload, by URL: their rows wait for the same file to be chosen.
const waitingForFile = new Map();

function addFiles(files) {
  const owner = account;
  for (const file of files) {
    const entry = pendingUploads(owner.id).find((pending) => matchesFile(pending, file));
    const row = (entry && waitingForFile.get(entry.url)) || uploadRow(file.name, file.size);
    if (entry) waitingForFile.delete(entry.url);
    uploads = uploads.then(() => upload(owner, file, row, entry ? entry.url : null));
  }
}

function uploadRow(name, size) {
  const row = $("upload-template").content.firstElementChild.cloneNode(true);
  row.querySelector(".upload-name").textContent = name;
  const bar = row.querySelector("progress");
  bar.max = Math.max(size, 1);
  bar.setAttribute("aria-label", `Upload of ${name}`);
  row.querySelector(".upload-pause").setAttribute("aria-label", `Pause ${name}`);
  $("uploads").append(row);
  return row;
}

function setUploadState(row, text, state) {
  row.querySelector(".upload-state").textContent = text;
  row.dataset.state = state;
}

// Rows for the uploads this browser left unfinished (a reload, a closed tab), at the offset the
// server kept; choosing the same file again continues each from there.
async function showPendingUploads() {
  for (const entry of pendingUploads(account.id)) {
    if (waitingForFile.has(entry.url)) continue;
    const row = uploadRow(entry.name, entry.size);
    row.querySelector(".upload-pause").hidden = true;
    setUploadState(row, `Paused: choose “${entry.name}” again to resume`, "paused");
    waitingForFile.set(entry.url, row);
    try {
      const response = await fetch(entry.url, {
        method: "HEAD",
        headers: { "Tus-Resumable": "1.0.0", Authorization: `Bearer ${account.token}` },
      });
      row.querySelector("progress").value = Number(response.headers.get("Upload-Offset")) || 0;
    } catch {
      // The offset shows once the upload resumes.
    }
  }
}

async function upload(owner, file, row, url) {
  const bar = row.querySelector("progress");
  const pause = row.querySelector(".upload-pause");
  row.querySelector(".upload-error").textContent = "";
  setUploadState(row, url ? "Resuming…" : "Uploading…", "sending");
  const resumable = new ResumableUpload(
    owner,
    file,
    {
      onProgress(kept) {
        bar.value = kept;
      },
      onSent() {
        bar.value = bar.max;
        pause.hidden = true;
        setUploadState(row, "Converting…", "converting");
      },
      onWaiting(message) {
        setUploadState(row, "Waiting…", "waiting");
        row.querySelector(".upload-error").textContent = message;
        say(message, "error");
      },
      onResumed() {
        row.querySelector(".upload-error").textContent = "";
        setUploadState(row, "Uploading…", "sending");
      },
    },
    url,
  );
  pause.hidden = false;
  pause.onclick = () => {
    const action = resumable.paused ? "Pause" : "Resume";
    if (resumable.paused) {
      resumable.resume();
      setUploadState(row, "Uploading…", "sending");
    } else {
      resumable.pause();
      setUploadState(row, "Paused", "paused");
    }
    pause.textContent = action;
    pause.setAttribute("aria-label", `${action} ${file.name}`);
  };
  try {
    await resumable.run();
    pause.hidden = true;
    setUploadState(row, "Done", "done");
    await refreshRecords();
  } catch (error) {
    pause.hidden = true;
    setUploadState(row, "Failed", "failed");
    row.querySelector(".upload-error").textContent = error.message;
    report(error);
  }
}

function onDragOver(event) {
  event.preventDefault();
  event.currentTarget.classList.add("is-dragging");
}

function onDragLeave(event) {
  event.currentTarget.classList.remove("is-dragging");
}

function onDrop(event) {
  event.preventDefault();
  event.currentTarget.classList.remove("is-dragging");
  addFiles([...event.dataTransfer.files]);
}

function onFilesChosen(event) {
  addFiles([...event.target.files]);
  event.target.value = ""; // choosing the same file again is a new upload
}

// --- Records --------------------------------------------------------------------------------

function formatDuration(ms) {
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  if (bytes < 1024 * 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  return `${(bytes / (1024 * 1024 * 1024)).toFixed(1)} GB`;
}

function formatDate(iso) {
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

// The page plays and downloads from its own origin (the gateway it was served by, whatever
// PUBLIC_BASE_URL says: its Content-Security-Policy allows no other); "Copy link" gives the
// public URL.
function onThisOrigin(url) {
  const parsed = new URL(url, location.href);
  return parsed.pathname + parsed.search;
}

function recordItem(record) {
  const here = onThisOrigin(record.url);
  const item = $("record-template").content.firstElementChild.cloneNode(true);
  const name = record.name || "untitled";
  const part = (selector) => item.querySelector(selector);
  item.dataset.id = record.id;
  part(".record-name").textContent = name;
  part(".record-duration").textContent = formatDuration(record.duration_ms);
  part(".record-size").textContent = formatSize(record.size);
  part(".record-created").dateTime = record.created_at;
  part(".record-created").textContent = formatDate(record.created_at);
  part("audio").src = here;
  part("audio").setAttribute("aria-label", `Play ${name}`);
  part(".record-download").href = here;
  part(".record-download").setAttribute("aria-label", `Download ${name}`);
  part(".record-copy").setAttribute("aria-label", `Copy link to ${name}`);
  part(".record-copy").addEventListener("click", () => copyLink(record.url));
  part(".record-delete").setAttribute("aria-label", `Delete ${name}`);
  part(".record-delete").addEventListener("click", (event) =>
    removeRecord(record, name, item, event.currentTarget),
  );
  return item;
}

function showRecords(page, { append }) {
  const items = page.records.map(recordItem);
  if (append) $("records").append(...items);
  else $("records").replaceChildren(...items);
  $("load-more").hidden = page.next === null;
  usage = { used: page.used, quota: page.quota };
  showUsage();
  showIfEmpty();
}

// Stored MP3 bytes against the user's quota, as the last listing said (less what was deleted since).
let usage = { used: 0, quota: 0 };

function showUsage() {
  $("usage").textContent = `${formatSize(usage.used)} of ${formatSize(usage.quota)} used`;
}

function showIfEmpty() {
  $("records-empty").hidden = $("records").children.length > 0;
}

async function refreshRecords() {
  if (account === null) return;
  try {
    showRecords(await listRecords(account), { append: false });
  } catch (error) {
    report(error);
  }
}

async function onLoadMore(event) {
  // `next` is the id of the last record listed; reading it from the list keeps paging right
  // when that record was deleted meanwhile.
  const last = $("records").lastElementChild;
  if (last === null) return refreshRecords();
  try {
    const page = await whileBusy(event.currentTarget, () => listRecords(account, last.dataset.id));
    showRecords(page, { append: true });
  } catch (error) {
    report(error);
  }
}

async function copyLink(url) {
  try {
    await navigator.clipboard.writeText(url);
    say("Link copied to the clipboard.");
  } catch {
    say(`This browser did not allow copying. Copy the link by hand: ${url}`, "error");
  }
}

async function removeRecord(record, name, item, button) {
  if (!window.confirm(`Delete “${name}”? Its MP3 is removed for good.`)) return;
  try {
    await whileBusy(button, () => deleteRecord(account, record.id));
    item.remove();
    usage.used -= record.size;
    showUsage();
    showIfEmpty();
    say(`Deleted “${name}”.`);
  } catch (error) {
    report(error);
  }
}

// --- Start ----------------------------------------------------------------------------------

function start() {
  $("create-form").addEventListener("submit", onCreate);
  $("existing-form").addEventListener("submit", onUseExisting);
  $("credentials-done").addEventListener("click", hideCredentials);
  $("forget").addEventListener("click", onForget);
  $("status-dismiss").addEventListener("click", () => say(""));
  $("file-input").addEventListener("change", onFilesChosen);
  const zone = $("drop-zone");
  zone.addEventListener("dragover", onDragOver);
  zone.addEventListener("dragleave", onDragLeave);
  zone.addEventListener("drop", onDrop);
  $("refresh").addEventListener("click", refreshRecords);
  $("load-more").addEventListener("click", onLoadMore);
  showAccount();
  refreshRecords();
  if (account !== null) showPendingUploads();
}

start();
