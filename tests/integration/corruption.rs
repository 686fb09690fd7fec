//! A damaged store is never served: random damage (truncation, bit flips, zeroed
//! ranges, deleted files) to a copy of a real store, then the real `weir serve` on it.
//! Each trial must end in one of: the broker refuses to start with one line naming
//! the data dir and the way out; or it starts and every record it serves is exactly
//! what was published, with damage answered as an error, never as a short or empty
//! read. Damaged stores then go through `weir store recover`, after which the broker
//! starts and serves the intact prefix.
//!
//! `WEIR_CORRUPTION_TRIALS=N` runs more trials than the default.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Api, ServerProcess, WEIR, http_client};

const TOPICS: [(&str, u32, &str); 2] = [("orders", 3, "delete"), ("users", 1, "compact")];
const RECORDS_PER_PARTITION: usize = 1500;

/// The value of record `i` of a partition: distinct per position, ~200 bytes.
fn value_of(topic: &str, p: u32, i: usize) -> String {
    format!("{topic}/{p}/{i}/{}", "v".repeat(180 + i % 13))
}

/// Builds the pristine store with a real broker, stopped cleanly.
async fn pristine() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let api = server.client();
    for (topic, partitions, policy) in TOPICS {
        api.create_topic(
            topic,
            json!({ "partitions": partitions, "cleanup_policy": policy }),
        )
        .await;
        for p in 0..partitions {
            for start in (0..RECORDS_PER_PARTITION).step_by(100) {
                let records: Vec<_> = (start..start + 100)
                    .map(|i| {
                        json!({ "key": format!("{topic}-{p}-{i}"), "value": value_of(topic, p, i), "partition": p })
                    })
                    .collect();
                api.publish(topic, json!(records)).await;
            }
        }
    }
    assert!(server.terminate().success());
    dir
}

/// Small deterministic PRNG (xorshift64*), so a failing trial can be replayed by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Damages one file of `data` at random; returns what was done.
fn damage(data: &Path, rng: &mut Rng) -> String {
    let all = files(data);
    // Most trials hit sled's log, where the records are.
    let db: Vec<_> = all.iter().filter(|f| f.ends_with("db")).collect();
    let file = if !db.is_empty() && rng.below(10) < 6 {
        db[0].clone()
    } else {
        all[rng.below(all.len() as u64) as usize].clone()
    };
    let name = file.strip_prefix(data).unwrap().display().to_string();
    let mut bytes = std::fs::read(&file).unwrap();
    let len = bytes.len() as u64;
    match rng.below(4) {
        0 => {
            let to = rng.below(len);
            bytes.truncate(to as usize);
            std::fs::write(&file, &bytes).unwrap();
            format!("truncated {name} from {len} to {to} bytes")
        }
        1 => {
            let flips = 1 + rng.below(8);
            for _ in 0..flips {
                if len > 0 {
                    let at = rng.below(len) as usize;
                    bytes[at] ^= 1 << rng.below(8);
                }
            }
            std::fs::write(&file, &bytes).unwrap();
            format!("flipped {flips} bits in {name}")
        }
        2 => {
            let (from, span) = if rng.below(4) == 0 {
                (0, len)
            } else {
                let span = (4096 << rng.below(5)).min(len);
                (rng.below(len - span + 1), span)
            };
            bytes[from as usize..(from + span) as usize].fill(0);
            std::fs::write(&file, &bytes).unwrap();
            format!("zeroed {span} bytes of {name} at {from}")
        }
        _ => {
            std::fs::remove_file(&file).unwrap();
            format!("deleted {name}")
        }
    }
}

