// HTTP to the daemon: JSON in and out, the tokens from sessionStorage (never a cookie), and a
// clear Error for every answer that is not 2xx.

const API_TOKEN = "hive.apiToken";
const ADMIN_TOKEN = "hive.adminToken";

export const tokens = {
  get api() { return sessionStorage.getItem(API_TOKEN) || ""; },
  set api(value) { value ? sessionStorage.setItem(API_TOKEN, value) : sessionStorage.removeItem(API_TOKEN); },
  get admin() { return sessionStorage.getItem(ADMIN_TOKEN) || ""; },
  set admin(value) { value ? sessionStorage.setItem(ADMIN_TOKEN, value) : sessionStorage.removeItem(ADMIN_TOKEN); },
};

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(method, path, { body, admin = false } = {}) {
  const headers = {};
  const token = admin ? tokens.admin : tokens.api;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text };
  }
  if (!response.ok) throw new HttpError(response.status, data?.error || `${method} ${path}: ${response.status}`);
  return data;
}

export const api = {
  get: (path, options) => request("GET", path, options),
  post: (path, body, options) => request("POST", path, { ...options, body }),
  delete: (path, options) => request("DELETE", path, options),
};
