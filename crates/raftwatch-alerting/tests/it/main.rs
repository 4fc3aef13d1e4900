//! Integration tests of `raftwatch-alerting`.

mod amconfig;
mod rules;
mod template;