/// `weir serve` on `dir`: the server once it listens, or its exit and log lines.
fn try_serve(dir: &Path) -> Result<(Child, String), (std::process::ExitStatus, Vec<String>)> {
    let mut child = Command::new(WEIR)
        .args(["serve", "--listen", "127.0.0.1:0", "--log", "info"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--plugin-dir")
        .arg(dir.join("plugins"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                if let Some(addr) = line.split("listen=").nth(1) {
                    let addr = addr.split_whitespace().next().unwrap().to_string();
                    return Ok((child, format!("http://{addr}")));
                }
                lines.push(line);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err((child.wait().unwrap(), lines));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("weir serve neither served nor exited within 60 s: {lines:?}");
            }
        }
    }
}

#[derive(Default, Debug)]
struct Served {
    records: u64,
    /// Partitions whose reads stopped at a storage error.
    errors: u64,
    corrupted: u64,
    /// Partitions that ended early without an error (a short read).
    short: u64,
}

/// Reads every partition from its log start; compares each record with what was
/// published.
async fn read_all(api: &Api) -> Served {
    let mut s = Served::default();
    for (topic, partitions, _) in TOPICS {
        for p in 0..partitions {
            let mut offset = api.offsets(topic, p as usize).await.0;
            loop {
                let r = api.fetch(topic, p, offset).await;
                if r.status != 200 {
                    assert_eq!(r.status, 500, "{}", r.body);
                    assert_eq!(r.body["code"], "storage_corrupt", "{}", r.body);
                    s.errors += 1;
                    break;
                }
                let records = r.body["records"].as_array().unwrap();
                for rec in records {
                    let o = rec["offset"].as_u64().unwrap() as usize;
                    let want_key = format!("{topic}-{p}-{o}");
                    if rec["key"] != want_key.as_str()
                        || rec["value"] != value_of(topic, p, o).as_str()
                    {
                        s.corrupted += 1;
                    }
                    s.records += 1;
                }
                offset = r.body["next_offset"].as_u64().unwrap();
                if offset >= r.body["high_watermark"].as_u64().unwrap() {
                    if offset < RECORDS_PER_PARTITION as u64 {
                        s.short += 1;
                    }
                    break;
                }
                if records.is_empty() {
                    s.short += 1;
                    break;
                }
            }
        }
    }
    s
}

fn kill(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn weir_store(action: &str, data: &Path) -> (bool, String) {
    let out = Command::new(WEIR)
        .args(["store", action])
        .arg(data)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn random_damage_is_refused_or_reported_never_served() {
    let trials: u64 = std::env::var("WEIR_CORRUPTION_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let pristine = pristine().await;
    let (clean, report) = weir_store("verify", &pristine.path().join("data"));
    assert!(clean, "the pristine store verifies: {report}");
    let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
    let mut served_total = 0;
    let mut corrupted_total = 0;
    let started = Instant::now();
    for seed in 1..=trials {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed.wrapping_mul(0x1000_0000_01b3));
        let trial = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), trial.path());
        let data = trial.path().join("data");
        let what = damage(&data, &mut rng);
        let ctx = format!("trial {seed}: {what}");
        eprintln!("{ctx}");
        // sled's recovery rewrites what it opens, so `verify` gets a copy of its own.
        let verify_copy = tempfile::tempdir().unwrap();
        copy_dir(&data, verify_copy.path());
        let (verified, verify_report) = weir_store("verify", verify_copy.path());
        drop(verify_copy);
        let detected = match try_serve(trial.path()) {
            Err((status, lines)) => {
                // Refused: non-zero exit, and the last line names the dir and the way out.
                assert!(!status.success(), "{ctx}");
                let last = lines.last().cloned().unwrap_or_default();
                assert!(
                    last.contains(&data.display().to_string()),
                    "{ctx}: the refusal names the data dir: {lines:?}"
                );
                assert!(
                    last.contains("weir store recover") || last.contains("restore"),
                    "{ctx}: the refusal says the way out: {lines:?}"
                );
                assert!(
                    !verified,
                    "{ctx}: refused to start but verify passed: {verify_report}"
                );
                eprintln!("  refused: {last}");
                *outcomes.entry("refused to start").or_default() += 1;
                true
            }
            Ok((child, url)) => {
                let api = Api {
                    url,
                    http: http_client(),
                };
                let served = read_all(&api).await;
                kill(child);
                served_total += served.records;
                corrupted_total += served.corrupted;
                assert_eq!(
                    served.corrupted, 0,
                    "{ctx}: corrupted records served: {served:?}"
                );
                assert_eq!(served.short, 0, "{ctx}: a short read: {served:?}");
                if served.errors > 0 {
                    assert!(!verified, "{ctx}: reads failed but verify passed");
                    *outcomes
                        .entry("served; damage answered 500 storage_corrupt")
                        .or_default() += 1;
                    true
                } else {
                    *outcomes.entry("served everything intact").or_default() += 1;
                    false
                }
            }
        };
        if !detected {
            continue;
        }
        // The way out: recover, then the broker starts and serves the intact prefix.
        let (recovered, recover_report) = weir_store("recover", &data);
        if !recovered {
            eprintln!(
                "  unrecoverable: {}",
                recover_report.trim().replace('\n', " | ")
            );
            assert!(
                recover_report.contains("restore the data dir from a backup"),
                "{ctx}: {recover_report}"
            );
            *outcomes
                .entry("  then: the engine's files are unreadable (restore)")
                .or_default() += 1;
            continue;
        }
        let (child, url) = try_serve(trial.path())
            .unwrap_or_else(|e| panic!("{ctx}: no start after recover ({recover_report}): {e:?}"));
        let api = Api {
            url,
            http: http_client(),
        };
        eprintln!(
            "  recovered: {}",
            recover_report.trim().replace('\n', " | ")
        );
        let mut served = Served::default();
        for (topic, partitions, _) in TOPICS {
            if api.get(&format!("/v1/topics/{topic}")).await.status != 200 {
                continue; // the topic was lost whole; recover reported it
            }
            for p in 0..partitions {
                let (start, hw) = api.offsets(topic, p as usize).await;
                let all = api.fetch_all(topic, p, start).await;
                for rec in &all {
                    let o = rec["offset"].as_u64().unwrap() as usize;
                    if rec["value"] != value_of(topic, p, o).as_str() {
                        served.corrupted += 1;
                    }
                }
                served.records += all.len() as u64;
                assert!(all.len() as u64 <= hw - start, "{ctx}");
            }
        }
        kill(child);
        assert_eq!(
            served.corrupted, 0,
            "{ctx}: corrupted after recover: {recover_report}"
        );
        served_total += served.records;
        let total =
            TOPICS.iter().map(|t| u64::from(t.1)).sum::<u64>() * RECORDS_PER_PARTITION as u64;
        let kept = match served.records {
            n if n == total => "  then: recovered with every record",
            0 => "  then: recovered empty (sled lost its log; only a backup has the data)",
            _ => "  then: recovered, truncated to the intact prefix",
        };
        *outcomes.entry(kept).or_default() += 1;
    }
    eprintln!(
        "corruption: {trials} trials in {:.1?}; {served_total} records served, {corrupted_total} \
         corrupted; outcomes: {outcomes:#?}",
        started.elapsed()
    );
}
