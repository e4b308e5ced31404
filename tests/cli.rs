//! End-to-end: the built binary run as a user would, against copies of the fixture lake.

mod support;

use std::path::Path;
use support::lake::{
    entries, fixture_copy, processes_json, run, sha256_hex, stderr, stdout, write_perfetto,
};

/// The payload file of one of the process's blocks.
fn a_block_payload(lake: &Path, process_id: &str) -> std::path::PathBuf {
    let first_entry = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    };
    first_entry(&first_entry(&lake.join("blobs").join(process_id)))
}

fn fixture_process_ids(lake: &Path) -> Vec<String> {
    processes_json(lake)
        .iter()
        .map(|p| p["process_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn processes_lists_the_fixture_processes_newest_first_as_json_and_table() {
    let lake = fixture_copy();
    let output = run(
        &[
            "processes",
            "--json",
            "--lake",
            lake.path().to_str().unwrap(),
        ],
        lake.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(list.len() >= 2, "fixture has at least two processes");
    let starts: Vec<&str> = list
        .iter()
        .map(|p| p["start_time"].as_str().unwrap())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(starts, sorted, "newest first");
    for p in &list {
        assert!(p["thread_streams"].as_i64().unwrap() >= 1);
        assert!(p["blocks"].as_i64().unwrap() >= 1);
        assert!(!p["exe"].as_str().unwrap().is_empty());
    }
    let table = run(
        &["processes", "--lake", lake.path().to_str().unwrap()],
        lake.path(),
    );
    let text = stdout(&table);
    for p in &list {
        assert!(text.contains(p["process_id"].as_str().unwrap()));
    }
    let limited = run(
        &[
            "processes",
            "--json",
            "--limit",
            "1",
            "--lake",
            lake.path().to_str().unwrap(),
        ],
        lake.path(),
    );
    assert_eq!(
        serde_json::from_slice::<Vec<serde_json::Value>>(&limited.stdout)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn json_summary_describes_the_written_file() {
    let lake = fixture_copy();
    let id = &fixture_process_ids(lake.path())[0];
    let out = tempfile::tempdir().unwrap();
    let trace = out.path().join("t.perfetto-trace");
    let output = run(
        &[
            id,
            "--lake",
            lake.path().to_str().unwrap(),
            "--json",
            "-o",
            trace.to_str().unwrap(),
        ],
        out.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let bytes = std::fs::read(&trace).unwrap();
    assert_eq!(summary["process_id"], id.as_str());
    assert_eq!(summary["bytes"].as_u64().unwrap(), bytes.len() as u64);
    assert_eq!(summary["sha256"].as_str().unwrap(), sha256_hex(&bytes));
    assert_eq!(summary["output"].as_str().unwrap(), trace.to_str().unwrap());
    assert!(summary["thread_tracks"].as_u64().unwrap() >= 1);
    assert!(summary["spans"]["thread"].as_u64().unwrap() > 0);
    for key in [
        "exe",
        "async_tracks",
        "clipped",
        "unfinished",
        "partitions_reused",
        "partitions_built",
        "partition_files_read",
        "partition_bytes_read",
        "elapsed_ms",
    ] {
        assert!(summary.get(key).is_some(), "summary has {key}");
    }
    assert_eq!(
        entries(out.path()),
        vec!["t.perfetto-trace"],
        "no temporary file left"
    );
}

#[test]
fn stdout_stays_empty_without_json_and_default_output_is_named_after_the_process() {
    let lake = fixture_copy();
    let id = &fixture_process_ids(lake.path())[0];
    let out = tempfile::tempdir().unwrap();
    let output = run(&[id, "--lake", lake.path().to_str().unwrap()], out.path());
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stdout.is_empty(), "stdout: {}", stdout(&output));
    assert_eq!(entries(out.path()), vec![format!("{id}.perfetto-trace")]);
}

#[test]
fn trace_to_stdout_equals_trace_to_file() {
    let lake = fixture_copy();
    let id = &fixture_process_ids(lake.path())[0];
    let out = tempfile::tempdir().unwrap();
    let to_stdout = run(
        &[id, "--lake", lake.path().to_str().unwrap(), "-o", "-"],
        out.path(),
    );
    assert!(to_stdout.status.success());
    let to_file = run(
        &[
            id,
            "--lake",
            lake.path().to_str().unwrap(),
            "-q",
            "-o",
            "f.pftrace",
        ],
        out.path(),
    );
    assert!(to_file.status.success());
    assert_eq!(
        to_stdout.stdout,
        std::fs::read(out.path().join("f.pftrace")).unwrap()
    );
}

#[test]
fn a_gz_output_is_the_same_trace_gzip_compressed_to_the_same_bytes_every_time() {
    let lake = fixture_copy();
    let list = processes_json(lake.path());
    let main = list.iter().find(|p| p["parent_process_id"] == "").unwrap();
    let id = &main["process_id"].as_str().unwrap().to_string();
    let dir = lake.path().to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let export = |args: &[&str]| {
        let output = run(
            &[&[id.as_str(), "--lake", dir][..], args].concat(),
            out.path(),
        );
        assert!(output.status.success(), "{}", stderr(&output));
        output.stdout
    };
    let plain = export(&["-o", "-"]);
    let summary = export(&["--json", "-o", "t.perfetto-trace.gz"]);
    let gz = std::fs::read(out.path().join("t.perfetto-trace.gz")).unwrap();
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, plain, "the same trace inside");
    assert!(
        gz.len() * 3 < plain.len(),
        "{} → {} bytes",
        plain.len(),
        gz.len()
    );
    // The summary describes the file as written.
    let summary: serde_json::Value = serde_json::from_slice(&summary).unwrap();
    assert_eq!(summary["bytes"].as_u64().unwrap(), gz.len() as u64);
    assert_eq!(summary["sha256"].as_str().unwrap(), sha256_hex(&gz));
    // No name or time in the header: again, and to stdout with --gzip, the same bytes.
    assert_eq!(
        &gz[..4],
        &[0x1f, 0x8b, 8, 0],
        "gzip, no optional header field"
    );
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "no modification time");
    assert_eq!(export(&["--gzip", "-o", "-"]), gz);
    export(&["--gzip"]);
    let default_name = out.path().join(format!("{id}.perfetto-trace.gz"));
    assert_eq!(std::fs::read(default_name).unwrap(), gz);
}

#[test]
fn offsets_from_the_start_and_last_select_the_same_window_as_the_times_they_stand_for() {
    use write_perfetto::lake::MetadataReads;
    let lake = fixture_copy();
    let list = processes_json(lake.path());
    let main = list.iter().find(|p| p["parent_process_id"] == "").unwrap();
    let id = main["process_id"].as_str().unwrap().to_string();
    let dir = lake.path().to_str().unwrap();
    let export = |args: &[&str]| {
        let output = run(
            &[&[id.as_str(), "--lake", dir, "-o", "-"][..], args].concat(),
            lake.path(),
        );
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        output.stdout
    };
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    let (start, data_end) = support::lake::runtime().block_on(async {
        let lake = support::lake::open_embedded(lake.path()).await;
        let process = lake.metadata.process(&uuid).await.unwrap().unwrap();
        let bounds = lake.metadata.block_end_bounds(&uuid).await.unwrap();
        (process.start_time, bounds.1.unwrap())
    });
    let text =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let ms = chrono::Duration::milliseconds;
    let whole = export(&[]);
    let relative = export(&["--begin", "+20ms", "--end", "+1m0.04s"]);
    let absolute = export(&[
        "--begin",
        &text(start + ms(20)),
        "--end",
        &text(start + ms(60_040)),
    ]);
    assert_eq!(relative, absolute);
    assert_ne!(relative, whole, "the window leaves something out");
    let last = export(&["--last", "30ms"]);
    let until_end = export(&[
        "--begin",
        &text(data_end - ms(30)),
        "--end",
        &text(data_end),
    ]);
    assert_eq!(last, until_end);
    assert_ne!(last, whole);
    // A time nobody can read: exit 2, naming the accepted forms.
    let output = run(
        &[&id, "--lake", dir, "--begin", "5 minutes ago"],
        lake.path(),
    );
    assert_eq!(output.status.code(), Some(2));
    let error = stderr(&output);
    assert!(
        error.contains("RFC 3339") && error.contains("+2m30s"),
        "{error}"
    );
}

#[test]
fn processes_filter_by_executable_and_start_and_show_how_long_each_ran() {
    let lake = fixture_copy();
    let dir = lake.path().to_str().unwrap();
    let listed = |args: &[&str]| -> Vec<serde_json::Value> {
        let all = [&["processes", "--json", "--lake", dir][..], args].concat();
        let output = run(&all, lake.path());
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let ids = |list: Vec<serde_json::Value>| -> Vec<String> {
        list.iter()
            .map(|p| p["process_id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = listed(&[]);
    assert_eq!(all.len(), 2);
    assert_eq!(ids(listed(&["--exe", "MAKE-fixture"])), ids(all.clone()));
    assert!(listed(&["--exe", "no-such-program"]).is_empty());
    // Newest first: the child started last; --since its start keeps only it.
    let child_start = all[0]["start_time"].as_str().unwrap();
    assert_eq!(
        ids(listed(&["--since", child_start])),
        ids(all[..1].to_vec())
    );
    for p in &all {
        let at =
            |key: &str| chrono::DateTime::parse_from_rfc3339(p[key].as_str().unwrap()).unwrap();
        let ran = (at("end_time") - at("start_time")).as_seconds_f64();
        assert!(ran > 0.0);
        assert!(
            (p["duration_seconds"].as_f64().unwrap() - ran).abs() < 1e-6,
            "{p}"
        );
    }
    let output = run(
        &["processes", "--lake", dir, "--since", "last week"],
        lake.path(),
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("RFC 3339"), "{}", stderr(&output));
}

/// `write-perfetto ID --open -q -o t.pftrace`, serving on `port`.
fn open_command(lake: &Path, id: &str, port: u16) -> std::process::Command {
    let mut command = write_perfetto();
    let lake = lake.to_str().unwrap();
    command
        .args([id, "--lake", lake, "-q", "--open", "-o", "t.pftrace"])
        .env("WRITE_PERFETTO_OPEN_PORT", port.to_string());
    command
}

/// Sends `request` to the server and reads the whole answer (the server closes it).
fn http(port: u16, request: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    answer
}

#[test]
fn open_serves_the_trace_to_the_perfetto_ui_once_then_exits() {
    use std::io::BufRead;
    let lake = fixture_copy();
    let id = &fixture_process_ids(lake.path())[0];
    let out = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = open_command(lake.path(), id, port)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .current_dir(out.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The link, even with -q: the UI's deep link to the local file.
    let mut stderr_lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let line = stderr_lines.next().unwrap().unwrap();
    let url = format!("https://ui.perfetto.dev/#!/?url=http://127.0.0.1:{port}/t.pftrace");
    assert!(line.contains(&url), "{line}");
    let cors = "Access-Control-Allow-Origin: https://ui.perfetto.dev\r\n";
    let preflight = http(port, "OPTIONS /t.pftrace HTTP/1.1\r\nHost: x\r\n\r\n");
    let preflight = String::from_utf8(preflight).unwrap();
    assert!(
        preflight.starts_with("HTTP/1.1 204") && preflight.contains(cors),
        "{preflight}"
    );
    let missing = String::from_utf8(http(port, "GET /other HTTP/1.1\r\n\r\n")).unwrap();
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    let answer = http(port, "GET /t.pftrace HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split + 2]).into_owned();
    assert!(
        head.starts_with("HTTP/1.1 200") && head.contains(cors),
        "{head}"
    );
    let trace = std::fs::read(out.path().join("t.pftrace")).unwrap();
    assert_eq!(&answer[split + 4..], &trace[..]);
    // Fetched once: done.
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_trace_too_large_for_the_browser_ui_gets_a_hint_on_stderr_unless_quiet() {
    let lake = fixture_copy();
    let id = &fixture_process_ids(lake.path())[0];
    let export = |threshold: &str, quiet: bool| {
        let mut command = write_perfetto();
        command.args([
            id,
            "--lake",
            lake.path().to_str().unwrap(),
            "-o",
            "t.pftrace",
        ]);
        if quiet {
            command.arg("-q");
        }
        let output = command
            .env("WRITE_PERFETTO_LARGE_TRACE_BYTES", threshold)
            .current_dir(lake.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(output.stdout.is_empty());
        stderr(&output)
    };
    let hinted = export("100", false);
    assert!(
        hinted.contains("warning: the trace holds 0 MB")
            && hinted.contains("trace_processor --httpd"),
        "{hinted}"
    );
    assert!(hinted.contains("--last"), "{hinted}");
    assert!(!export("100", true).contains("warning"));
    assert!(!export("100000000", false).contains("warning"));
}

#[test]
fn open_with_its_port_taken_fails_with_exit_5_naming_the_port() {
    let lake = fixture_copy();
    let id = &fixture_process_ids(lake.path())[0];
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = open_command(lake.path(), id, port)
        .current_dir(lake.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!("127.0.0.1:{port}")));
}

#[test]
fn processes_tree_shows_each_child_under_its_parent() {
    let lake = fixture_copy();
    let dir = lake.path().to_str().unwrap();
    let listed = |args: &[&str]| {
        let output = run(
            &[&["processes", "--lake", dir][..], args].concat(),
            lake.path(),
        );
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
    };
    let flat: Vec<serde_json::Value> = serde_json::from_str(&listed(&["--json"])).unwrap();
    let child = flat.iter().find(|p| p["parent_process_id"] != "").unwrap();
    let parent = child["parent_process_id"].as_str().unwrap();
    let tree: serde_json::Value = serde_json::from_str(&listed(&["--json", "--tree"])).unwrap();
    assert_eq!(tree.as_array().unwrap().len(), 1, "one root: {tree}");
    assert_eq!(tree[0]["process_id"], parent);
    assert_eq!(tree[0]["children"][0]["process_id"], child["process_id"]);
    // The table: the parent's row, then the child's, indented, naming its parent.
    let table = listed(&["--tree"]);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert!(rows[0].starts_with(parent), "{table}");
    let child_id = child["process_id"].as_str().unwrap();
    assert!(rows[1].starts_with(&format!("   {child_id}")), "{table}");
    assert!(rows[1].contains(parent), "{table}");
}

#[test]
fn a_pipe_or_device_as_output_receives_the_trace_and_stays_what_it_was() {
    use std::os::unix::fs::FileTypeExt;
    let lake = fixture_copy();
    let id = &fixture_process_ids(lake.path())[0];
    let out = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap();
    let expected = run(&[id, "--lake", lake_arg, "-o", "-"], out.path()).stdout;
    let fifo = out.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let output = run(
        &[id, "--lake", lake_arg, "-q", "-o", fifo.to_str().unwrap()],
        out.path(),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    // Checked before joining: had the pipe been replaced, its reader would wait forever.
    let kind = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(kind.is_fifo(), "the pipe was replaced: {kind:?}");
    assert_eq!(entries(out.path()), vec!["pipe".to_string()]);
    assert_eq!(reader.join().unwrap(), expected);
}

#[test]
fn a_symbolic_link_as_output_stays_a_link_to_the_new_trace() {
    let lake = fixture_copy();
    let id = &fixture_process_ids(lake.path())[0];
    let out = tempfile::tempdir().unwrap();
    let lake_arg = lake.path().to_str().unwrap();
    let expected = run(&[id, "--lake", lake_arg, "-o", "-"], out.path()).stdout;
    std::fs::write(out.path().join("old.pftrace"), b"old").unwrap();
    std::os::unix::fs::symlink("old.pftrace", out.path().join("latest")).unwrap();
    let output = run(&[id, "--lake", lake_arg, "-q", "-o", "latest"], out.path());
    assert!(output.status.success(), "{}", stderr(&output));
    let link = out.path().join("latest");
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&link).unwrap(), expected);
    assert_eq!(
        entries(out.path()),
        vec!["latest".to_string(), "old.pftrace".to_string()]
    );
}

#[test]
fn exports_are_byte_identical_whatever_the_thread_and_job_counts() {
    let lake = fixture_copy();
    let out = tempfile::tempdir().unwrap();
    for id in fixture_process_ids(lake.path()) {
        let mut hashes = Vec::new();
        for (threads, jobs) in [("1", "1"), ("2", "16"), ("8", "3")] {
            let output = run(
                &[
                    &id,
                    "--lake",
                    lake.path().to_str().unwrap(),
                    "--threads",
                    threads,
                    "--jobs",
                    jobs,
                    "-o",
                    "-",
                ],
                out.path(),
            );
            assert!(output.status.success(), "{}", stderr(&output));
            hashes.push(sha256_hex(&output.stdout));
        }
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{id}: {hashes:?}");
    }
}

#[test]
fn a_process_resolves_from_a_prefix_an_uppercase_id_or_an_id_without_hyphens() {
    let lake = fixture_copy();
    let id = fixture_process_ids(lake.path())[0].clone();
    let out = tempfile::tempdir().unwrap();
    let reference = run(
        &[&id, "--lake", lake.path().to_str().unwrap(), "-o", "-"],
        out.path(),
    )
    .stdout;
    for form in [id[..8].to_string(), id.to_uppercase(), id.replace('-', "")] {
        let output = run(
            &[&form, "--lake", lake.path().to_str().unwrap(), "-o", "-"],
            out.path(),
        );
        assert!(output.status.success(), "{form}: {}", stderr(&output));
        assert_eq!(output.stdout, reference, "{form}");
    }
}

fn assert_fails(output: &std::process::Output, code: i32, needle: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stderr: {}",
        stderr(output)
    );
    let err = stderr(output);
    assert!(
        err.contains(needle),
        "stderr {err:?} should mention {needle:?}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one-line error: {err:?}");
    assert!(output.stdout.is_empty());
}

#[test]
fn bad_process_ids_fail_with_their_documented_exit_codes() {
    let lake = fixture_copy();
    let dir = lake.path().to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    assert_fails(
        &run(&["not-a-uuid!", "--lake", dir], out.path()),
        2,
        "malformed process id",
    );
    assert_fails(&run(&["abc", "--lake", dir], out.path()), 2, "too short");
    assert_fails(
        &run(
            &["00000000-0000-0000-0000-000000000000", "--lake", dir],
            out.path(),
        ),
        3,
        "no process",
    );
    assert!(entries(out.path()).is_empty());
}

#[test]
fn an_unknown_process_creates_no_partition_cache_and_fails_alone_once_one_exists() {
    let lake = fixture_copy();
    let dir = lake.path().to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let cache = out.path().join("cache");
    let unknown = "00000000-0000-0000-0000-000000000000";
    let cache_arg = ["--cache", cache.to_str().unwrap()];
    assert_fails(&run(&[unknown, "--lake", dir], out.path()), 3, "no process");
    assert_fails(
        &run(
            &[[unknown, "--lake", dir].as_slice(), &cache_arg].concat(),
            out.path(),
        ),
        3,
        "no process",
    );
    assert!(!lake.path().join("write-perfetto").exists());
    assert!(!cache.exists());
    // With caches in place (their catalogs are read while the lake is), the error stays alone.
    let id = fixture_process_ids(lake.path())[0].clone();
    for extra in [&[][..], &cache_arg[..]] {
        let exported = run(
            &[[&id, "--lake", dir, "-q"].as_slice(), extra].concat(),
            out.path(),
        );
        assert!(exported.status.success(), "{}", stderr(&exported));
        let failed = run(
            &[[unknown, "--lake", dir].as_slice(), extra].concat(),
            out.path(),
        );
        assert_fails(&failed, 3, "no process");
    }
}

#[test]
fn an_ambiguous_prefix_lists_the_candidates() {
    let lake = fixture_copy();
    let ids = fixture_process_ids(lake.path());
    let twin = format!("{}-ffff-ffff-ffff-ffffffffffff", &ids[0][..8]);
    let db = lake.path().join("lake.db");
    let conn = format!("sqlite://{}", db.display());
    support::lake::runtime().block_on(async {
        let pool = sqlx::SqlitePool::connect(&conn).await.unwrap();
        sqlx::query("INSERT INTO processes (process_id, exe, tsc_frequency, start_time, start_ticks) VALUES ($1, 'twin', 1000, '2026-01-01T00:00:00.000000Z', 0)")
            .bind(&twin)
            .execute(&pool)
            .await
            .unwrap();
    });
    let out = tempfile::tempdir().unwrap();
    let output = run(
        &[&ids[0][..8], "--lake", lake.path().to_str().unwrap()],
        out.path(),
    );
    assert_fails(&output, 3, "ambiguous");
    assert!(stderr(&output).contains(&ids[0]) && stderr(&output).contains(&twin));
}

#[test]
fn a_corrupt_block_fails_with_exit_4_naming_the_block_and_leaves_no_file() {
    let lake = fixture_copy();
    let id = fixture_process_ids(lake.path())[0].clone();
    let block = a_block_payload(lake.path(), &id);
    std::fs::write(&block, b"this is not cbor").unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = run(
        &[
            &id,
            "--lake",
            lake.path().to_str().unwrap(),
            "-o",
            "t.pftrace",
        ],
        out.path(),
    );
    assert_fails(&output, 4, block.file_name().unwrap().to_str().unwrap());
    assert!(entries(out.path()).is_empty(), "{:?}", entries(out.path()));
}

#[test]
fn a_missing_block_payload_fails_with_exit_4() {
    let lake = fixture_copy();
    let id = fixture_process_ids(lake.path())[0].clone();
    let block = a_block_payload(lake.path(), &id);
    std::fs::remove_file(&block).unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = run(&[&id, "--lake", lake.path().to_str().unwrap()], out.path());
    assert_fails(&output, 4, block.file_name().unwrap().to_str().unwrap());
    assert!(entries(out.path()).is_empty());
}

#[test]
fn a_missing_output_directory_fails_with_exit_5() {
    let lake = fixture_copy();
    let id = fixture_process_ids(lake.path())[0].clone();
    let out = tempfile::tempdir().unwrap();
    let output = run(
        &[
            &id,
            "--lake",
            lake.path().to_str().unwrap(),
            "-o",
            "no/such/dir/t.pftrace",
        ],
        out.path(),
    );
    assert_fails(&output, 5, "no/such/dir");
}

#[test]
fn a_missing_lake_is_a_usage_error() {
    let out = tempfile::tempdir().unwrap();
    assert_fails(
        &run(&["processes", "--lake", "/nonexistent/lake"], out.path()),
        2,
        "/nonexistent/lake",
    );
    assert_fails(&run(&["processes"], out.path()), 2, "--lake");
    let unreachable = run(
        &[
            "processes",
            "--lake",
            "postgres://nobody@127.0.0.1:1/none",
            "--blobs",
            "file:///tmp",
        ],
        out.path(),
    );
    assert_fails(&unreachable, 5, "cannot connect");
}

#[test]
fn help_documents_exit_codes_and_the_ci_determinism_check() {
    let output = write_perfetto().arg("--help").output().unwrap();
    let help = stdout(&output);
    assert!(help.contains("cmp a.pftrace b.pftrace"));
    assert!(help.contains("3 process not found"));
}

#[test]
fn committed_completions_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    for (shell, file) in [
        ("bash", "write-perfetto.bash"),
        ("zsh", "_write-perfetto"),
        ("fish", "write-perfetto.fish"),
        ("powershell", "_write-perfetto.ps1"),
        ("elvish", "write-perfetto.elv"),
    ] {
        let output = write_perfetto()
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(output.status.success());
        let committed = std::fs::read(dir.join(file)).unwrap_or_default();
        assert!(
            committed == output.stdout,
            "completions/{file} is stale: regenerate with `write-perfetto completions {shell} > completions/{file}`"
        );
    }
}
