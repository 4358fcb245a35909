import path from "node:path";
import { fileURLToPath } from "node:url";

/** @type {import("next").NextConfig} */
const nextConfig = {
  output: "standalone",
  // Trace files from this directory only, wherever the app sits (a monorepo, /app in the image).
  outputFileTracingRoot: path.dirname(fileURLToPath(import.meta.url)),
  poweredByHeader: false,
  // A fixed build id keeps BUILD_ID and everything embedding it identical across builds.
  generateBuildId: async () => "release-notes",
};

export default nextConfig;
