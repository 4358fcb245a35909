module.exports = { generateBuildId: async () => 'release' };
