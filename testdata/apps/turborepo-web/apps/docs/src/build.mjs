import { mkdirSync, writeFileSync } from "node:fs";
import { marked } from "marked";

mkdirSync("dist", { recursive: true });
writeFileSync("dist/index.html", marked.parse("# Docs\n\nThe web app answers `/api/health`."));
