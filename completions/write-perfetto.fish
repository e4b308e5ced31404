# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_write_perfetto_global_optspecs
    string join \n lake= blobs= spans= no-logs no-metrics children log-level= o/output= open gzip begin= end= last= json q/quiet v/verbose jobs= cache= partition-seconds= small-stream-objects= row-group-rows= explain threads= h/help V/version
end

function __fish_write_perfetto_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_write_perfetto_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_write_perfetto_using_subcommand
    set -l cmd (__fish_write_perfetto_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l lake -d 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas\'s metadata database' -r
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l blobs -d 'Object store of a PostgreSQL lake\'s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables' -r
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l spans -d 'Which spans to export: thread (call stacks per thread), async (futures), both, or none (log entries only)' -r -f -a "thread\t''
async\t''
both\t''
none\t''"
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l log-level -d 'Keep log entries at this level or more severe' -r -f -a "fatal\t''
error\t''
warn\t''
info\t''
debug\t''
trace\t''"
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -s o -l output -d 'Output file; `-` writes the trace to stdout. Default: <process-id>.perfetto-trace. A name ending in `.gz` is written gzip-compressed' -r
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l begin -d 'Keep only what ends at or after this time, clipped to it: an RFC 3339 time (2026-11-27T10:00:00Z) or an offset from the process start (+90s, +2m30s, +1.5h)' -r
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l end -d 'Keep only what begins at or before this time, clipped to it (same forms as --begin)' -r
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l last -d 'Keep only the last DURATION of the process\'s data (5m, 30s, 1h30m), up to its last block' -r
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l jobs -d 'Blocks, or partition files, fetched at once (remote stores gain from more); blocks are decoded one per worker thread, and partition files are fetched ahead of use (from a remote store up to N - 1 files and 64 MiB, from a local one 4)' -r
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l cache -d 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake\'s database and its object store for PostgreSQL)' -r -F
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l partition-seconds -d 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l small-stream-objects -d 'A thread stream with fewer objects (span events and others) than this in a partition\'s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l row-group-rows -d 'Rows per row group of a thread\'s own span partition (cut at block edges; an async partition\'s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l threads -d 'Worker threads (default: the number of cores). The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l no-logs -d 'Leave the process\'s log entries out (by default they are instants on a "log" track, one lane per level)'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l no-metrics -d 'Leave the process\'s measures out (by default each metric series is a counter track under a "metrics" track)'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l children -d 'Add every descendant of the process (its children, theirs, …) to the trace, each as a process of its own with its threads, async spans, logs and metrics, on the same timeline; ordered by start time, then id'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l open -d 'After writing the trace, serve it on 127.0.0.1:9001 and open the Perfetto UI on it (the link is printed; a browser is started when the session has one). Serves until the UI has fetched the trace, or Ctrl-C'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l gzip -d 'Compress the trace with gzip (the Perfetto UI opens it as is; 2 to 3.5 times smaller), to a file of any name or to stdout. Same trace, same bytes: no name or time in the header'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l json -d 'Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings)'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -s q -l quiet -d 'Print nothing but errors'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -s v -l verbose -d 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -l explain -d 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -s V -l version -d 'Print version'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -a "processes" -d 'List the lake\'s processes, newest first'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -a "cache" -d 'Manage the partition cache'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -a "completions" -d 'Print a shell completion script to stdout'
complete -c write-perfetto -n "__fish_write_perfetto_needs_command" -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -l limit -d 'Show at most N processes, from 1 to 1000000' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -l exe -d 'Only processes whose executable path contains this text (ignoring case)' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -l since -d 'Only processes started at or after this time: RFC 3339 (2026-11-27T10:00:00Z) or a duration ago (2h, 30m, 1d is 24h)' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -l lake -d 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas\'s metadata database' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -l blobs -d 'Object store of a PostgreSQL lake\'s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -l cache -d 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake\'s database and its object store for PostgreSQL)' -r -F
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -l partition-seconds -d 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -l small-stream-objects -d 'A thread stream with fewer objects (span events and others) than this in a partition\'s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -l row-group-rows -d 'Rows per row group of a thread\'s own span partition (cut at block edges; an async partition\'s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -l json -d 'Print JSON instead of a table'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -l tree -d 'Show each process\'s children under it, indented (oldest first, any depth); a process whose parent is not listed is a root. With --json: nested `children` arrays'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -s q -l quiet -d 'Print nothing but errors'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -s v -l verbose -d 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -l explain -d 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand processes" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -l lake -d 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas\'s metadata database' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -l blobs -d 'Object store of a PostgreSQL lake\'s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -l cache -d 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake\'s database and its object store for PostgreSQL)' -r -F
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -l partition-seconds -d 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -l small-stream-objects -d 'A thread stream with fewer objects (span events and others) than this in a partition\'s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -l row-group-rows -d 'Rows per row group of a thread\'s own span partition (cut at block edges; an async partition\'s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -l json -d 'Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -s q -l quiet -d 'Print nothing but errors'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -s v -l verbose -d 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -l explain -d 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -f -a "gc" -d 'Delete partition files retired longer ago than the grace period (readers that started before then may still be reading them)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and not __fish_seen_subcommand_from gc help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from gc" -l grace -d 'Grace period in seconds, from 0 to 3153600000 (100 years)' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from gc" -l lake -d 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas\'s metadata database' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from gc" -l blobs -d 'Object store of a PostgreSQL lake\'s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from gc" -l cache -d 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake\'s database and its object store for PostgreSQL)' -r -F
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from gc" -l partition-seconds -d 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from gc" -l small-stream-objects -d 'A thread stream with fewer objects (span events and others) than this in a partition\'s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from gc" -l row-group-rows -d 'Rows per row group of a thread\'s own span partition (cut at block edges; an async partition\'s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from gc" -l json -d 'Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from gc" -s q -l quiet -d 'Print nothing but errors'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from gc" -s v -l verbose -d 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from gc" -l explain -d 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from gc" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "gc" -d 'Delete partition files retired longer ago than the grace period (readers that started before then may still be reading them)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand completions" -l lake -d 'The lake: a directory holding lake.db (embedded lake), or a postgres:// URL of Micromegas\'s metadata database' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand completions" -l blobs -d 'Object store of a PostgreSQL lake\'s payloads: file://, s3://, gs:// or az:// URL; credentials come from the usual AWS_*, GOOGLE_*, AZURE_* variables' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand completions" -l cache -d 'Keep the partition cache (a SQLite catalog and Parquet files) in this directory, for lakes you may only read. Default: with the lake (DIR/write-perfetto/ for an embedded lake; a table of the lake\'s database and its object store for PostgreSQL)' -r -F
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand completions" -l partition-seconds -d 'Insert-time width of a partition, in seconds, from 1 to 31622400 (366 days). The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand completions" -l small-stream-objects -d 'A thread stream with fewer objects (span events and others) than this in a partition\'s time bucket shares one partition with the other small streams of its process: thousands of short-lived threads then cost a few files, not thousands. 0: every stream has partitions of its own. The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand completions" -l row-group-rows -d 'Rows per row group of a thread\'s own span partition (cut at block edges; an async partition\'s hold 4 times as many): a time window reads only the row groups it reaches. The output never depends on it' -r
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand completions" -l json -d 'Print a JSON summary of the export on stdout (ids, output, sha256, counts, timings)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand completions" -s q -l quiet -d 'Print nothing but errors'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand completions" -s v -l verbose -d 'Explain decisions on stderr (repeat for more); RUST_LOG overrides the filter'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand completions" -l explain -d 'Print, per partition, whether it was reused, built or rebuilt, and why (also -v)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand help; and not __fish_seen_subcommand_from processes cache completions help" -f -a "processes" -d 'List the lake\'s processes, newest first'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand help; and not __fish_seen_subcommand_from processes cache completions help" -f -a "cache" -d 'Manage the partition cache'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand help; and not __fish_seen_subcommand_from processes cache completions help" -f -a "completions" -d 'Print a shell completion script to stdout'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand help; and not __fish_seen_subcommand_from processes cache completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c write-perfetto -n "__fish_write_perfetto_using_subcommand help; and __fish_seen_subcommand_from cache" -f -a "gc" -d 'Delete partition files retired longer ago than the grace period (readers that started before then may still be reading them)'
