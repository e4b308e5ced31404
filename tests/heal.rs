//! The partition cache is derived data: damaged files and catalogs heal in the run that finds
//! them, with the same bytes, and a lake that refuses writes (read-only credentials or storage)
//! exports through a per-user cache without any flag.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::lake::{ROW_GROUP_WINDOW, copy_lake, fixture_dir, stderr, summary, write_perfetto};
use support::partition_lake::{Backend, Export, PartitionLake, assert_live_rows_consistent};
use support::tmpfs::Tmpfs;

/// Flips one byte in the middle of a file, keeping its size.
fn alter_in_place(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

fn a_partition_file_altered_in_place_is_rebuilt_in_the_same_run(backend: Backend) {
    let lake = PartitionLake::new(backend);
    let reference = lake.cold_export();
    lake.export(&[]); // the lake's own cache, complete
    let rows = lake.live_rows();
    let thread_row = rows.iter().find(|r| r.view == "thread_spans").unwrap();
    let async_row = rows.iter().find(|r| r.view == "async_events").unwrap();
    for row in [thread_row, async_row] {
        alter_in_place(&lake.store_root().join(&row.file_key));
    }

    let healed = lake.export(&[]);
    assert_eq!(
        healed.sha256(),
        reference.sha256(),
        "same bytes as a cold cache"
    );
    assert_eq!(
        healed.built(),
        2,
        "exactly the two damaged partitions rebuilt"
    );
    assert_eq!(healed.reused() as usize, rows.len() - 2);
    // A file read whole fails its checksum; one read run by run (the async one), the checksum
    // of the run holding the byte.
    let checksum_failed = (healed.stderr.lines())
        .filter(|line| line.contains("checksum") && line.ends_with("; rebuilding it"))
        .count();
    assert_eq!(checksum_failed, 2, "{}", healed.stderr);
    assert_live_rows_consistent(&lake.live_rows(), lake.store_root());
    let again = lake.export(&[]);
    assert_eq!((again.built(), again.sha256()), (0, reference.sha256()));
}

#[test]
fn a_partition_file_altered_in_place_is_rebuilt_in_the_same_run_sqlite() {
    a_partition_file_altered_in_place_is_rebuilt_in_the_same_run(Backend::Sqlite);
}

#[test]
fn a_partition_file_altered_in_place_is_rebuilt_in_the_same_run_postgres() {
    a_partition_file_altered_in_place_is_rebuilt_in_the_same_run(Backend::Postgres);
}

#[test]
fn a_damaged_file_read_by_row_groups_is_rebuilt_and_read_by_its_new_row_groups() {
    // A cache whose thread files have row groups of one row (a block each); the export that
    // finds them damaged rebuilds them with the default row groups (one each, here), and must
    // read the rebuilt files by their own row groups, not by the damaged ones'.
    let lake = PartitionLake::per_stream(Backend::Sqlite);
    let window = ["--begin", "+10ms", "--end", "+11ms"];
    let reference = lake.export(&window);
    std::fs::remove_dir_all(lake.store_root().join("write-perfetto")).unwrap();
    let one_row = lake.export(&[&window[..], &["--row-group-rows", "1"]].concat());
    assert_eq!(one_row.sha256(), reference.sha256());
    let rows = lake.live_rows();
    let thread_rows: Vec<_> = rows.iter().filter(|r| r.view == "thread_spans").collect();
    for row in &thread_rows {
        alter_in_place(&lake.store_root().join(&row.file_key));
    }

    let healed = lake.export(&window);
    assert_eq!(healed.sha256(), reference.sha256(), "{}", healed.stderr);
    assert!(
        healed.built() >= 1,
        "the damaged files the window reads are rebuilt"
    );
    assert_live_rows_consistent(&lake.live_rows(), lake.store_root());
}

#[test]
fn a_thread_read_run_by_run_heals_a_damaged_file_and_goes_on_where_it_stopped() {
    // Each stream in partitions of a minute, their files in row groups of one row (a block
    // each), each row group a run: a byte flipped in the middle of each file fails a run
    // after pieces of the thread are written. Rebuilt with the default row groups (cut
    // otherwise), each is read on from the row it stopped at, then the next partitions.
    let mut lake = PartitionLake::per_stream(Backend::Sqlite);
    lake.spread_insert_times();
    let reference = lake.cold_export();
    let _ = std::fs::remove_dir_all(lake.store_root().join("write-perfetto"));
    lake.env = vec![
        ("WRITE_PERFETTO_RUN_BYTES", "1".into()),
        ("WRITE_PERFETTO_THREAD_PIECE_SPANS", "2".into()),
        ("RUST_LOG", "write_perfetto=debug".into()),
    ];
    let minutes = ["--partition-seconds", "60"];
    let in_runs = lake.export(&[&minutes[..], &["--row-group-rows", "1"]].concat());
    assert_eq!(in_runs.sha256(), reference.sha256(), "{}", in_runs.stderr);
    assert!(
        in_runs.stderr.contains("read in runs"),
        "{}",
        in_runs.stderr
    );
    let thread_files: Vec<_> = (lake.live_rows().into_iter())
        .filter(|r| r.view == "thread_spans")
        .collect();
    let instances: std::collections::HashSet<_> =
        thread_files.iter().map(|r| &r.instance).collect();
    assert!(
        thread_files.len() > instances.len(),
        "streams of several partitions"
    );
    let mut damaged = 0;
    for row in &thread_files {
        alter_in_place(&lake.store_root().join(&row.file_key));
        damaged += 1;
    }

    let healed = lake.export(&minutes);
    assert_eq!(healed.sha256(), reference.sha256(), "{}", healed.stderr);
    assert_eq!(healed.built(), damaged, "{}", healed.stderr);
    assert!(healed.stderr.contains("read in runs"), "{}", healed.stderr);
    let rebuilt = healed.stderr.matches("rebuilding it").count() as u64;
    assert_eq!(rebuilt, damaged, "{}", healed.stderr);
    assert_live_rows_consistent(&lake.live_rows(), lake.store_root());
}

/// The byte just before a Parquet file's 8-byte tail: in its footer (the file's metadata).
fn alter_footer(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() - 9;
    bytes[at] ^= 0x5a;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_window_fetches_only_the_row_groups_it_reads_and_heals_a_damaged_footer() {
    // Thread files in row groups of one row (a block each): a window reads a few of each.
    let lake = PartitionLake::per_stream(Backend::Sqlite);
    let window = ROW_GROUP_WINDOW;
    let first = lake.export(&window);
    let ranged = lake.export(&window);
    assert_eq!((ranged.built(), ranged.sha256()), (0, first.sha256()));

    // The footer is read with any row group, and checked on its own.
    let thread_files = (lake.live_rows().into_iter()).filter(|r| r.view == "thread_spans");
    for row in thread_files {
        alter_footer(&lake.store_root().join(&row.file_key));
    }
    let healed = lake.export(&window);
    assert_eq!(healed.sha256(), first.sha256(), "{}", healed.stderr);
    assert!(
        (healed.stderr).contains("do not match the catalog's checksum; rebuilding it"),
        "{}",
        healed.stderr
    );
    assert_live_rows_consistent(&lake.live_rows(), lake.store_root());

    // Without the ranges (as a catalog of the previous schema has it), files are read whole.
    lake.catalog_sql("UPDATE write_perfetto_partitions SET ranges = NULL");
    let whole = lake.export(&window);
    assert_eq!((whole.built(), whole.sha256()), (0, first.sha256()));
    let bytes_read = |export: &Export| export.summary["partition_bytes_read"].as_u64().unwrap();
    let files_read = |export: &Export| export.summary["partition_files_read"].as_u64().unwrap();
    assert_eq!(files_read(&whole), files_read(&ranged), "the same files");
    assert!(
        bytes_read(&ranged) < bytes_read(&whole),
        "{} bytes of {}",
        bytes_read(&ranged),
        bytes_read(&whole)
    );
}

#[test]
fn truncated_and_missing_partition_files_are_rebuilt_with_the_same_bytes() {
    let lake = PartitionLake::new(Backend::Sqlite);
    let reference = lake.cold_export();
    lake.export(&[]);
    let rows = lake.live_rows();
    let truncated = lake.store_root().join(&rows[0].file_key);
    let data = std::fs::read(&truncated).unwrap();
    std::fs::write(&truncated, &data[..data.len() / 3]).unwrap();
    std::fs::remove_file(lake.store_root().join(&rows[1].file_key)).unwrap();

    let healed = lake.export(&[]);
    assert_eq!(healed.sha256(), reference.sha256());
    assert_eq!(healed.built(), 2);
    let verdicts: Vec<String> = healed
        .decisions()
        .into_iter()
        .map(|d| d.verdict)
        .filter(|v| !v.starts_with("reused"))
        .collect();
    assert!(
        verdicts.iter().any(|v| v.contains("wrong size")),
        "{verdicts:?}"
    );
    assert!(
        verdicts.iter().any(|v| v.contains("missing")),
        "{verdicts:?}"
    );
}

#[test]
fn partitions_recorded_without_a_checksum_are_rebuilt() {
    let lake = PartitionLake::new(Backend::Sqlite);
    let first = lake.export(&[]);
    lake.catalog_sql("UPDATE write_perfetto_partitions SET checksum = NULL");
    let next = lake.export(&[]);
    assert_eq!(next.sha256(), first.sha256());
    assert_eq!(next.built(), first.built(), "every partition rebuilt");
    assert!(
        next.stderr.contains("without a checksum"),
        "{}",
        next.stderr
    );
}

#[test]
fn a_catalog_of_the_previous_schema_is_upgraded_and_its_span_partitions_gain_digests() {
    let lake = PartitionLake::new(Backend::Sqlite);
    let first = lake.export(&[]);
    let is_spans = |view: &str| view == "thread_spans" || view == "async_events";
    let spans = (lake.live_rows().iter())
        .filter(|r| is_spans(&r.view))
        .count();
    // Schema version 2: no digest column (nor the later ranges).
    lake.catalog_sql("ALTER TABLE write_perfetto_partitions DROP COLUMN digest");
    lake.catalog_sql("ALTER TABLE write_perfetto_partitions DROP COLUMN ranges");
    lake.catalog_sql("UPDATE write_perfetto_catalog_version SET version = 2");
    let upgraded = lake.export(&[]);
    assert_eq!(upgraded.sha256(), first.sha256());
    assert_eq!(
        upgraded.built() as usize,
        spans,
        "the span partitions, once"
    );
    assert!(
        upgraded.stderr.contains("without a digest"),
        "{}",
        upgraded.stderr
    );
    let again = lake.export(&[]);
    assert_eq!((again.built(), again.sha256()), (0, first.sha256()));
    let rows = lake.live_rows();
    let digested = rows.iter().filter(|r| is_spans(&r.view));
    assert!(digested.clone().all(|r| r.digest.is_some()), "{rows:?}");
    assert!(digested.clone().all(|r| r.ranges.is_some()), "{rows:?}");
}

/// Replaces a catalog (and its write-ahead log) with bytes that are not a database; returns
/// the run's outcome.
fn export_with_garbage_catalog(lake: &PartitionLake, catalog: &Path, extra: &[&str]) -> Output {
    let garbage = b"this is not a database, it was overwritten by mistake\n".repeat(200);
    std::fs::write(catalog, &garbage).unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut companion = catalog.as_os_str().to_owned();
        companion.push(suffix);
        let _ = std::fs::remove_file(companion);
    }
    let (output, _) = lake.try_export(extra);
    output
}

#[test]
fn a_catalog_that_is_not_a_database_any_more_is_set_aside_and_recreated() {
    let lake = PartitionLake::new(Backend::Sqlite);
    let reference = lake.cold_export();
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    // The embedded lake's own catalog, and a --cache catalog.
    for (catalog, extra) in [
        (lake.store_root().join("write-perfetto/catalog.db"), vec![]),
        (cache.path().join("catalog.db"), vec!["--cache", cache_arg]),
    ] {
        lake.export(&extra);
        let output = export_with_garbage_catalog(&lake, &catalog, &extra);
        let text = stderr(&output);
        assert!(output.status.success(), "{text}");
        assert_eq!(summary(&output)["sha256"], reference.sha256());
        let warnings: Vec<&str> = text.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(warnings.len(), 1, "{text}");
        assert!(
            warnings[0].contains("damaged") && warnings[0].contains("catalog"),
            "{text}"
        );
        let set_aside: Vec<String> = std::fs::read_dir(catalog.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("catalog.db.damaged-"))
            .collect();
        assert_eq!(set_aside.len(), 1, "{set_aside:?}");
        // The new catalog serves the next run.
        let again = lake.export(&extra);
        assert_eq!((again.built(), again.sha256()), (0, reference.sha256()));
    }
}

// ---------------------------------------------------------------------------------------------
// Lakes that refuse writes

/// A copy of the fixture lake that nobody may write: a read-only tmpfs when the tests run as
/// root (root ignores permissions), else a directory without write permission.
struct ReadOnlyLake {
    dir: PathBuf,
    /// Unmounted before the directory is deleted.
    mount: Option<Tmpfs>,
    _base: tempfile::TempDir,
}

impl ReadOnlyLake {
    fn new() -> ReadOnlyLake {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("lake");
        std::fs::create_dir(&dir).unwrap();
        let mount = support::pg::is_root()
            .then(|| Tmpfs::mount(&dir, "size=64m").ok())
            .flatten();
        copy_lake(&fixture_dir(), &dir);
        match &mount {
            Some(tmpfs) => tmpfs.remount_read_only(),
            None => set_read_only(&dir),
        }
        ReadOnlyLake {
            dir,
            mount,
            _base: base,
        }
    }
}

impl Drop for ReadOnlyLake {
    fn drop(&mut self) {
        if self.mount.is_none() {
            set_writable(&self.dir);
        }
    }
}

fn set_permissions(dir: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            set_permissions(&path, mode);
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn set_read_only(dir: &Path) {
    set_permissions(dir, 0o555);
}

fn set_writable(dir: &Path) {
    set_permissions(dir, 0o755);
}

/// Runs the binary with its per-user cache under `cache_home` (`XDG_CACHE_HOME`).
fn run_with_cache_home(args: &[&str], cache_home: &Path, cwd: &Path) -> Output {
    let mut command = write_perfetto();
    command.args(args).env("XDG_CACHE_HOME", cache_home);
    command.current_dir(cwd).output().unwrap()
}

/// The per-user partition caches under `cache_home`.
fn user_caches(cache_home: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(cache_home.join("write-perfetto")) {
        Ok(read) => read.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Two runs through the per-user cache: the first builds it and says so once, the second reuses
/// it; `-q` silences the warning. Returns the trace's sha256.
fn exports_through_the_user_cache(args: &[String], work: &Path) -> String {
    let cache_home = tempfile::tempdir().unwrap();
    let out = work.join("ro.pftrace");
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["--json", "-o", out.to_str().unwrap()]);
    let first = run_with_cache_home(&all, cache_home.path(), work);
    let text = stderr(&first);
    assert!(first.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one warning: {text}");
    assert!(lines[0].contains("warning"), "{text}");
    let caches = user_caches(cache_home.path());
    assert_eq!(caches.len(), 1, "{caches:?}");
    assert!(
        lines[0].contains(&caches[0].display().to_string()),
        "{text}"
    );
    assert!(summary(&first)["partitions_built"].as_u64().unwrap() > 0);

    all.push("-q");
    let second = run_with_cache_home(&all, cache_home.path(), work);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(stderr(&second), "", "-q silences the warning");
    let s = summary(&second);
    assert_eq!(s["partitions_built"], 0, "the user cache is reused: {s}");
    assert_eq!(s["sha256"], summary(&first)["sha256"]);
    s["sha256"].as_str().unwrap().to_string()
}

#[test]
fn a_read_only_embedded_lake_exports_through_the_per_user_cache() {
    let reference = PartitionLake::new(Backend::Sqlite).cold_export();
    let lake = ReadOnlyLake::new();
    let work = tempfile::tempdir().unwrap();
    let args = vec![
        reference.summary["process_id"]
            .as_str()
            .unwrap()
            .to_string(),
        "--lake".to_string(),
        lake.dir.display().to_string(),
    ];
    assert_eq!(
        exports_through_the_user_cache(&args, work.path()),
        reference.sha256()
    );
}

#[test]
fn a_select_only_postgres_role_exports_with_no_flag() {
    let lake = PartitionLake::new(Backend::Postgres);
    let reference = lake.cold_export();
    let args = vec![
        lake.process_id.clone(),
        "--lake".to_string(),
        lake.select_only_url(),
        "--blobs".to_string(),
        lake.blobs_url(),
    ];
    assert_eq!(
        exports_through_the_user_cache(&args, lake.work.path()),
        reference.sha256()
    );
    assert!(
        !lake.postgres_has_catalog_table(),
        "the lake's database is untouched"
    );
}

#[test]
fn a_postgres_lake_whose_object_store_refuses_writes_exports_with_no_flag() {
    // The catalog could live in the database, but the partition files cannot be stored.
    let lake = PartitionLake::new(Backend::Postgres);
    let reference = lake.cold_export();
    let blobs = ReadOnlyLake::new();
    let args = vec![
        lake.process_id.clone(),
        "--lake".to_string(),
        lake.lake_args()[1].clone(),
        "--blobs".to_string(),
        format!("file://{}", blobs.dir.display()),
    ];
    assert_eq!(
        exports_through_the_user_cache(&args, lake.work.path()),
        reference.sha256()
    );
}
