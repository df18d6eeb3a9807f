// The orders API (app/README.md): POST /orders, GET /orders/{id}. Every failure becomes an ApiError
// whose message a person can act on.

export class ApiError extends Error {}

export function apiBase() {
  const raw = import.meta.env.VITE_API_BASE_URL || '';
  return raw.replace(/\/+$/, '');
}

async function call(method, path, body) {
  const base = apiBase();
  if (!base) {
    throw new ApiError('This build has no API URL: rebuild with VITE_API_BASE_URL set.');
  }
  const url = `${base}${path}`;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    // fetch rejects without a status when the request never got an answer the page may read:
    // the API is down or unreachable, its certificate is not trusted, or CORS refused this origin.
    throw new ApiError(
      `Could not reach the orders API at ${base} (${err.message}). It is down or unreachable, its ` +
      `TLS certificate is not trusted, or it does not allow this page's origin ${window.location.origin} ` +
      '(CORS_ALLOW_ORIGINS). The browser console has the details.',
    );
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const code = data && data.error ? data.error : response.statusText;
    let detail = '';
    if (data && Array.isArray(data.detail)) {
      detail = data.detail.map((p) => `${p.field}: ${p.message}`).join('; ');
    } else if (data && data.detail) {
      detail = String(data.detail);
    }
    throw new ApiError(`The orders API answered ${response.status} ${code}${detail ? `: ${detail}` : ''}.`);
  }
  if (data === null) {
    throw new ApiError(`The orders API answered ${response.status} without a JSON body.`);
  }
  return {
    data,
    servedBy: response.headers.get('X-Served-By'),
    cache: response.headers.get('X-Cache'),
    requestId: response.headers.get('X-Request-ID'),
  };
}

export const createOrder = (order) => call('POST', '/orders', order);
export const getOrder = (id) => call('GET', `/orders/${encodeURIComponent(id)}`);
