//! Prometheus's own PromQL test scripts (`../shared/promql-testdata`, see
//! its README) run against the engine in-process. Prints pass / fail /
//! beyond per file; fails on any in-scope failure.

use std::path::PathBuf;

use raftwatch_promql::testscript::{Outcome, Script};

fn testdata() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // crates/raftwatch-promql -> the clone's parent holds `shared/`.
    for dir in [
        here.join("../../../shared/promql-testdata"),
        here.join("../../shared/promql-testdata"),
    ] {
        if dir.is_dir() {
            return dir;
        }
    }
    panic!("promql-testdata not found beside the clone");
}

#[test]
fn prometheus_promql_test_scripts_pass() {
    let dir = testdata();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "only {} test files in {}",
        files.len(),
        dir.display()
    );
    // PROMQL_VERBOSE=1 also lists the out-of-scope cases that fail.
    let verbose = std::env::var_os("PROMQL_VERBOSE").is_some();
    let mut failures = Vec::new();
    let (mut tp, mut tf, mut tbp, mut tbf) = (0, 0, 0, 0);
    println!(
        "{:<28} {:>6} {:>6} {:>14}",
        "file", "pass", "fail", "beyond (p/f)"
    );
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(f).unwrap();
        let script = match Script::parse(&text) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{name}: does not parse: {e}"));
                continue;
            }
        };
        let whole_file_beyond = name == "native_histograms.test";
        let (mut p, mut fl, mut bp, mut bf) = (0, 0, 0, 0);
        for r in script.run() {
            match r.outcome {
                Outcome::Pass if whole_file_beyond => bp += 1,
                Outcome::Fail(_) if whole_file_beyond => bf += 1,
                Outcome::Pass => p += 1,
                Outcome::Fail(m) => {
                    fl += 1;
                    failures.push(format!("{name}:{}: {}\n    {m}", r.line, r.expr));
                }
                Outcome::Beyond(_, true) => bp += 1,
                Outcome::Beyond(why, false) => {
                    bf += 1;
                    if verbose {
                        println!("BEYOND {name}:{}: {}\n    {why}", r.line, r.expr);
                    }
                }
            }
        }
        println!("{name:<28} {p:>6} {fl:>6} {:>14}", format!("{bp}/{bf}"));
        (tp, tf, tbp, tbf) = (tp + p, tf + fl, tbp + bp, tbf + bf);
    }
    println!(
        "{:<28} {tp:>6} {tf:>6} {:>14}",
        "total",
        format!("{tbp}/{tbf}")
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(
        failures.is_empty(),
        "{} in-scope PromQL cases fail",
        failures.len()
    );
}
