//! Prometheus's own PromQL test scripts (`../shared/promql-testdata`, see
//! its README) run against the engine in-process. Prints pass / fail /
//! beyond per file; fails on any in-scope failure.

use std::path::PathBuf;

use raftwatch_promql::testscript::{Outcome, Script};

/// `testdata` is `$PROMQL_TESTDATA`, else the first `shared/promql-testdata`
/// beside the clone or any folder above it (the steering documents sit
/// beside the checkout), else the copy in `testdata/prometheus`. Missing
/// is a failure, never a skip.
fn testdata() -> PathBuf {
    if let Some(dir) = std::env::var_os("PROMQL_TESTDATA") {
        return PathBuf::from(dir);
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for dir in here.ancestors() {
        let candidate = dir.join("shared/promql-testdata");
        if candidate.is_dir() {
            return candidate;
        }
    }
    // The copy kept in the repository (testdata/prometheus/README.md).
    let vendored = here.join("testdata/prometheus");
    assert!(
        vendored.is_dir(),
        "Prometheus's PromQL test scripts were not found: set PROMQL_TESTDATA, put \
         shared/promql-testdata beside the clone, or restore {}",
        vendored.display()
    );
    vendored
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

/// The same scripts with the data spread over three shards and every
/// eligible aggregation pushed down to them, as the cluster evaluates:
/// partial aggregation must not change a single in-scope answer.
#[test]
fn prometheus_promql_test_scripts_pass_with_pushdown_over_shards() {
    let dir = testdata();
    let mut failures = Vec::new();
    let (mut passed, mut pushdowns) = (0, 0);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        if name == "native_histograms.test" {
            continue;
        }
        let script = Script::parse(&std::fs::read_to_string(f).unwrap()).unwrap();
        let (results, n) = script.run_sharded(3);
        pushdowns += n;
        for r in results {
            match r.outcome {
                Outcome::Pass => passed += 1,
                Outcome::Fail(m) => {
                    failures.push(format!("{name}:{}: {}\n    {m}", r.line, r.expr))
                }
                Outcome::Beyond(..) => {}
            }
        }
    }
    println!(
        "pushdown over 3 shards: {passed} pass, {} fail, {pushdowns} push-downs answered",
        failures.len()
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(
        pushdowns > 200,
        "only {pushdowns} aggregations were pushed down"
    );
    assert!(
        failures.is_empty(),
        "{} in-scope PromQL cases fail with push-down",
        failures.len()
    );
}

/// Where the steering copy is present, the repository's copy is the same
/// (so a CI machine without it runs exactly the same suite).
#[test]
fn the_kept_copy_of_the_scripts_matches_the_steering_copy() {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let kept = here.join("testdata/prometheus");
    let Some(steering) = here
        .ancestors()
        .map(|d| d.join("shared/promql-testdata"))
        .find(|d| d.is_dir())
    else {
        // No steering copy on this machine: nothing to compare with; the
        // suite above runs from the kept copy.
        assert!(kept.is_dir());
        return;
    };
    let names = |dir: &PathBuf| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".test"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&steering),
        names(&kept),
        "refresh testdata/prometheus"
    );
    for n in names(&kept) {
        assert_eq!(
            std::fs::read(steering.join(&n)).unwrap(),
            std::fs::read(kept.join(&n)).unwrap(),
            "{n} differs: refresh testdata/prometheus"
        );
    }
}
