//! Integration tests of `raftwatch-alerting`.

mod amconfig;
mod matcher;
mod rules;
mod template;
mod webhook;
