//! raftwatch-tests: workspace-level tests live in `it/`; this library is
//! empty on purpose (a package needs a target).
