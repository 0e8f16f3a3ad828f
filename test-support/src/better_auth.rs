//! Better Auth harness (below).
