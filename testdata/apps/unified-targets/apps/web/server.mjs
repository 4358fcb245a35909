// Zero-dependency static server for the web target: serves ./public, answers /api/health.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";

const ROOT = process.env.WEB_ROOT ?? new URL("./public/", import.meta.url).pathname;
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css" };

const server = createServer(async (req, res) => {
  const path = new URL(req.url ?? "/", "http://localhost").pathname;
  if (path === "/api/health") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify({ status: "healthy" }));
  }
  // normalize() resolves "..": refuse anything that would leave ROOT.
  const relative = normalize(path === "/" ? "/index.html" : path);
  if (relative.includes("..")) {
    res.writeHead(400);
    return res.end();
  }
  try {
    const body = await readFile(join(ROOT, relative));
    res.writeHead(200, { "content-type": TYPES[extname(relative)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404, { "content-type": "text/plain" });
    res.end("not found\n");
  }
});
const port = Number(process.env.PORT ?? 8081);
server.listen(port, process.env.HOST ?? "0.0.0.0", () => console.log(`web listening on ${port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
