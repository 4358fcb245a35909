module.exports = { output: 'standalone', generateBuildId: async () => process.env.GIT_SHA ?? 'release' };
