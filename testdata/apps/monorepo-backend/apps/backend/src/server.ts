import express from "express";
import { health, parsePort } from "@acme/shared";

const app = express();
app.disable("x-powered-by");
app.use(express.json());

const orders = new Map<string, { id: string; items: string[] }>();

app.get("/api/health", (_req, res) => {
  res.json(health());
});

app.get("/api/orders/:id", (req, res) => {
  const order = orders.get(req.params.id);
  if (!order) {
    res.status(404).json({ error: `no order ${req.params.id}` });
    return;
  }
  res.json(order);
});

app.post("/api/orders", (req, res) => {
  const items: unknown = req.body?.items;
  if (!Array.isArray(items) || !items.every((item) => typeof item === "string")) {
    res.status(400).json({ error: "items must be an array of strings" });
    return;
  }
  const id = String(orders.size + 1);
  orders.set(id, { id, items });
  res.status(201).json({ id });
});

const port = parsePort(process.env.PORT, 4000);
const host = process.env.HOST ?? "0.0.0.0";
const server = app.listen(port, host, () => {
  console.log(`backend listening on ${host}:${port}`);
});

// Stop accepting connections on SIGTERM so the container stops promptly.
process.on("SIGTERM", () => server.close(() => process.exit(0)));
