// Bundles src/main.ts with esbuild and copies the static files into dist/.
import { build } from "esbuild";
import { copyFile, mkdir, rm } from "node:fs/promises";

await rm("dist", { recursive: true, force: true });
await mkdir("dist", { recursive: true });
await build({
  entryPoints: ["src/main.ts"],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2022",
  outfile: "dist/app.js",
  legalComments: "none",
});
await copyFile("src/index.html", "dist/index.html");
await copyFile("src/style.css", "dist/style.css");
