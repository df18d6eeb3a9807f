'use strict';
// Fixture service for the ec2-fleet node runtime. No dependencies.
//
// Socket activation: when LISTEN_PID is this process and LISTEN_FDS=N, serves HTTP on fds 3..3+N-1
// (TCP or Unix sockets alike); otherwise listens on PORT (default 3000) at HOST (default 127.0.0.1).
// /ready answers 503 when READY_FAIL=1 or a file named READY_FAIL sits next to this script (a
// "broken release" marker that travels with the release instead of the unit's environment).
// SIGTERM/SIGINT: stop accepting, let in-flight requests finish (GRACEFUL_TIMEOUT_SECONDS, default
// 10), exit 0. A request already on its way is still answered: every response after the signal says
// `Connection: close`, and a connection is closed only once it has been quiet for QUIET_MS with no
// request in flight (closing idle connections at once resets a new connection whose request was
// not read yet, and a kept-alive one whose next request is crossing the close).

const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');

const SD_LISTEN_FDS_START = 3;
const version = process.env.APP_VERSION || 'unknown';
const graceMs = 1000 * Number(process.env.GRACEFUL_TIMEOUT_SECONDS || 10);
const debugEndpoints = process.env.APP_DEBUG_ENDPOINTS === '1';
const startedAt = new Date().toISOString();
const QUIET_MS = 500;
let stopping = false;

function log(msg, extra) {
  process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level: 'INFO', msg, pid: process.pid, ...extra }) + '\n');
}

function readyFailure() {
  if (process.env.READY_FAIL === '1') return 'READY_FAIL=1';
  if (fs.existsSync(path.join(__dirname, 'READY_FAIL'))) return 'READY_FAIL marker file';
  return null;
}

function send(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

function handler(req, res) {
  if (stopping) res.setHeader('Connection', 'close');
  const url = new URL(req.url, 'http://localhost');
  const requestId = req.headers['x-request-id'] || '';
  if (requestId) res.setHeader('X-Request-ID', requestId);
  res.on('finish', () => log('request', { method: req.method, path: url.pathname, status: res.statusCode, request_id: requestId }));
  if (req.method !== 'GET') return send(res, 405, { error: 'method_not_allowed' });
  switch (url.pathname) {
    case '/health':
      return send(res, 200, { status: 'ok' });
    case '/ready': {
      const failure = readyFailure();
      return failure ? send(res, 503, { status: 'unready', reason: failure, version })
        : send(res, 200, { status: 'ready', version });
    }
    case '/version':
      return send(res, 200, { service: 'fleet-node-fixture', version, hostname: os.hostname(), pid: process.pid, started_at: startedAt, runtime: `node ${process.version}` });
    case '/debug/sleep':
      if (debugEndpoints) {
        const ms = Math.min(1000 * Number(url.searchParams.get('seconds') || 1), 60000);
        return setTimeout(() => send(res, 200, { slept: ms / 1000, pid: process.pid }), ms);
      }
      break;
    default:
      break;
  }
  return send(res, 404, { error: 'not_found' });
}

function listenTargets() {
  const fds = Number(process.env.LISTEN_FDS || 0);
  if (fds > 0 && Number(process.env.LISTEN_PID) === process.pid) {
    const names = (process.env.LISTEN_FDNAMES || '').split(':');
    delete process.env.LISTEN_FDS;
    delete process.env.LISTEN_PID;
    delete process.env.LISTEN_FDNAMES;
    return Array.from({ length: fds }, (_, i) => ({ fd: SD_LISTEN_FDS_START + i, name: names[i] || `fd${SD_LISTEN_FDS_START + i}` }));
  }
  return [{ port: Number(process.env.PORT || 3000), host: process.env.HOST || '127.0.0.1', name: 'port' }];
}

// Every connection, with whether a request is in flight on it and when it last saw a byte or a response.
const sockets = new Map();
function track(socket) {
  const state = { busy: 0, last: Date.now() };
  sockets.set(socket, state);
  socket.on('data', () => { state.last = Date.now(); });
  socket.on('close', () => sockets.delete(socket));
}

const servers = listenTargets().map((target) => {
  const server = http.createServer(handler);
  server.on('connection', track);
  server.on('request', (req, res) => {
    const state = sockets.get(req.socket);
    if (!state) return;
    state.busy += 1;
    res.on('close', () => { state.busy -= 1; state.last = Date.now(); });
  });
  server.keepAliveTimeout = 75000; // longer than the ALB idle timeout (60 s)
  const spec = target.fd !== undefined ? { fd: target.fd } : { port: target.port, host: target.host };
  server.listen(spec, () => log('listening', { on: target.name, fd: target.fd, port: target.port }));
  server.on('error', (err) => {
    log('listen error', { on: target.name, error: String(err) });
    process.exit(1);
  });
  return server;
});

function closeQuietConnections() {
  const now = Date.now();
  for (const [socket, state] of sockets) {
    if (state.busy === 0 && now - state.last >= QUIET_MS) socket.end();
  }
}

function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  log('shutting down', { signal });
  let open = servers.length;
  const done = () => {
    open -= 1;
    if (open === 0) {
      log('stopped');
      process.exit(0);
    }
  };
  for (const server of servers) {
    // Stop accepting; calls back once every connection has closed. net.Server's close, not
    // http.Server's: since Node 19 that one also closes idle connections at once.
    net.Server.prototype.close.call(server, done);
  }
  setInterval(closeQuietConnections, 100).unref();
  setTimeout(() => {
    log('graceful timeout reached, exiting', { grace_ms: graceMs });
    process.exit(1);
  }, graceMs).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
