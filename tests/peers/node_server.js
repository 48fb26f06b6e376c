// A backend on Node's `http` module, routing on the raw `req.url` as Node applications do:
// `GET http://host/healthz` does NOT match `/healthz` here.
//
//     node node_server.js NAME [PORT]
//
// Binds 127.0.0.1:PORT (0 by default), prints `listening PORT`, and answers:
//   /healthz        200 "ok", or 503 "sick" once made sick (health checks, not counted)
//   /control/sick   makes /healthz answer 503     (control: for the test, directly)
//   /control/well   makes /healthz answer 200 again
//   /control/count  JSON: requests, health checks, the last target and Host seen, and the
//                   Host of the last health check
//   anything else   200 with NAME as body and `x-backend: NAME` (request bodies are read)
"use strict";
const http = require("http");

const name = process.argv[2];
const port = Number(process.argv[3] || 0);
const state = {
  sick: false, requests: 0, health: 0, health_failed: 0,
  absolute: 0, last_target: "", last_host: "", health_host: "",
};

function reply(res, status, body, type) {
  res.writeHead(status, {
    "content-type": type || "text/plain",
    "content-length": Buffer.byteLength(body),
    "x-backend": name,
  });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const url = req.url;
  if (url === "/healthz") {
    state.health += 1;
    state.health_host = req.headers.host || "";
    state.health_failed += state.sick ? 1 : 0;
    reply(res, state.sick ? 503 : 200, state.sick ? "sick" : "ok");
  } else if (url.startsWith("/control/")) {
    if (url === "/control/sick") state.sick = true;
    if (url === "/control/well") state.sick = false;
    reply(res, 200, JSON.stringify(state), "application/json");
  } else {
    state.requests += 1;
    state.absolute += url.startsWith("/") ? 0 : 1;
    state.last_target = url;
    state.last_host = req.headers.host || "";
    req.resume();
    req.on("end", () => reply(res, 200, name));
  }
});

server.listen(port, "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
