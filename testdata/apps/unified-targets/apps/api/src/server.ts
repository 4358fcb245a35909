import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { z } from "zod";

/** An asset as the API stores it. */
const Asset = z.object({
  tag: z.string().regex(/^[A-Z]{2}-\d{4}$/, "tag looks like AB-1234"),
  name: z.string().min(1).max(80),
  location: z.string().min(1),
});
type Asset = z.infer<typeof Asset>;

const assets = new Map<string, Asset>([["LP-0001", { tag: "LP-0001", name: "Laptop", location: "HQ" }]]);
const MAX_BODY = 64 * 1024;

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) {
      throw new Error(`body larger than ${MAX_BODY} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (req.method === "GET" && url.pathname === "/api/health") {
    return send(res, 200, { status: "healthy" });
  }
  if (req.method === "GET" && url.pathname === "/api/assets") {
    return send(res, 200, [...assets.values()]);
  }
  if (req.method === "POST" && url.pathname === "/api/assets") {
    let body: unknown;
    try {
      body = await readJson(req);
    } catch (err) {
      return send(res, 400, { error: `invalid request body: ${(err as Error).message}` });
    }
    const parsed = Asset.safeParse(body);
    if (!parsed.success) {
      return send(res, 422, { error: parsed.error.issues.map((issue) => issue.message) });
    }
    assets.set(parsed.data.tag, parsed.data);
    return send(res, 201, parsed.data);
  }
  send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
}

const port = Number(process.env.PORT ?? 8080);
const server = createServer((req, res) => {
  handle(req, res).catch((err) => send(res, 500, { error: String(err) }));
});
server.listen(port, process.env.HOST ?? "0.0.0.0", () => console.log(`api listening on ${port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
