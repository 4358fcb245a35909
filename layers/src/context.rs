//! The build context: a sorted walk confined to the root, filtered by `.dockerignore`.
