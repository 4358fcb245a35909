// Local development config. The container build replaces this file with the heredoc in the
// Dockerfile (builder stage), exactly as the Traffic Control Plane deployment does.
/** @type {import("next").NextConfig} */
module.exports = {
  reactStrictMode: true,
  poweredByHeader: false,
  // A fixed build id keeps .next/BUILD_ID and every file embedding it identical across builds.
  generateBuildId: async () => "traffic-control-plane",
};
