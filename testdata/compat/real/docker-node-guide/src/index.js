const http = require("http");
const ms = require("ms");
const port = process.env.PORT || 3000;
http
  .createServer((req, res) => {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ status: "healthy", uptime: ms(Math.round(process.uptime() * 1000)) }));
  })
  .listen(port, () => console.log(`listening on ${port}`));
