const path = require("node:path");

/** @type {import("next").NextConfig} */
module.exports = {
  output: "standalone",
  // Trace from the monorepo root, so the standalone output holds apps/web/server.js and the hoisted node_modules.
  outputFileTracingRoot: path.join(__dirname, "../../"),
  transpilePackages: ["@repo/ui"],
  poweredByHeader: false,
  // A fixed build id keeps BUILD_ID and everything embedding it identical across builds.
  generateBuildId: async () => "turborepo-web",
};
