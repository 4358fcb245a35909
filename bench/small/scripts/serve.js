// Serves dist/ on $PORT (default 8080); /api/health answers for the image's health check.
"use strict";
const http = require("http");
const fs = require("fs");
const path = require("path");

const dist = path.join(__dirname, "..", "dist");
http
  .createServer((req, res) => {
    if (req.url === "/api/health") {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end('{"status":"healthy"}');
    }
    const file = path.normalize(path.join(dist, req.url === "/" ? "index.html" : req.url));
    if (!file.startsWith(dist + path.sep)) {
      res.writeHead(404);
      return res.end();
    }
    fs.readFile(file, (err, data) => {
      res.writeHead(err ? 404 : 200);
      res.end(err ? "" : data);
    });
  })
  .listen(Number(process.env.PORT) || 8080);
