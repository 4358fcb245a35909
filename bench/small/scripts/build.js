// Builds dist/ from src/: one page per entry of a generated catalogue, an index linking them, and a
// search index (JSON). Deterministic: the same sources give the same bytes. Enough work (a few
// thousand files, ~20 MB, ~1-2 s of node) that a builder's capture and layer write show.
"use strict";
const fs = require("fs");
const path = require("path");
const crypto = require("crypto");

const root = path.join(__dirname, "..");
const out = path.join(root, "dist");
const template = fs.readFileSync(path.join(root, "src", "index.html"), "utf8");
const PAGES = 3000;

fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(path.join(out, "items"), { recursive: true });

const index = [];
let links = "";
for (let i = 0; i < PAGES; i++) {
  // A page body derived from the template and the page number (hashing stands in for real rendering work).
  let h = crypto.createHash("sha256").update(template).update(String(i)).digest("hex");
  let body = "";
  for (let k = 0; k < 100; k++) {
    h = crypto.createHash("sha256").update(h).digest("hex");
    body += `<p id="p${k}">${h}</p>\n`;
  }
  const name = `item-${String(i).padStart(5, "0")}.html`;
  fs.writeFileSync(path.join(out, "items", name), template.replace("<!-- pages -->", body));
  index.push({ page: name, key: h.slice(0, 16) });
  links += `<li><a href="items/${name}">${name}</a></li>\n`;
}
fs.writeFileSync(path.join(out, "index.html"), template.replace("<!-- pages -->", `<ul>\n${links}</ul>`));
fs.writeFileSync(path.join(out, "search.json"), JSON.stringify(index));
console.log(`built ${PAGES} pages into ${path.relative(root, out)}`);
