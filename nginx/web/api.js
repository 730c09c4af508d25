// The HTTP API of the service (CONTRACT.md), as the page uses it. Every failure is an ApiError
// whose message is a sentence for people, taken from the JSON error body where there is one.

export class ApiError extends Error {}

const NETWORK_ERROR = "Network error: the server could not be reached. Check your connection and try again.";

export function describe(body, status) {
  if (body && body.title) {
    return body.description ? `${body.title}: ${body.description}` : body.title;
  }
  return `The server answered with status ${status}.`;
}

async function call(path, { method = "GET", token, json } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
    });
  } catch {
    throw new ApiError(NETWORK_ERROR);
  }
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(describe(body, response.status));
  return body;
}

export function createUser(name) {
  return call("/user", { method: "POST", json: { name } });
}

export function listRecords(account, before = null) {
  const query = new URLSearchParams({ user: account.id, limit: "50" });
  if (before) query.set("before", before);
  return call(`/records?${query}`, { token: account.token });
}

export function deleteRecord(account, id) {
  const query = new URLSearchParams({ id, user: account.id });
  return call(`/record?${query}`, { method: "DELETE", token: account.token });
}
