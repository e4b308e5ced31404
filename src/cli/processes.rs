//! `write-perfetto processes`: the lake's processes as a table or JSON, flat or as a tree of
//! parents and children.

use anyhow::Result;
use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal, Write};

use crate::lake::ProcessSummary;

/// Prints `processes` (newest first) as a table, or JSON with `json`. With `tree`, each
/// process is followed by its children (oldest first, at any depth, indented); a process
/// whose parent is not listed is a root.
pub fn print(processes: &[ProcessSummary], json: bool, tree: bool) -> Result<()> {
    let rows = match tree {
        true => tree_order(processes),
        false => processes.iter().map(|p| (0, p)).collect(),
    };
    let mut out = std::io::stdout().lock();
    if json {
        let value = match tree {
            true => serde_json::Value::Array(nest(&rows)),
            false => serde_json::to_value(processes)?,
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let id_width = rows
        .iter()
        .map(|(depth, _)| 36 + 3 * depth)
        .max()
        .unwrap_or(36);
    if std::io::stdout().is_terminal() || !processes.is_empty() {
        writeln!(
            out,
            "{:<id_width$}  {:<27}  {:>9}  {:<36}  {:>7}  {:>6}  {:<16}  EXE",
            "PROCESS ID", "START TIME", "DURATION", "PARENT", "THREADS", "BLOCKS", "COMPUTER"
        )?;
    }
    for (depth, p) in rows {
        let id = format!("{}{}", "   ".repeat(depth), p.process_id);
        let parent = match p.parent_process_id.as_str() {
            "" => "-",
            parent => parent,
        };
        let duration = p.duration_seconds.map_or("-".into(), duration_text);
        writeln!(
            out,
            "{id:<id_width$}  {:<27}  {duration:>9}  {parent:<36}  {:>7}  {:>6}  {:<16}  {}",
            p.start_time, p.thread_streams, p.blocks, p.computer, p.exe
        )?;
    }
    Ok(())
}

/// A duration as a person reads it: `850ms`, `12.3s`, `4m05s`, `2h03m`.
fn duration_text(seconds: f64) -> String {
    let whole = seconds as u64;
    match whole {
        0 => format!("{:.0}ms", seconds * 1000.0),
        1..=59 => format!("{seconds:.1}s"),
        60..=3599 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, whole % 3600 / 60),
    }
}

/// The processes depth first, each with its depth: roots in the listing's order, children
/// by start time, then id. Each process appears once: in a cycle of parents (bad metadata),
/// the first listed is taken for a root.
fn tree_order(processes: &[ProcessSummary]) -> Vec<(usize, &ProcessSummary)> {
    let listed: HashSet<&str> = processes.iter().map(|p| p.process_id.as_str()).collect();
    let mut children: BTreeMap<&str, Vec<&ProcessSummary>> = BTreeMap::new();
    for p in processes {
        children.entry(&p.parent_process_id).or_default().push(p);
    }
    for list in children.values_mut() {
        list.sort_by(|a, b| (&a.start_time, &a.process_id).cmp(&(&b.start_time, &b.process_id)));
    }
    let is_root = |p: &&ProcessSummary| !listed.contains(p.parent_process_id.as_str());
    let roots = processes.iter().filter(is_root);
    let mut order = Vec::with_capacity(processes.len());
    let mut seen = HashSet::new();
    for root in roots.chain(processes) {
        let mut stack = vec![(0, root)];
        while let Some((depth, p)) = stack.pop() {
            if !seen.insert(p.process_id.as_str()) {
                continue;
            }
            order.push((depth, p));
            let kids = children.get(p.process_id.as_str()).into_iter().flatten();
            stack.extend(kids.rev().map(|c| (depth + 1, *c)));
        }
    }
    order
}

/// The depth-first rows as nested JSON objects, each with its `children`.
fn nest(rows: &[(usize, &ProcessSummary)]) -> Vec<serde_json::Value> {
    let mut nested = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let (depth, p) = rows[i];
        let end = (i + 1..rows.len())
            .find(|&j| rows[j].0 <= depth)
            .unwrap_or(rows.len());
        let mut value = serde_json::to_value(p).unwrap_or_default();
        value["children"] = serde_json::Value::Array(nest(&rows[i + 1..end]));
        nested.push(value);
        i = end;
    }
    nested
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(id: &str, parent: &str, start: &str) -> ProcessSummary {
        ProcessSummary {
            process_id: id.into(),
            exe: String::new(),
            computer: String::new(),
            start_time: start.into(),
            end_time: String::new(),
            duration_seconds: None,
            parent_process_id: parent.into(),
            thread_streams: 0,
            blocks: 0,
        }
    }

    fn ids(rows: &[(usize, &ProcessSummary)]) -> Vec<(usize, String)> {
        rows.iter()
            .map(|(d, p)| (*d, p.process_id.clone()))
            .collect()
    }

    #[test]
    fn durations_read_in_the_largest_sensible_units() {
        assert_eq!(duration_text(0.85), "850ms");
        assert_eq!(duration_text(12.34), "12.3s");
        assert_eq!(duration_text(245.0), "4m05s");
        assert_eq!(duration_text(7380.0), "2h03m");
    }

    #[test]
    fn children_follow_their_parent_oldest_first_at_any_depth() {
        let listed = [
            process("c2", "root", "3"),
            process("grandchild", "c1", "4"),
            process("c1", "root", "2"),
            process("root", "", "1"),
            process("other", "", "0"),
        ];
        let rows = tree_order(&listed);
        let expected = [
            (0, "root"),
            (1, "c1"),
            (2, "grandchild"),
            (1, "c2"),
            (0, "other"),
        ];
        let expected: Vec<_> = expected.iter().map(|(d, i)| (*d, i.to_string())).collect();
        assert_eq!(ids(&rows), expected);
    }

    #[test]
    fn a_process_whose_parent_is_not_listed_is_a_root_and_cycles_show_each_once() {
        let listed = [
            process("a", "b", "1"),
            process("b", "a", "2"),
            process("orphan", "gone", "3"),
        ];
        let rows = tree_order(&listed);
        // a and b are each other's parent: the first listed is taken for a root.
        let expected = [(0, "orphan"), (0, "a"), (1, "b")];
        let expected: Vec<_> = expected.iter().map(|(d, i)| (*d, i.to_string())).collect();
        assert_eq!(ids(&rows), expected);
    }

    #[test]
    fn nested_json_holds_each_process_once_under_its_parent() {
        let listed = [
            process("c1", "root", "2"),
            process("root", "", "1"),
            process("grandchild", "c1", "3"),
        ];
        let nested = nest(&tree_order(&listed));
        assert_eq!(nested.len(), 1);
        assert_eq!(nested[0]["process_id"], "root");
        assert_eq!(nested[0]["children"][0]["process_id"], "c1");
        assert_eq!(
            nested[0]["children"][0]["children"][0]["process_id"],
            "grandchild"
        );
        assert_eq!(
            nested[0]["children"][0]["children"][0]["children"],
            serde_json::json!([])
        );
    }
}
