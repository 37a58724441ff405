// The console's only way to the service: GraphQL over HTTP, and the activity
// subscription over WebSocket (graphql-transport-ws).

const KEY = "em.key";
const TENANT = "em.tenant";

export const session = {
  get key() {
    return sessionStorage.getItem(KEY);
  },
  get tenant() {
    return sessionStorage.getItem(TENANT);
  },
  set key(value) {
    store(KEY, value);
  },
  set tenant(value) {
    store(TENANT, value);
  },
  clear() {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(TENANT);
  },
};

function store(name, value) {
  if (value) sessionStorage.setItem(name, value);
  else sessionStorage.removeItem(name);
}

/** A GraphQL error: `code` is extensions.code, `field` the input path it names. */
export class ApiError extends Error {
  constructor(message, { code = "INTERNAL", field = null, errors = [] } = {}) {
    super(message);
    this.code = code;
    this.field = field;
    this.errors = errors;
  }
}

function credentials() {
  const headers = {};
  if (session.key) headers.Authorization = `Bearer ${session.key}`;
  if (session.tenant) headers["X-Tenant"] = session.tenant;
  return headers;
}

/** Runs one operation; resolves to its data or throws an ApiError. */
export async function gql(query, variables = {}) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json", ...credentials() },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("The service does not answer. Check your connection.", { code: "UNAVAILABLE" });
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`The service answered ${response.status} ${response.statusText}.`, {
      code: response.status === 413 ? "BAD_USER_INPUT" : "INTERNAL",
    });
  }
  if (body.errors?.length) {
    const [first] = body.errors;
    const ext = first.extensions || {};
    throw new ApiError(first.message, { code: ext.code, field: ext.field, errors: body.errors });
  }
  return body.data;
}

/**
 * A live subscription that reconnects by itself. `onData(data)` gets each payload,
 * `onState(state)` one of "connecting", "live", "offline"; `onReady()` runs after each
 * (re)subscription, so the caller can reload what it may have missed.
 * Returns a function that closes it.
 */
export function subscribe(query, variables, { onData, onState = () => {}, onReady = () => {}, onError = () => {} }) {
  let socket = null;
  let closed = false;
  let retry = 0;
  let timer = null;

  const connect = () => {
    onState("connecting");
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
    socket = new WebSocket(url, "graphql-transport-ws");
    socket.onopen = () => {
      socket.send(JSON.stringify({ type: "connection_init", payload: credentials() }));
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      switch (message.type) {
        case "connection_ack":
          retry = 0;
          socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables } }));
          onState("live");
          onReady();
          break;
        case "ping":
          socket.send(JSON.stringify({ type: "pong" }));
          break;
        case "next":
          if (message.payload.errors?.length) {
            const ext = message.payload.errors[0].extensions || {};
            onError(new ApiError(message.payload.errors[0].message, { code: ext.code, field: ext.field }));
          } else {
            onData(message.payload.data);
          }
          break;
        case "error": {
          const [first] = message.payload || [];
          const ext = first?.extensions || {};
          onError(new ApiError(first?.message || "subscription refused", { code: ext.code, field: ext.field }));
          closed = true;
          socket.close();
          onState("offline");
          break;
        }
        default:
          break;
      }
    };
    socket.onclose = () => {
      if (closed) return;
      onState("offline");
      retry = Math.min(retry + 1, 6);
      timer = setTimeout(connect, 500 * 2 ** (retry - 1));
    };
  };
  connect();
  return () => {
    closed = true;
    clearTimeout(timer);
    if (socket && socket.readyState <= WebSocket.OPEN) {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ id: "1", type: "complete" }));
      socket.close(1000);
    }
  };
}

/** Field lists shared by the pages. */
export const ACTION_FIELDS = `
  id name description method url
  query { key value enabled } headers { key value enabled }
  bodyType bodyFields { key value enabled } rawBody rawContentType
  authorization { type apiKeyName apiKeyValue apiKeyIn username password token }
  timeoutSeconds signingSecret caCertificate policy { order expireAfterSeconds maxRequestsPerSecond }
  events undefinedParameters origin createdAt updatedAt`;

export const ACTIVITY_FIELDS = `
  id triggerId event source actionId actionName status message attempts httpStatus
  request { method url headers { key value enabled } body } responseSnippet unresolvedParameters
  emptyParameters createdAt updatedAt`;

export const MASK = "********";
