//! Hash lists end to end: real vPDQ files, `hashgate lookup`, hot reload under concurrent
//! lookups, broken files keeping the old list, and a hash appended to a watched file becoming
//! matchable.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hashgate::hash::pdq::PdqHash;
use hashgate::matcher::list::{HashList, ListSettings};
use hashgate::matcher::Matcher;

fn random_hash(seed: &mut u64) -> PdqHash {
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    };
    PdqHash([next(), next(), next(), next()])
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A TSV list of `n` random hashes labelled `label`, plus `extra` lines.
fn tsv(seed: &mut u64, n: usize, label: &str, extra: &[PdqHash]) -> String {
    let mut text = String::new();
    for _ in 0..n {
        text.push_str(&format!("{}\t100\t{label}\n", random_hash(seed)));
    }
    for h in extra {
        text.push_str(&format!("{h}\t100\t{label}\n"));
    }
    text
}

#[test]
fn vpdq_sample_hashes_load_and_match_themselves() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/vpdq/sample-hashes");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "SKIPPED: {} is absent, vPDQ list test did not run",
            dir.display()
        );
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read");
        let mut settings = ListSettings::for_path(&file);
        settings.min_quality = 0;
        let list = HashList::load(settings).unwrap_or_else(|e| panic!("{e}"));
        let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
        assert_eq!(list.len(), lines, "{}", file.display());
        // A frame's own hash finds its own line at distance 0, labelled by file and time.
        let first = text.lines().next().expect("a line");
        let hash: PdqHash = first
            .split(',')
            .nth(2)
            .expect("hash field")
            .parse()
            .expect("hex");
        let matches = list.lookup_pdq(&[hash], Some(0));
        let stem = file.file_stem().and_then(|s| s.to_str()).expect("stem");
        assert!(
            matches
                .iter()
                .any(|m| m.source.ends_with(":1") && m.label == format!("{stem}@0.000s")),
            "{matches:?}"
        );
    }
}

#[test]
fn lookup_prints_one_json_line_per_query_in_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let list = dir.path().join("known.tsv");
    let mut seed = 99;
    let (a, b) = (random_hash(&mut seed), random_hash(&mut seed));
    std::fs::write(
        &list,
        format!("# two clips\n{a}\t100\tclip-a\n{b}\t100\tclip-b\n"),
    )
    .expect("write");
    let mut near_a = a;
    near_a.0[0] ^= 0b1011; // 3 bits away
    let mut child = Command::new(env!("CARGO_BIN_EXE_hashgate"))
        .args(["lookup", "--list"])
        .arg(&list)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("lookup");
    let queries = format!("{b}\n{near_a}\n{}\n", random_hash(&mut seed));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(queries.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("{\"query\":"));
    assert_eq!(lines[0]["query"], b.to_string());
    assert_eq!(lines[0]["matches"][0]["label"], "clip-b");
    assert_eq!(lines[1]["matches"][0]["distance"], 3);
    assert_eq!(
        lines[1]["matches"][0]["source"],
        format!("{}:2", list.display())
    );
    assert_eq!(lines[2]["matches"].as_array().map(Vec::len), Some(0));
}

#[test]
fn reload_under_concurrent_lookups_never_tears_and_broken_files_keep_the_old_list() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("list.tsv");
    let mut seed = 7;
    let probe = random_hash(&mut seed);
    // Each version holds 5000 entries (indexed, not scanned) and the probe, all labelled vN.
    write_atomically(&path, &tsv(&mut seed, 5000, "v0", &[probe]));
    let matcher = Arc::new(Matcher::load(vec![ListSettings::for_path(&path)]).expect("load"));

    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (matcher, stop, lookups) = (matcher.clone(), stop.clone(), lookups.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let lists = matcher.lists();
                    let matches = lists[0].lookup_pdq(&[probe], Some(0));
                    assert_eq!(matches.len(), 1, "the probe is in every version");
                    // Every entry of one snapshot carries the same version label.
                    let all = lists[0].lookup_pdq(&[probe], Some(256));
                    let version = &all[0].label;
                    assert!(all.iter().all(|m| &m.label == version), "torn read");
                    lookups.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for v in 1..=6 {
        write_atomically(&path, &tsv(&mut seed, 5000, &format!("v{v}"), &[probe]));
        let report = matcher.reload(hashgate::matcher::ReloadOptions::ALL);
        assert!(report[0].result.is_ok(), "{:?}", report[0].result);
    }
    let before = matcher.lists()[0].lookup_pdq(&[probe], Some(0))[0]
        .label
        .clone();
    assert_eq!(before, "v6");

    // A broken file: rejected with file:line, the old list stays in force.
    let mut broken = tsv(&mut seed, 10, "v7", &[probe]);
    broken.push_str("this is not a hash\t100\tv7\n");
    write_atomically(&path, &broken);
    let report = matcher.reload(hashgate::matcher::ReloadOptions::ALL);
    let err = report[0].result.as_ref().expect_err("broken list rejected");
    assert_eq!(err.line, 12);
    assert!(err.to_string().contains("list.tsv:12:"), "{err}");
    assert_eq!(
        matcher.lists()[0].lookup_pdq(&[probe], Some(0))[0].label,
        "v6"
    );
    assert_eq!(matcher.lists()[0].len(), 5001);

    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader thread passed");
    }
    assert!(lookups.load(Ordering::Relaxed) > 0);
}

#[test]
fn hash_appended_to_a_watched_file_becomes_matchable() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("watched.txt");
    let mut seed = 3;
    let mut text = String::new();
    for _ in 0..100 {
        text.push_str(&format!("{}\n", random_hash(&mut seed)));
    }
    std::fs::write(&path, &text).expect("write");
    let matcher = Arc::new(Matcher::load(vec![ListSettings::for_path(&path)]).expect("load"));
    let _watch = matcher.watch(Duration::from_millis(250)).expect("watcher");
    let fresh = random_hash(&mut seed);
    assert!(matcher.lists()[0].lookup_pdq(&[fresh], Some(0)).is_empty());

    let appended = Instant::now();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open");
    writeln!(file, "{fresh}").expect("append");
    drop(file);
    // The bound is 1 s; polled with a generous timeout so a loaded machine cannot fail it.
    let deadline = appended + Duration::from_secs(10);
    loop {
        if !matcher.lists()[0].lookup_pdq(&[fresh], Some(0)).is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "appended hash never became matchable"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("appended hash matchable after {:?}", appended.elapsed());
}
