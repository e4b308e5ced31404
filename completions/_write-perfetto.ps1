
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'write-perfetto' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'write-perfetto'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'write-perfetto' {
            [CompletionResult]::new('--lake', '--lake', [CompletionResultType]::ParameterName, 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas''s metadata database')
            [CompletionResult]::new('--blobs', '--blobs', [CompletionResultType]::ParameterName, 'Object store of a PostgreSQL lake''s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables')
            [CompletionResult]::new('--spans', '--spans', [CompletionResultType]::ParameterName, 'Which spans to export: thread (call stacks per thread), async (futures), both, or none (log entries only)')
            [CompletionResult]::new('--log-level', '--log-level', [CompletionResultType]::ParameterName, 'Keep log entries at this level or more severe')
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Output file; `-` writes the trace to stdout. Default: <process-id>.perfetto-trace. A name ending in `.gz` is written gzip-compressed')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Output file; `-` writes the trace to stdout. Default: <process-id>.perfetto-trace. A name ending in `.gz` is written gzip-compressed')
            [CompletionResult]::new('--begin', '--begin', [CompletionResultType]::ParameterName, 'Keep only what ends at or after this time, clipped to it: an RFC 3339 time (2026-11-27T10:00:00Z) or an offset from the process start (+90s, +2m30s, +1.5h)')
            [CompletionResult]::new('--end', '--end', [CompletionResultType]::ParameterName, 'Keep only what begins at or before this time, clipped to it (same forms as --begin)')
            [CompletionResult]::new('--last', '--last', [CompletionResultType]::ParameterName, 'Keep only the last DURATION of the process''s data (5m, 30s, 1h30m), up to its last block')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Blocks, or partition files, fetched at once (remote stores gain from more); blocks are decoded one per worker thread, and partition files are fetched ahead of use (from a remote store up to N - 1 files and 64 MiB, from a local one 4)')
            [CompletionResult]::new('--cache', '--cache', [CompletionResultType]::ParameterName, 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake''s database and its object store for PostgreSQL)')
            [CompletionResult]::new('--partition-seconds', '--partition-seconds', [CompletionResultType]::ParameterName, 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it')
            [CompletionResult]::new('--small-stream-objects', '--small-stream-objects', [CompletionResultType]::ParameterName, 'A thread stream with fewer objects (span events and others) than this in a partition''s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it')
            [CompletionResult]::new('--row-group-rows', '--row-group-rows', [CompletionResultType]::ParameterName, 'Rows per row group of a thread''s own span partition (cut at block edges; an async partition''s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it')
            [CompletionResult]::new('--threads', '--threads', [CompletionResultType]::ParameterName, 'Worker threads (default: the number of cores). The output never depends on it')
            [CompletionResult]::new('--no-logs', '--no-logs', [CompletionResultType]::ParameterName, 'Leave the process''s log entries out (by default they are instants on a "log" track, one lane per level)')
            [CompletionResult]::new('--no-metrics', '--no-metrics', [CompletionResultType]::ParameterName, 'Leave the process''s measures out (by default each metric series is a counter track under a "metrics" track)')
            [CompletionResult]::new('--children', '--children', [CompletionResultType]::ParameterName, 'Add every descendant of the process (its children, theirs, …) to the trace, each as a process of its own with its threads, async spans, logs and metrics, on the same timeline; ordered by start time, then id')
            [CompletionResult]::new('--open', '--open', [CompletionResultType]::ParameterName, 'After writing the trace, serve it on 127.0.0.1:9001 and open the Perfetto UI on it (the link is printed; a browser is started when the session has one). Serves until the UI has fetched the trace, or Ctrl-C')
            [CompletionResult]::new('--gzip', '--gzip', [CompletionResultType]::ParameterName, 'Compress the trace with gzip (the Perfetto UI opens it as is; 2 to 3.5 times smaller), to a file of any name or to stdout. Same trace, same bytes: no name or time in the header')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter')
            [CompletionResult]::new('--explain', '--explain', [CompletionResultType]::ParameterName, 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('processes', 'processes', [CompletionResultType]::ParameterValue, 'List the lake''s processes, newest first')
            [CompletionResult]::new('cache', 'cache', [CompletionResultType]::ParameterValue, 'Manage the partition cache')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'write-perfetto;processes' {
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'Show at most N processes, from 1 to 1000000')
            [CompletionResult]::new('--exe', '--exe', [CompletionResultType]::ParameterName, 'Only processes whose executable path contains this text (ignoring case)')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only processes started at or after this time: RFC 3339 (2026-11-27T10:00:00Z) or a duration ago (2h, 30m, 1d is 24h)')
            [CompletionResult]::new('--lake', '--lake', [CompletionResultType]::ParameterName, 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas''s metadata database')
            [CompletionResult]::new('--blobs', '--blobs', [CompletionResultType]::ParameterName, 'Object store of a PostgreSQL lake''s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables')
            [CompletionResult]::new('--cache', '--cache', [CompletionResultType]::ParameterName, 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake''s database and its object store for PostgreSQL)')
            [CompletionResult]::new('--partition-seconds', '--partition-seconds', [CompletionResultType]::ParameterName, 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it')
            [CompletionResult]::new('--small-stream-objects', '--small-stream-objects', [CompletionResultType]::ParameterName, 'A thread stream with fewer objects (span events and others) than this in a partition''s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it')
            [CompletionResult]::new('--row-group-rows', '--row-group-rows', [CompletionResultType]::ParameterName, 'Rows per row group of a thread''s own span partition (cut at block edges; an async partition''s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table')
            [CompletionResult]::new('--tree', '--tree', [CompletionResultType]::ParameterName, 'Show each process''s children under it, indented (oldest first, any depth); a process whose parent is not listed is a root. With --json: nested `children` arrays')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter')
            [CompletionResult]::new('--explain', '--explain', [CompletionResultType]::ParameterName, 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'write-perfetto;cache' {
            [CompletionResult]::new('--lake', '--lake', [CompletionResultType]::ParameterName, 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas''s metadata database')
            [CompletionResult]::new('--blobs', '--blobs', [CompletionResultType]::ParameterName, 'Object store of a PostgreSQL lake''s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables')
            [CompletionResult]::new('--cache', '--cache', [CompletionResultType]::ParameterName, 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake''s database and its object store for PostgreSQL)')
            [CompletionResult]::new('--partition-seconds', '--partition-seconds', [CompletionResultType]::ParameterName, 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it')
            [CompletionResult]::new('--small-stream-objects', '--small-stream-objects', [CompletionResultType]::ParameterName, 'A thread stream with fewer objects (span events and others) than this in a partition''s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it')
            [CompletionResult]::new('--row-group-rows', '--row-group-rows', [CompletionResultType]::ParameterName, 'Rows per row group of a thread''s own span partition (cut at block edges; an async partition''s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter')
            [CompletionResult]::new('--explain', '--explain', [CompletionResultType]::ParameterName, 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'Delete partition files retired longer ago than the grace period (readers that started before then may still be reading them)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'write-perfetto;cache;gc' {
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'Grace period in seconds, from 0 to 3153600000 (100 years)')
            [CompletionResult]::new('--lake', '--lake', [CompletionResultType]::ParameterName, 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas''s metadata database')
            [CompletionResult]::new('--blobs', '--blobs', [CompletionResultType]::ParameterName, 'Object store of a PostgreSQL lake''s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables')
            [CompletionResult]::new('--cache', '--cache', [CompletionResultType]::ParameterName, 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake''s database and its object store for PostgreSQL)')
            [CompletionResult]::new('--partition-seconds', '--partition-seconds', [CompletionResultType]::ParameterName, 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it')
            [CompletionResult]::new('--small-stream-objects', '--small-stream-objects', [CompletionResultType]::ParameterName, 'A thread stream with fewer objects (span events and others) than this in a partition''s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it')
            [CompletionResult]::new('--row-group-rows', '--row-group-rows', [CompletionResultType]::ParameterName, 'Rows per row group of a thread''s own span partition (cut at block edges; an async partition''s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter')
            [CompletionResult]::new('--explain', '--explain', [CompletionResultType]::ParameterName, 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'write-perfetto;cache;help' {
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'Delete partition files retired longer ago than the grace period (readers that started before then may still be reading them)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'write-perfetto;cache;help;gc' {
            break
        }
        'write-perfetto;cache;help;help' {
            break
        }
        'write-perfetto;completions' {
            [CompletionResult]::new('--lake', '--lake', [CompletionResultType]::ParameterName, 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas''s metadata database')
            [CompletionResult]::new('--blobs', '--blobs', [CompletionResultType]::ParameterName, 'Object store of a PostgreSQL lake''s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables')
            [CompletionResult]::new('--cache', '--cache', [CompletionResultType]::ParameterName, 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake''s database and its object store for PostgreSQL)')
            [CompletionResult]::new('--partition-seconds', '--partition-seconds', [CompletionResultType]::ParameterName, 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it')
            [CompletionResult]::new('--small-stream-objects', '--small-stream-objects', [CompletionResultType]::ParameterName, 'A thread stream with fewer objects (span events and others) than this in a partition''s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it')
            [CompletionResult]::new('--row-group-rows', '--row-group-rows', [CompletionResultType]::ParameterName, 'Rows per row group of a thread''s own span partition (cut at block edges; an async partition''s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print nothing but errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter')
            [CompletionResult]::new('--explain', '--explain', [CompletionResultType]::ParameterName, 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'write-perfetto;help' {
            [CompletionResult]::new('processes', 'processes', [CompletionResultType]::ParameterValue, 'List the lake''s processes, newest first')
            [CompletionResult]::new('cache', 'cache', [CompletionResultType]::ParameterValue, 'Manage the partition cache')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script to stdout')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'write-perfetto;help;processes' {
            break
        }
        'write-perfetto;help;cache' {
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'Delete partition files retired longer ago than the grace period (readers that started before then may still be reading them)')
            break
        }
        'write-perfetto;help;cache;gc' {
            break
        }
        'write-perfetto;help;completions' {
            break
        }
        'write-perfetto;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
