import { createServer } from "node:http";
import ms from "ms";

const port = Number(process.env.PORT ?? 3000);
createServer((_req, res) => {
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ status: "healthy", started: ms(0) }));
}).listen(port);
