
use builtin;
use str;

set edit:completion:arg-completer[write-perfetto] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'write-perfetto'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'write-perfetto'= {
            cand --lake 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas''s metadata database'
            cand --blobs 'Object store of a PostgreSQL lake''s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables'
            cand --spans 'Which spans to export: thread (call stacks per thread), async (futures), both, or none (log entries only)'
            cand --log-level 'Keep log entries at this level or more severe'
            cand -o 'Output file; `-` writes the trace to stdout. Default: <process-id>.perfetto-trace. A name ending in `.gz` is written gzip-compressed'
            cand --output 'Output file; `-` writes the trace to stdout. Default: <process-id>.perfetto-trace. A name ending in `.gz` is written gzip-compressed'
            cand --begin 'Keep only what ends at or after this time, clipped to it: an RFC 3339 time (2026-11-27T10:00:00Z) or an offset from the process start (+90s, +2m30s, +1.5h)'
            cand --end 'Keep only what begins at or before this time, clipped to it (same forms as --begin)'
            cand --last 'Keep only the last DURATION of the process''s data (5m, 30s, 1h30m), up to its last block'
            cand --jobs 'Blocks, or partition files, fetched at once (remote stores gain from more); blocks are decoded one per worker thread, and partition files are fetched ahead of use (from a remote store up to N - 1 files and 64 MiB, from a local one 4)'
            cand --cache 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake''s database and its object store for PostgreSQL)'
            cand --partition-seconds 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it'
            cand --small-stream-objects 'A thread stream with fewer objects (span events and others) than this in a partition''s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it'
            cand --row-group-rows 'Rows per row group of a thread''s own span partition (cut at block edges; an async partition''s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it'
            cand --threads 'Worker threads (default: the number of cores). The output never depends on it'
            cand --no-logs 'Leave the process''s log entries out (by default they are instants on a "log" track, one lane per level)'
            cand --no-metrics 'Leave the process''s measures out (by default each metric series is a counter track under a "metrics" track)'
            cand --children 'Add every descendant of the process (its children, theirs, …) to the trace, each as a process of its own with its threads, async spans, logs and metrics, on the same timeline; ordered by start time, then id'
            cand --open 'After writing the trace, serve it on 127.0.0.1:9001 and open the Perfetto UI on it (the link is printed; a browser is started when the session has one). Serves until the UI has fetched the trace, or Ctrl-C'
            cand --gzip 'Compress the trace with gzip (the Perfetto UI opens it as is; 2 to 3.5 times smaller), to a file of any name or to stdout. Same trace, same bytes: no name or time in the header'
            cand --json 'Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings)'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
            cand --verbose 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
            cand --explain 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
            cand processes 'List the lake''s processes, newest first'
            cand cache 'Manage the partition cache'
            cand completions 'Print a shell completion script to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'write-perfetto;processes'= {
            cand --limit 'Show at most N processes, from 1 to 1000000'
            cand --exe 'Only processes whose executable path contains this text (ignoring case)'
            cand --since 'Only processes started at or after this time: RFC 3339 (2026-11-27T10:00:00Z) or a duration ago (2h, 30m, 1d is 24h)'
            cand --lake 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas''s metadata database'
            cand --blobs 'Object store of a PostgreSQL lake''s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables'
            cand --cache 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake''s database and its object store for PostgreSQL)'
            cand --partition-seconds 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it'
            cand --small-stream-objects 'A thread stream with fewer objects (span events and others) than this in a partition''s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it'
            cand --row-group-rows 'Rows per row group of a thread''s own span partition (cut at block edges; an async partition''s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it'
            cand --json 'Print JSON instead of a table'
            cand --tree 'Show each process''s children under it, indented (oldest first, any depth); a process whose parent is not listed is a root. With --json: nested `children` arrays'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
            cand --verbose 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
            cand --explain 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'write-perfetto;cache'= {
            cand --lake 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas''s metadata database'
            cand --blobs 'Object store of a PostgreSQL lake''s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables'
            cand --cache 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake''s database and its object store for PostgreSQL)'
            cand --partition-seconds 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it'
            cand --small-stream-objects 'A thread stream with fewer objects (span events and others) than this in a partition''s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it'
            cand --row-group-rows 'Rows per row group of a thread''s own span partition (cut at block edges; an async partition''s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it'
            cand --json 'Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings)'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
            cand --verbose 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
            cand --explain 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand gc 'Delete partition files retired longer ago than the grace period (readers that started before then may still be reading them)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'write-perfetto;cache;gc'= {
            cand --grace 'Grace period in seconds, from 0 to 3153600000 (100 years)'
            cand --lake 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas''s metadata database'
            cand --blobs 'Object store of a PostgreSQL lake''s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables'
            cand --cache 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake''s database and its object store for PostgreSQL)'
            cand --partition-seconds 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it'
            cand --small-stream-objects 'A thread stream with fewer objects (span events and others) than this in a partition''s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it'
            cand --row-group-rows 'Rows per row group of a thread''s own span partition (cut at block edges; an async partition''s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it'
            cand --json 'Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings)'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
            cand --verbose 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
            cand --explain 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'write-perfetto;cache;help'= {
            cand gc 'Delete partition files retired longer ago than the grace period (readers that started before then may still be reading them)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'write-perfetto;cache;help;gc'= {
        }
        &'write-perfetto;cache;help;help'= {
        }
        &'write-perfetto;completions'= {
            cand --lake 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas''s metadata database'
            cand --blobs 'Object store of a PostgreSQL lake''s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables'
            cand --cache 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake''s database and its object store for PostgreSQL)'
            cand --partition-seconds 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it'
            cand --small-stream-objects 'A thread stream with fewer objects (span events and others) than this in a partition''s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it'
            cand --row-group-rows 'Rows per row group of a thread''s own span partition (cut at block edges; an async partition''s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it'
            cand --json 'Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings)'
            cand -q 'Print nothing but errors'
            cand --quiet 'Print nothing but errors'
            cand -v 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
            cand --verbose 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
            cand --explain 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'write-perfetto;help'= {
            cand processes 'List the lake''s processes, newest first'
            cand cache 'Manage the partition cache'
            cand completions 'Print a shell completion script to stdout'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'write-perfetto;help;processes'= {
        }
        &'write-perfetto;help;cache'= {
            cand gc 'Delete partition files retired longer ago than the grace period (readers that started before then may still be reading them)'
        }
        &'write-perfetto;help;cache;gc'= {
        }
        &'write-perfetto;help;completions'= {
        }
        &'write-perfetto;help;help'= {
        }
    ]
    $completions[$command]
}
