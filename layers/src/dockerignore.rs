//! `.dockerignore` reading and matching exactly as Docker/BuildKit (moby/patternmatcher).
