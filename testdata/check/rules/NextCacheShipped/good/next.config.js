module.exports = { output: 'standalone', generateBuildId: async () => 'release' };
